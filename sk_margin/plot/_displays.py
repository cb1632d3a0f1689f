"""Display classes: margin trajectories and certified accuracy, shared helpers.

The margin histograms are in :mod:`sk_margin.plot`.

scikit-learn's Display pattern: ``from_estimator`` (or ``from_history``)
computes what is shown, ``from_predictions`` takes it precomputed; both store
it on a Display and call ``plot``, which draws on one matplotlib axis, sets
``ax_``, ``figure_`` and the artists, and returns the Display. matplotlib is
imported inside ``plot`` only.
"""

import numpy as np

from sk_margin._pipeline import final_estimator
from sk_margin.metrics import certified_accuracy, certified_radii

__all__ = ["CertifiedAccuracyDisplay", "MarginTrajectoryDisplay"]

SUBSETS = ("train", "valid")
N_EPS = 100


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


class MarginTrajectoryDisplay:
    """Minimum and average margin against the training epoch.

    Create it with :meth:`from_estimator` (a net trained with the
    :class:`~sk_margin.nets.MarginStatistics` callback) or
    :meth:`from_history`, or from raw arrays with the constructor and
    :meth:`plot`.

    Parameters
    ----------
    epochs : array-like of shape (n_records,)
        Epoch numbers.
    min_margin : array-like of shape (n_records,)
        Minimum margin at each epoch.
    avg_margin : array-like of shape (n_records,)
        Average margin at each epoch.
    subset : str or None, default=None
        Data the margins were measured on (``"train"``, ``"valid"``), shown in
        the legend.
    name : str or None, default=None
        Prefix of the legend entries.

    Attributes
    ----------
    avg_line_ : matplotlib.lines.Line2D
        The average margin (solid).
    min_line_ : matplotlib.lines.Line2D
        The minimum margin (dashed, same colour).
    ax_ : matplotlib.axes.Axes
        Axis with the lines.
    figure_ : matplotlib.figure.Figure
        Figure containing the axis.

    Notes
    -----
    Wu & Yu (Section 2) define the minimum margin ``min_i m(x_i, y_i)`` and the
    average margin ``(1/n) sum_i |m(x_i, y_i)|`` of the signed distances ``m``
    to the decision boundary, and show (Fig. 1(a), Figs. 2 and 6) that
    standard training raises the first while it lowers the second.
    :class:`~sk_margin.nets.MarginStatistics` records computable versions
    of both (see its Notes).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sk_margin.plot import MarginTrajectoryDisplay
    >>> history = [
    ...     {"epoch": 1, "train_min_margin": -0.5, "train_avg_margin": 0.9},
    ...     {"epoch": 2, "train_min_margin": -0.1, "train_avg_margin": 0.7},
    ... ]
    >>> disp = MarginTrajectoryDisplay.from_history(history)
    >>> disp.min_line_.get_ydata().tolist()
    [-0.5, -0.1]
    >>> disp.avg_line_.get_label()
    'average margin (train)'
    >>> plt.close("all")
    """

    def __init__(self, *, epochs, min_margin, avg_margin, subset=None, name=None):
        self.epochs = epochs
        self.min_margin = min_margin
        self.avg_margin = avg_margin
        self.subset = subset
        self.name = name

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the average (solid) and minimum (dashed) margin against the epoch.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        name : str, default=None
            Prefix of the legend entries; None uses ``self.name``.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for both lines.

        Returns
        -------
        display : MarginTrajectoryDisplay
            This Display, with ``ax_``, ``figure_``, ``avg_line_`` and
            ``min_line_`` set.
        """
        epochs = _as_1d(self.epochs, "epochs")
        min_margin = _as_1d(self.min_margin, "min_margin")
        avg_margin = _as_1d(self.avg_margin, "avg_margin")
        _check_same_length(epochs=epochs, min_margin=min_margin, avg_margin=avg_margin)
        self.ax_, self.figure_ = _axes(ax, "MarginTrajectoryDisplay.plot")
        name = self.name if name is None else name
        prefix = "" if name is None else f"{name}: "
        suffix = "" if self.subset is None else f" ({self.subset})"
        label = f"{prefix}average margin{suffix}"
        (self.avg_line_,) = self.ax_.plot(
            epochs, avg_margin, **{"label": label, **kwargs}
        )
        style = {"color": self.avg_line_.get_color(), "linestyle": "--"}
        label = f"{prefix}minimum margin{suffix}"
        (self.min_line_,) = self.ax_.plot(
            epochs, min_margin, **{**style, "label": label, **kwargs}
        )
        self.ax_.set(xlabel="Epoch", ylabel="Margin")
        self.ax_.legend()
        return self

    @classmethod
    def from_history(cls, history, *, subset="train", name=None, ax=None, **kwargs):
        """Margin trajectory from a skorch history, or any list of dicts.

        Parameters
        ----------
        history : skorch.History or list of dict
            One dict per epoch. Those with ``{subset}_min_margin`` and
            ``{subset}_avg_margin`` (recorded by
            :class:`~sk_margin.nets.MarginStatistics`) are plotted at
            their ``"epoch"`` entry, else at their 1-based position.
        subset : {"train", "valid"}, default="train"
            Training or validation margins.
        name : str, default=None
            Prefix of the legend entries.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for both lines.

        Returns
        -------
        display : MarginTrajectoryDisplay
            The drawn Display.
        """
        if subset not in SUBSETS:
            raise ValueError(f"subset must be one of {SUBSETS}, got {subset!r}.")
        kmin, kavg = f"{subset}_min_margin", f"{subset}_avg_margin"
        rows = [
            (row.get("epoch", i + 1), row[kmin], row[kavg])
            for i, row in enumerate(history)
            if kmin in row and kavg in row
        ]
        if not rows:
            valid = (
                " with X_valid, y_valid or a train_split" if subset == "valid" else ""
            )
            raise ValueError(
                f"The history has no {kmin!r} and {kavg!r} entries. Train with the "
                f"MarginStatistics callback{valid} to record them: "
                "`callbacks=[MarginStatistics()]` (from sk_margin.nets)."
            )
        epochs, mins, avgs = (np.asarray(c) for c in zip(*rows, strict=True))
        disp = cls(
            epochs=epochs, min_margin=mins, avg_margin=avgs, subset=subset, name=name
        )
        return disp.plot(ax, **kwargs)

    @classmethod
    def from_estimator(cls, estimator, *, subset="train", name=None, ax=None, **kwargs):
        """Margin trajectory recorded in a fitted net's ``history_``.

        Parameters
        ----------
        estimator : skorch.NeuralNet
            A fitted net, e.g. :class:`~sk_margin.nets.MarginNetClassifier`,
            trained with the :class:`~sk_margin.nets.MarginStatistics`
            callback.
        subset : {"train", "valid"}, default="train"
            Training or validation margins.
        name : str, default=None
            Prefix of the legend entries.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot` for both lines.

        Returns
        -------
        display : MarginTrajectoryDisplay
            The drawn Display.
        """
        history = getattr(estimator, "history_", None)
        if history is None:
            raise ValueError(
                "MarginTrajectoryDisplay.from_estimator needs a fitted skorch net, "
                f"got {type(estimator).__name__} without a history_. Fit it with "
                "the MarginStatistics callback first."
            )
        return cls.from_history(history, subset=subset, name=name, ax=ax, **kwargs)


class CertifiedAccuracyDisplay:
    """Certified accuracy as a function of the l2 radius ``eps``.

    Create it with :meth:`from_estimator` or :meth:`from_predictions`; pass the
    same ``ax`` and different names to compare estimators on one axis.

    Parameters
    ----------
    eps : ndarray of shape (n_eps,)
        Radii, ascending.
    certified_accuracy : ndarray of shape (n_eps,)
        Share of the samples classified correctly with a certified radius
        ``>= eps``, at each ``eps``.
    name : str or None, default=None
        Legend entry of the curve.

    Attributes
    ----------
    line_ : matplotlib.lines.Line2D
        The curve.
    ax_ : matplotlib.axes.Axes
        Axis with the curve.
    figure_ : matplotlib.figure.Figure
        Figure containing the axis.

    Notes
    -----
    The certified accuracy at ``eps`` (:func:`sk_margin.metrics.certified_accuracy`)
    lower-bounds the accuracy under any l2 attack of norm less than ``eps``:
    it is the certified counterpart of the accuracy-under-attack curves of
    Ono et al. (Fig. 2), and of the robustness guarantees of Hein &
    Andriushchenko (Section 5, Figs. 1-2). It equals the accuracy at
    ``eps = 0`` and does not increase with ``eps``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sk_margin.plot import CertifiedAccuracyDisplay
    >>> y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 0]
    >>> disp = CertifiedAccuracyDisplay.from_predictions(
    ...     y_true, y_pred, [0.5, 0.2, 0.3, 0.0], eps=[0, 0.1, 0.5], name="A"
    ... )
    >>> disp.certified_accuracy.tolist()
    [0.75, 0.5, 0.25]
    >>> disp = CertifiedAccuracyDisplay.from_predictions(
    ...     y_true, y_pred, [0.1, 0.4, 0.4, 0.2], name="B", ax=disp.ax_
    ... )
    >>> disp.ax_.get_legend_handles_labels()[1]
    ['A', 'B']
    >>> plt.close("all")
    """

    def __init__(self, *, eps, certified_accuracy, name=None):
        self.eps = eps
        self.certified_accuracy = certified_accuracy
        self.name = name

    def plot(self, ax=None, *, name=None, **kwargs):
        """Draw the certified-accuracy curve.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        name : str, default=None
            Legend entry; None uses ``self.name`` (no entry if that is None too).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot`.

        Returns
        -------
        display : CertifiedAccuracyDisplay
            This Display, with ``ax_``, ``figure_`` and ``line_`` set.
        """
        self.ax_, self.figure_ = _axes(ax, "CertifiedAccuracyDisplay.plot")
        name = self.name if name is None else name
        style = {} if name is None else {"label": name}
        (self.line_,) = self.ax_.plot(
            self.eps, self.certified_accuracy, **{**style, **kwargs}
        )
        self.ax_.set(
            xlabel="l2 radius eps", ylabel="Certified accuracy", ylim=(-0.02, 1.02)
        )
        if self.ax_.get_legend_handles_labels()[1]:
            self.ax_.legend()
        return self

    @classmethod
    def from_predictions(
        cls, y_true, y_pred, radii, *, eps=None, name=None, ax=None, **kwargs
    ):
        """Certified-accuracy curve of given predictions and certified radii.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            True labels.
        y_pred : array-like of shape (n_samples,)
            Predicted labels.
        radii : array-like of shape (n_samples,)
            Certified l2 radii of the predictions, ``>= 0`` (``inf`` allowed).
        eps : float or array-like of shape (n_eps,), default=None
            Finite radii ``>= 0`` at which to evaluate (sorted). None: 100
            points from 0 to the largest finite radius (to 1 if that is 0).
        name : str, default=None
            Legend entry of the curve.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot`.

        Returns
        -------
        display : CertifiedAccuracyDisplay
            The drawn Display.
        """
        if eps is None:
            radii = np.asarray(radii, dtype=np.float64)
            top = radii[np.isfinite(radii)].max(initial=0.0)
            eps = np.linspace(0.0, top if top > 0 else 1.0, N_EPS)
        eps = np.sort(np.atleast_1d(np.asarray(eps, dtype=np.float64)))
        if np.isinf(eps).any():
            raise ValueError(f"eps must be finite to be plotted, got {eps}.")
        acc = np.asarray(certified_accuracy(y_true, y_pred, radii, eps))
        disp = cls(eps=eps, certified_accuracy=acc, name=name)
        return disp.plot(ax, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X,
        y,
        *,
        eps=None,
        certify_params=None,
        name=None,
        ax=None,
        **kwargs,
    ):
        """Certified-accuracy curve of a fitted estimator on ``(X, y)``.

        Parameters
        ----------
        estimator : estimator instance
            Fitted, with ``certify`` and ``predict``, or a Pipeline of scalers
            ending in one: radii by :func:`sk_margin.metrics.certified_radii`,
            in the input space of ``X``.
        X : array-like of shape (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,)
            True labels.
        eps : float or array-like of shape (n_eps,), default=None
            Radii at which to evaluate; None: 100 points from 0 to the largest
            finite certified radius.
        certify_params : dict, default=None
            Keyword arguments of ``certify``, e.g. ``{"method": "pairwise"}``.
        name : str, default=None
            Legend entry; None uses the class name of the (final) estimator.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.plot`.

        Returns
        -------
        display : CertifiedAccuracyDisplay
            The drawn Display.
        """
        radii = certified_radii(estimator, X, **(certify_params or {}))
        name = type(final_estimator(estimator)).__name__ if name is None else name
        y_pred = estimator.predict(X)
        return cls.from_predictions(
            y, y_pred, radii, eps=eps, name=name, ax=ax, **kwargs
        )
