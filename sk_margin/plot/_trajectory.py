"""Minimum and average margin against the training epoch (Wu & Yu, a Display)."""

import numpy as np

from sk_margin.plot._base import _as_1d, _axes, _check_same_length

__all__ = ["MarginTrajectoryDisplay"]


SUBSETS = ("train", "valid")


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
