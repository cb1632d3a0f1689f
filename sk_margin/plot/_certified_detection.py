"""Certified accuracy with detection, against the clean inputs flagged (a Display)."""

import numpy as np

from sk_margin._pipeline import final_estimator
from sk_margin.metrics import (
    certified_accuracy,
    certified_detection_accuracy,
    certified_radii,
)
from sk_margin.plot._base import _axes

__all__ = ["CertifiedDetectionDisplay"]

N_EPS = 100


def _radii_grid(radii, eps, factor):
    if eps is None:
        radii = np.asarray(radii, dtype=np.float64)
        top = factor * radii[np.isfinite(radii)].max(initial=0.0)
        eps = np.linspace(0.0, top if top > 0 else 1.0, N_EPS)
    eps = np.sort(np.atleast_1d(np.asarray(eps, dtype=np.float64)))
    if np.isinf(eps).any() or (eps < 0).any():
        raise ValueError(f"eps must be finite and non-negative, got {eps}.")
    return eps


def _rejection_curves(y_true, y_pred, radii, eps):
    """The Display's curves for the rule ``tau = eps / 2``, at each ``eps``.

    Accepted iff ``r >= eps / 2``, guarded up to ``r + eps / 2``: the
    certified accuracy with detection at ``eps`` is the plain one at
    ``eps / 2``.
    """
    eps = _radii_grid(radii, eps, 2.0)
    r = np.asarray(radii, dtype=np.float64)
    return {
        "eps": eps,
        "certified_accuracy": np.asarray(certified_accuracy(y_true, y_pred, r, eps)),
        "detection_accuracy": np.asarray(
            certified_accuracy(y_true, y_pred, r, eps / 2)
        ),
        "flagged": (r[None, :] < eps[:, None] / 2).mean(axis=1),
    }


