"""Display classes: margin histograms, margin trajectories, certified accuracy.

scikit-learn's Display pattern: ``from_estimator`` (or ``from_history``)
computes what is shown, ``from_predictions`` takes it precomputed; both store
it on a Display and call ``plot``, which draws on one matplotlib axis, sets
``ax_``, ``figure_`` and the artists, and returns the Display. matplotlib is
imported inside ``plot`` only.
"""

import numpy as np
from sklearn.pipeline import Pipeline

from sk_margin.metrics import certified_accuracy, certified_radii

__all__ = [
    "CertifiedAccuracyDisplay",
    "MarginHistogramDisplay",
    "MarginTrajectoryDisplay",
]

MARGIN_KINDS = ("logit", "certified")
SUBSETS = ("train", "valid")
GROUPS = ("training", "held-out", "attacked")
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


def _final(estimator):
    """The classifier at the end of a (nested) Pipeline, or the estimator."""
    while isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    return estimator


def _margins(estimator, X, y, margin, certify_params, caller):
    """Logit margins or certified radii; signed by correctness when ``y`` is given."""
    if margin == "certified":
        radii = certified_radii(estimator, X, **(certify_params or {}))
        if y is None:
            return radii
        y = np.asarray(y)
        _check_same_length(X=radii, y=y)
        return np.where(estimator.predict(X) == y, radii, -radii)
    if not callable(getattr(_final(estimator), "margins", None)):
        raise TypeError(
            f"{caller} with margin='logit' needs an estimator with a margins "
            "method, or a Pipeline ending in one (MarginKernelLogReg, "
            f"MarginNetClassifier); got {type(_final(estimator)).__name__}."
        )
    while isinstance(estimator, Pipeline):
        X, estimator = estimator[:-1].transform(X), estimator[-1]
    return estimator.margins(X, y)


