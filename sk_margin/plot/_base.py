"""Helpers shared by the Display classes.

scikit-learn's Display pattern: ``from_estimator`` (or ``from_history``)
computes what is shown, ``from_predictions`` takes it precomputed; both store
it on a Display and call ``plot``, which draws on one matplotlib axis, sets
``ax_``, ``figure_`` and the artists, and returns the Display. matplotlib is
imported inside ``plot`` only.
"""

import numpy as np


def _axes(ax, caller):
    """``(ax, figure)``, on a new figure when ``ax`` is None."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} requires matplotlib. You can install it with "
            "`pip install matplotlib` (or `pip install sk_margin[plot]`)."
        ) from exc
    if ax is None:
        _, ax = plt.subplots()
    return ax, ax.figure


def _as_1d(values, name):
    """A non-empty 1-D float64 array without NaN."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got an array of shape {values.shape}.")
    if values.size == 0:
        raise ValueError(f"{name} is empty; at least one value is needed.")
    if np.isnan(values).any():
        raise ValueError(f"{name} contains NaN.")
    return values


def _check_same_length(**arrays):
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{name}: {n}" for name, n in lengths.items())
        names = " and ".join(lengths)
        raise ValueError(f"{names} must have the same length, got {got}.")
