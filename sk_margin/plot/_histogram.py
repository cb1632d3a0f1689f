"""Margin histograms of training, held-out and attacked samples (a Display).

Kesidis, Miller & Xiang, Fig. 1. The Display pattern and the helpers are those
of :mod:`sk_margin.plot`.
"""

import numpy as np

from sk_margin._pipeline import final_estimator, transform_prefix
from sk_margin.metrics import certified_radii
from sk_margin.plot._base import _as_1d, _axes, _check_same_length

__all__ = ["MarginHistogramDisplay"]

MARGIN_KINDS = ("logit", "certified")
GROUPS = ("training", "held-out", "attacked")


def _margins(estimator, X, y, margin, certify_params, caller):
    """Logit margins or certified radii; signed by correctness when ``y`` is given."""
    if margin == "certified":
        radii = certified_radii(estimator, X, **(certify_params or {}))
        if y is None:
            return radii
        y = np.asarray(y)
        _check_same_length(X=radii, y=y)
        return np.where(estimator.predict(X) == y, radii, -radii)
    final = final_estimator(estimator)
    if not callable(getattr(final, "margins", None)):
        raise TypeError(
            f"{caller} with margin='logit' needs an estimator with a margins "
            "method, or a Pipeline ending in one (MarginKernelLogReg, "
            f"MarginNetClassifier); got {type(final).__name__}."
        )
    return final.margins(transform_prefix(estimator, X), y)


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
    >>> from sk_margin.plot import MarginHistogramDisplay
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
            Keyword arguments of ``certify``, e.g.
            ``{"method": "second_order"}``.
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
