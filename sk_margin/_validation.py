"""Checks and adapters shared by several subpackages (one copy each).

- argument checks: :func:`check_norm`, :func:`check_eps`,
  :func:`check_nonnegative`, :func:`is_positive_int`;
- the one way of reading a model as numpy score and input-gradient functions
  (:func:`score_functions`), with scikit-learn's binary convention (a 1-D
  score ``s = f_1 - f_0``) widened to the two columns ``[0, s]``
  (:func:`as_score_columns`, :func:`as_jacobian_columns`);
- :func:`label_indices`, labels as column indices of the scores.
"""

import numbers
import os
import sys
import warnings

import numpy as np
from sklearn.utils import column_or_1d


def check_norm(p, name="p"):
    """Return ``p`` as one of ``1``, ``2``, ``np.inf``, or raise a ValueError."""
    if isinstance(p, str):
        if p == "inf":
            return np.inf
    elif isinstance(p, numbers.Real) and not isinstance(p, bool):
        if p == 1:
            return 1
        if p == 2:
            return 2
        if p == np.inf:
            return np.inf
    raise ValueError(f"{name} must be one of 1, 2, np.inf or 'inf', got {p!r}.")


def check_eps(eps):
    """``eps`` as a 1-D float array, and whether it was a scalar."""
    arr = np.asarray(eps, dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0 or not np.all(arr >= 0):
        raise ValueError(
            "eps must be a non-negative number or a non-empty 1-D array of them, "
            f"got {eps!r}."
        )
    return arr.reshape(-1), arr.ndim == 0


def check_nonnegative(value, name):
    """``value`` as a float if it is a real number ``>= 0``, else a ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value >= 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}.")
    return float(value)


def is_positive_int(value):
    """Whether ``value`` is an integer ``>= 1`` (booleans are not)."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= 1
    )


_NEEDS = (
    "decision_function(X) and input_jacobian(X), or a pair of callables "
    "(scores_fn, jacobian_fn)"
)


def score_functions(model, caller, needs=_NEEDS):
    """``(scores_fn, jacobian_fn, classes)`` of a model or of a pair of callables.

    Parameters
    ----------
    model : object or tuple of two callables
        An object with ``decision_function(X)`` and ``input_jacobian(X)``
        (``classes_`` is read when present), or a pair ``(scores_fn,
        jacobian_fn)``.
    caller : str
        Named in the error message.
    needs : str
        What the error message says the model needs.

    Returns
    -------
    scores_fn, jacobian_fn : callable
        The model's decision scores and their input gradients.
    classes : ndarray or None
        ``model.classes_``; None for a pair of callables.
    """
    if isinstance(model, tuple):
        if len(model) != 2 or not all(callable(f) for f in model):
            raise TypeError(
                f"{caller}: a model given as a tuple must be a pair of callables "
                "(scores_fn, jacobian_fn)."
            )
        return model[0], model[1], None
    missing = [
        name
        for name in ("decision_function", "input_jacobian")
        if not callable(getattr(model, name, None))
    ]
    if missing:
        raise TypeError(
            f"{caller} cannot use {type(model).__name__}: it has no method "
            f"{' or '.join(missing)}; it needs {needs}."
        )
    return (
        model.decision_function,
        model.input_jacobian,
        getattr(model, "classes_", None),
    )


def as_score_columns(scores, n_rows=None, name="decision_function"):
    """Scores of shape (n, K); a binary 1-D score ``s`` becomes ``[0, s]``.

    With ``n_rows``, the result must have that many rows and ``K >= 2``
    columns, else a ValueError naming ``name``.
    """
    scores = np.asarray(scores, dtype=np.float64)
    shape = scores.shape
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    if n_rows is not None and (
        scores.ndim != 2 or scores.shape[0] != n_rows or scores.shape[1] < 2
    ):
        raise ValueError(
            f"{name} must return an array of shape ({n_rows},) or ({n_rows}, "
            f"n_classes) with n_classes >= 2, got shape {shape}."
        )
    return scores


