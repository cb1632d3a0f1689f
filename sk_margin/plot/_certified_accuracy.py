"""Certified accuracy as a function of the l2 radius (a Display)."""

import numpy as np

from sk_margin._pipeline import final_estimator
from sk_margin.metrics import certified_accuracy, certified_radii
from sk_margin.plot._base import _axes

__all__ = ["CertifiedAccuracyDisplay"]


N_EPS = 100


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
            Keyword arguments of ``certify``, e.g.
            ``{"method": "second_order"}``.
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