class CertifiedDetectionDisplay:
    """What a detector in front of a classifier guarantees, and what it costs.

    A detector that flags every input whose certified radius is below
    ``tau`` guarantees, for every accepted clean input ``x``, that any
    misclassified input within ``r(x) + tau`` is flagged (see
    :meth:`sk_margin.MarginPValueDetector.guaranteed_radius`). At a
    guaranteed radius ``eps`` the best such rule is ``tau = eps / 2``: it
    keeps the inputs certified at ``eps / 2``. The Display shows, against
    ``eps``, the certified accuracy with that detection
    (:func:`~sk_margin.metrics.certified_detection_accuracy`), the share of
    the clean inputs the rule flags, and the plain certified accuracy for
    comparison; :meth:`from_detector` adds a fitted detector's own
    thresholds (``tau_``, set by its false-positive rate) as one more curve.

    Parameters
    ----------
    eps : ndarray of shape (n_eps,)
        Guaranteed radii, ascending.
    certified_accuracy : ndarray of shape (n_eps,)
        Plain certified accuracy at each ``eps``.
    detection_accuracy : ndarray of shape (n_eps,)
        Certified accuracy with detection at each ``eps`` (``tau = eps / 2``).
    flagged : ndarray of shape (n_eps,)
        Share of the clean inputs that rule flags at each ``eps``.
    detector_accuracy : ndarray of shape (n_eps,) or None, default=None
        Certified accuracy with the fitted detector's own thresholds.
    detector_flagged : float or None, default=None
        Share of the clean inputs the fitted detector flags.
    name : str or None, default=None
        Prefix of the legend entries.

    Attributes
    ----------
    lines_ : dict of matplotlib.lines.Line2D
        The curves, by ``"certified"``, ``"detection"``, ``"flagged"`` (and
        ``"detector"``).
    ax_ : matplotlib.axes.Axes
        Axis with the curves.
    figure_ : matplotlib.figure.Figure
        Figure containing the axis.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from sk_margin.plot import CertifiedDetectionDisplay
    >>> disp = CertifiedDetectionDisplay.from_predictions(
    ...     [0, 1, 1, 0], [0, 1, 0, 0], [0.5, 0.2, 0.9, 0.3], eps=[0.0, 0.4, 0.8]
    ... )
    >>> disp.certified_accuracy.tolist(), disp.detection_accuracy.tolist()
    ([0.75, 0.25, 0.0], [0.75, 0.75, 0.25])
    >>> disp.flagged.tolist()  # radius below eps / 2
    [0.0, 0.0, 0.5]
    >>> plt.close("all")
    """

    def __init__(
        self,
        *,
        eps,
        certified_accuracy,
        detection_accuracy,
        flagged,
        detector_accuracy=None,
        detector_flagged=None,
        name=None,
    ):
        self.eps = eps
        self.certified_accuracy = certified_accuracy
        self.detection_accuracy = detection_accuracy
        self.flagged = flagged
        self.detector_accuracy = detector_accuracy
        self.detector_flagged = detector_flagged
        self.name = name

    def plot(self, ax=None, *, name=None):
        """Draw the curves.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.
        name : str, default=None
            Prefix of the legend entries; None uses ``self.name``.

        Returns
        -------
        display : CertifiedDetectionDisplay
            This Display, with ``ax_``, ``figure_`` and ``lines_`` set.
        """
        self.ax_, self.figure_ = _axes(ax, "CertifiedDetectionDisplay.plot")
        name = self.name if name is None else name
        prefix = "" if name is None else f"{name}: "
        plot = self.ax_.plot
        self.lines_ = {}
        (self.lines_["certified"],) = plot(
            self.eps, self.certified_accuracy, label=f"{prefix}certified accuracy"
        )
        (self.lines_["detection"],) = plot(
            self.eps,
            self.detection_accuracy,
            label=f"{prefix}with detection (tau = eps / 2)",
        )
        (self.lines_["flagged"],) = plot(
            self.eps,
            self.flagged,
            linestyle="--",
            label=f"{prefix}clean inputs flagged (tau = eps / 2)",
        )
        if self.detector_accuracy is not None:
            share = self.detector_flagged
            flagged = "" if share is None else f", flags {100 * share:.1f}% clean"
            (self.lines_["detector"],) = plot(
                self.eps,
                self.detector_accuracy,
                linestyle=":",
                label=f"{prefix}with the detector's thresholds{flagged}",
            )
        self.ax_.set(
            xlabel="guaranteed l2 radius eps", ylabel="share of inputs",
            ylim=(-0.02, 1.02),
        )  # fmt: skip
        self.ax_.legend()
        return self

    @classmethod
    def from_predictions(cls, y_true, y_pred, radii, *, eps=None, name=None, ax=None):
        """The curves of given predictions and certified radii.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,)
            True labels.
        y_pred : array-like of shape (n_samples,)
            Predicted labels.
        radii : array-like of shape (n_samples,)
            Certified l2 radii of the predictions, ``>= 0`` (``inf`` allowed).
        eps : array-like of shape (n_eps,), default=None
            Guaranteed radii at which to evaluate. None: 100 points from 0 to
            twice the largest finite radius.
        name : str, default=None
            Prefix of the legend entries.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.

        Returns
        -------
        display : CertifiedDetectionDisplay
            The drawn Display.
        """
        return cls(**_rejection_curves(y_true, y_pred, radii, eps), name=name).plot(ax)

    @classmethod
    def from_estimator(cls, estimator, X, y, *, eps=None, name=None, ax=None):
        """The curves of a fitted classifier with ``certify`` on ``(X, y)``.

        Parameters
        ----------
        estimator : estimator instance
            Fitted, with ``certify`` and ``predict`` (or a Pipeline of scalers
            ending in one; radii by :func:`sk_margin.metrics.certified_radii`).
        X : array-like of shape (n_samples, ...)
            Clean inputs.
        y : array-like of shape (n_samples,)
            True labels.
        eps : array-like of shape (n_eps,), default=None
            Guaranteed radii; None: 100 points up to twice the largest radius.
        name : str, default=None
            Prefix of the legend entries; None: the (final) estimator's class.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.

        Returns
        -------
        display : CertifiedDetectionDisplay
            The drawn Display.
        """
        radii = certified_radii(estimator, X)
        name = type(final_estimator(estimator)).__name__ if name is None else name
        return cls.from_predictions(
            y, estimator.predict(X), radii, eps=eps, name=name, ax=ax
        )

    @classmethod
    def from_detector(cls, detector, X, y, *, eps=None, name=None, ax=None):
        """The curves of a fitted detector's classifier, with its own thresholds.

        Parameters
        ----------
        detector : MarginPValueDetector
            Fitted with ``margin="certified"`` (it has ``guaranteed_radius``).
        X : array-like of shape (n_samples, n_features)
            Clean inputs.
        y : array-like of shape (n_samples,)
            True labels.
        eps : array-like of shape (n_eps,), default=None
            Guaranteed radii; None: 100 points up to twice the largest radius.
        name : str, default=None
            Prefix of the legend entries.
        ax : matplotlib.axes.Axes, default=None
            Axis to draw on; None creates a new figure.

        Returns
        -------
        display : CertifiedDetectionDisplay
            The drawn Display.
        """
        if not hasattr(detector, "guaranteed_radius"):
            raise TypeError(
                "from_detector needs a fitted detector with guaranteed_radius(X), "
                "such as MarginPValueDetector(margin='certified'); got "
                f"{type(detector).__name__}."
            )
        clf = detector.estimator_
        # The radii the detector itself uses (its certify_params).
        radii = certified_radii(clf, X, **(detector.certify_params or {}))
        y_pred = clf.predict(X)
        accepted = detector.predict(X) == 1
        curves = _rejection_curves(y, y_pred, radii, eps)
        own = certified_detection_accuracy(
            y, y_pred, detector.guaranteed_radius(X), curves["eps"],
            accepted=accepted,
        )  # fmt: skip
        disp = cls(
            **curves,
            detector_accuracy=np.asarray(own),
            detector_flagged=float(np.mean(~accepted)),
            name=name,
        )
        return disp.plot(ax)