def as_jacobian_columns(jacobian, x_shape):
    """Input gradients of shape (n, K, ...); a binary ``J`` -> ``[0, J]``.

    A binary model's Jacobian has the shape ``x_shape`` of its input.
    """
    jacobian = np.asarray(jacobian, dtype=np.float64)
    if jacobian.shape == tuple(x_shape):
        jacobian = np.stack([np.zeros_like(jacobian), jacobian], axis=1)
    return jacobian


def label_indices(y, classes, n_samples, n_classes):
    """Column index of each label of ``y``: looked up in ``classes``, or as given."""
    y = column_or_1d(y)
    if y.shape[0] != n_samples:
        raise ValueError(f"y has {y.shape[0]} samples, but X has {n_samples} samples.")
    if classes is None:
        if not np.issubdtype(y.dtype, np.integer) or np.any((y < 0) | (y >= n_classes)):
            raise ValueError(
                "Without estimator.classes_, y must hold column indices in "
                f"[0, {n_classes}), got {np.unique(y)[:10].tolist()}."
            )
        return y.astype(np.intp)
    classes = np.asarray(classes)
    if classes.shape != (n_classes,):
        raise ValueError(
            f"estimator.classes_ has {classes.size} entries, but decision_function "
            f"gives {n_classes} score columns."
        )
    match = y[:, None] == classes[None, :]
    unknown = ~match.any(axis=1)
    if unknown.any():
        raise ValueError(
            f"y contains labels not in estimator.classes_: "
            f"{np.unique(y[unknown])[:10].tolist()}."
        )
    return np.argmax(match, axis=1)


def check_attack(attack, known):
    """Raise a ValueError unless ``attack`` is callable or one of ``known``."""
    if not (callable(attack) or attack in known):
        raise ValueError(
            f"attack must be one of {known} or a callable, got {attack!r}."
        )


def check_clip_values(clip_values, X):
    """``(lo, hi)`` as float64 arrays broadcastable to a sample, X inside; or None."""
    if clip_values is None:
        return None
    try:
        lo, hi = (np.asarray(b, dtype=np.float64) for b in clip_values)
        lo, hi = np.broadcast_to(lo, X.shape[1:]), np.broadcast_to(hi, X.shape[1:])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "clip_values must be a pair (lo, hi) of scalars or arrays of the shape "
            f"of one sample {X.shape[1:]}, got {clip_values!r}."
        ) from exc
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError("clip_values must be finite with lo < hi for every feature.")
    outside = np.any((X < lo) | (X > hi), axis=tuple(range(1, X.ndim)))
    if outside.any():
        raise ValueError(
            f"X must lie inside clip_values; {outside.sum()} row(s) lie outside, "
            f"e.g. rows {np.flatnonzero(outside)[:10].tolist()}."
        )
    return lo, hi


def _user_stacklevel():
    """``stacklevel`` of the first caller outside sk_margin, for warnings."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package + os.sep
    ):
        frame, level = frame.f_back, level + 1
    return level


def check_method(method, methods, renamed, caller):
    """A certify method's name, checked; a former name warns and gives the new one.

    Parameters
    ----------
    method : str
        The name given.
    methods : tuple of str
        The valid names.
    renamed : dict of str to str
        Former names and the names that replace them (FutureWarning).
    caller : str
        Named in the error message.

    Returns
    -------
    method : str
        A name of ``methods``.
    """
    if isinstance(method, str) and method in renamed:
        new = renamed[method]
        warnings.warn(
            f"{caller}: method={method!r} is now called {new!r}; the former name "
            "will stop working in sk_margin 0.3.",
            FutureWarning,
            stacklevel=_user_stacklevel(),
        )
        return new
    if not (isinstance(method, str) and method in methods):
        raise ValueError(
            f"{caller}: method must be one of {', '.join(map(repr, methods))}; "
            f"got {method!r}."
        )
    return method