class MarginHistogramDisplay:
    """Histograms of the margins of groups of samples, with shared bins, on one axis.

    Create it with :meth:`from_estimator` or :meth:`from_predictions`.

    Parameters
    ----------
    counts : dict of str to ndarray of shape (n_bins,)
        Samples per bin of each group, keyed by legend label, in drawing order.
    bin_edges : ndarray of shape (n_bins + 1,)
        Bin edges shared by all groups.
    required_margin : float or None, default=None
        Position of the vertical "required margin" line; None draws none.
    xlabel : str, default="Margin"
        Label of the x-axis.
    name : str or None, default=None
        Prefix of the legend entries (``"name: group"``).

    Attributes
    ----------
    bars_ : list of matplotlib.patches.StepPatch
        One filled histogram per group, in the order of ``counts``.
    required_line_ : matplotlib.lines.Line2D or None
        The required-margin line.
    ax_ : matplotlib.axes.Axes
        Axis with the histograms.
    figure_ : matplotlib.figure.Figure
        Figure containing the axis.

    Notes
    -----
    Kesidis, Miller & Xiang (Section IV, Fig. 1) show histograms of the logit
    margin ``f_y(x) - max_{i != y} f_i(x)`` (their eq. 2) of (a) training and
    (b) labelled held-out samples, negative when misclassified, (c) unlabelled
    test samples, whose margin is that of the predicted class (``>= 0``), and
    (d) attacked (FGSM) samples, against the margin ``mu`` their loss (eq. 9)
    requires. For Lipschitz-margin training the required logit margin is
    ``sqrt(2) L eps`` (Ono et al., eq. 3), with ``L`` a Lipschitz bound of the
    network. Wu & Yu (Fig. 1(b), Figs. 7-8) compare such histograms across
    training epochs.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> import numpy as np
    >>> from sk_margin.plotting import MarginHistogramDisplay
    >>> rng = np.random.default_rng(0)
    >>> margins = {"training": rng.normal(3, 1, 200), "held-out": rng.normal(2, 2, 50)}
    >>> disp = MarginHistogramDisplay.from_predictions(margins, required_margin=1.0)
    >>> [int(bar.get_data().values.sum()) for bar in disp.bars_]
    [200, 50]
    >>> disp.ax_.get_legend_handles_labels()[1]
    ['training', 'held-out', 'required margin = 1']
    >>> plt.close("all")
    """

    def __init__(
        self, *, counts, bin_edges, required_margin=None, xlabel="Margin", name=None
    ):
        self.counts = counts
        self.bin_edges = bin_edges
        self.required_margin = required_margin
        self.xlabel = xlabel
        self.name = name

    def plot(self, ax=None, *, name=None, density=False, log_scale=False, **kwargs):
        """Draw the histograms, the required-margin line and the legend.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        name : str, default=None
            Prefix of the legend entries; None uses ``self.name``.
        density : bool, default=False
            Normalise each histogram to unit area instead of showing counts.
        log_scale : bool, default=False
            Logarithmic y-axis (counts or density).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.stairs` for every group.

        Returns
        -------
        display : MarginHistogramDisplay
            This Display, with ``ax_``, ``figure_``, ``bars_`` and
            ``required_line_`` set.
        """
        self.ax_, self.figure_ = _axes(ax, "MarginHistogramDisplay.plot")
        name = self.name if name is None else name
        edges = np.asarray(self.bin_edges, dtype=np.float64)
        self.bars_, lowest = [], np.inf
        for group, counts in self.counts.items():
            values = np.asarray(counts, dtype=np.float64)
            if density and values.sum() > 0:
                values = values / (values.sum() * np.diff(edges))
            lowest = min(lowest, values[values > 0].min(initial=np.inf))
            label = group if name is None else f"{name}: {group}"
            style = {"fill": True, "alpha": 0.4, "label": label, **kwargs}
            self.bars_.append(self.ax_.stairs(values, edges, **style))
        self.required_line_ = None
        if self.required_margin is not None:
            label = f"required margin = {self.required_margin:.3g}"
            self.required_line_ = self.ax_.axvline(
                self.required_margin, color="k", linestyle="--", label=label
            )
        if log_scale:
            self.ax_.set_yscale("log")
            if np.isfinite(lowest):  # keep the bins of a single sample visible
                self.ax_.set_ylim(bottom=lowest / 2)
        ylabel = "Density" if density else "Number of samples"
        self.ax_.set(xlabel=self.xlabel, ylabel=ylabel)
        self.ax_.legend()
        return self

    @classmethod
    def from_predictions(
        cls,
        margins,
        *,
        required_margin=None,
        bins=30,
        xlabel="Margin",
        name=None,
        ax=None,
        density=False,
        log_scale=False,
        **kwargs,
    ):
        """Histograms of precomputed margins, one per group, with shared bins.

        Parameters
        ----------
        margins : array-like of shape (n_samples,) or dict of str to array-like
            Finite margins of one group (labelled ``"samples"``), or of several
            keyed by legend label: ``{"training": m_train, "attacked": m_adv}``.
        required_margin : float or None, default=None
            Position of the vertical "required margin" line, e.g. the ``mu``
            of a margin loss or ``sqrt(2) L eps`` for Lipschitz-margin training.
        bins : int, sequence of float or str, default=30
            As in :func:`numpy.histogram_bin_edges`, over all groups together.
        xlabel : str, default="Margin"
            Label of the x-axis.
        name : str, default=None
            Prefix of the legend entries.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        density : bool, default=False
            Normalise each histogram to unit area instead of showing counts.
        log_scale : bool, default=False
            Logarithmic y-axis (counts or density).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.stairs` for every group.

        Returns
        -------
        display : MarginHistogramDisplay
            The drawn Display.
        """
        if not isinstance(margins, dict):
            margins = {"samples": margins}
        if not margins:
            raise ValueError("margins is an empty dict; at least one group is needed.")
        groups = {}
        for group, values in margins.items():
            values = _as_1d(values, f"margins[{group!r}]")
            if not np.isfinite(values).all():
                raise ValueError(
                    f"margins[{group!r}] has {np.sum(np.isinf(values))} infinite "
                    "values; a histogram needs finite margins."
                )
            groups[str(group)] = values
        edges = np.histogram_bin_edges(np.concatenate(list(groups.values())), bins)
        counts = {g: np.histogram(v, bins=edges)[0] for g, v in groups.items()}
        disp = cls(
            counts=counts,
            bin_edges=edges,
            required_margin=required_margin,
            xlabel=xlabel,
            name=name,
        )
        return disp.plot(ax, density=density, log_scale=log_scale, **kwargs)

    @classmethod
    def from_estimator(
        cls,
        estimator,
        X=None,
        y=None,
        *,
        X_held_out=None,
        y_held_out=None,
        X_attacked=None,
        y_attacked=None,
        margin="logit",
        certify_params=None,
        required_margin=None,
        bins=30,
        name=None,
        ax=None,
        density=False,
        log_scale=False,
        **kwargs,
    ):
        """Histograms of an estimator's margins on training, held-out, attacked data.

        Each group is optional, but one is needed. With labels, a group's
        margins are signed (negative when misclassified); without, they are
        those of the predicted class (``>= 0``), as for the unlabelled test
        samples of Kesidis et al., Fig. 1(c).

        Parameters
        ----------
        estimator : estimator instance
            Fitted, with ``margins`` (``margin="logit"``) or ``certify`` and
            ``predict`` (``"certified"``), or a Pipeline ending in one.
        X : array-like of shape (n_samples, ...), default=None
            Training inputs, labelled ``"training"``.
        y : array-like of shape (n_samples,), default=None
            Labels of ``X``.
        X_held_out : array-like of shape (n_held_out, ...), default=None
            Held-out inputs, labelled ``"held-out"``.
        y_held_out : array-like of shape (n_held_out,), default=None
            Labels of ``X_held_out``.
        X_attacked : array-like of shape (n_attacked, ...), default=None
            Adversarial inputs, labelled ``"attacked"``.
        y_attacked : array-like of shape (n_attacked,), default=None
            True labels of the clean inputs ``X_attacked`` was made from.
        margin : {"logit", "certified"}, default="logit"
            ``"logit"``: ``estimator.margins``; ``"certified"``: the certified
            l2 radii of :func:`sk_margin.metrics.certified_radii` (in the input
            space of ``X``), negated where the prediction is wrong (when labels
            are given).
        certify_params : dict, default=None
            Keyword arguments of ``certify``, e.g. ``{"method": "pairwise"}``.
        required_margin : float or None, default=None
            Position of the "required margin" line, in the units of ``margin``
            (for ``"certified"``, the target radius ``eps``).
        bins : int, sequence of float or str, default=30
            As in :func:`numpy.histogram_bin_edges`, over all groups together.
        name : str, default=None
            Prefix of the legend entries.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        density : bool, default=False
            Normalise each histogram to unit area instead of showing counts.
        log_scale : bool, default=False
            Logarithmic y-axis (counts or density).
        **kwargs : dict
            Passed to :meth:`matplotlib.axes.Axes.stairs` for every group.

        Returns
        -------
        display : MarginHistogramDisplay
            The drawn Display.
        """
        caller = "MarginHistogramDisplay.from_estimator"
        if margin not in MARGIN_KINDS:
            raise ValueError(f"margin must be one of {MARGIN_KINDS}, got {margin!r}.")
        inputs = zip(
            GROUPS,
            (X, X_held_out, X_attacked),
            (y, y_held_out, y_attacked),
            strict=True,
        )
        margins = {
            group: _margins(estimator, Xg, yg, margin, certify_params, caller)
            for group, Xg, yg in inputs
            if Xg is not None
        }
        if not margins:
            raise ValueError(f"{caller} needs X, X_held_out or X_attacked.")
        xlabel = "Logit margin" if margin == "logit" else "Certified l2 radius"
        return cls.from_predictions(
            margins,
            required_margin=required_margin,
            bins=bins,
            xlabel=xlabel,
            name=name,
            ax=ax,
            density=density,
            log_scale=log_scale,
            **kwargs,
        )


class MarginTrajectoryDisplay:
    """Minimum and average margin against the training epoch.

    Create it with :meth:`from_estimator` (a net trained with the
    :class:`~sk_margin.callbacks.MarginStatistics` callback) or
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
    :class:`~sk_margin.callbacks.MarginStatistics` records computable versions
    of both (see its Notes).

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sk_margin.plotting import MarginTrajectoryDisplay
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
            :class:`~sk_margin.callbacks.MarginStatistics`) are plotted at
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
                "`callbacks=[MarginStatistics()]` (from sk_margin.callbacks)."
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
            A fitted net, e.g. :class:`~sk_margin.net.MarginNetClassifier`,
            trained with the :class:`~sk_margin.callbacks.MarginStatistics`
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
    >>> from sk_margin.plotting import CertifiedAccuracyDisplay
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
        name = type(_final(estimator)).__name__ if name is None else name
        y_pred = estimator.predict(X)
        return cls.from_predictions(
            y, y_pred, radii, eps=eps, name=name, ax=ax, **kwargs
        )
