"""Certified accuracy, Wu & Yu's margins, and certified radii through pipelines.

Pure metrics take labels, predictions and per-sample distances to the decision
boundary (:func:`certified_accuracy`, :func:`average_margin`,
:func:`minimum_margin`); :func:`certified_radii` carries certified radii back
through the scalers of a :class:`~sklearn.pipeline.Pipeline`.
"""

import functools

import numpy as np
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    StandardScaler,
)
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.validation import _check_sample_weight, check_is_fitted

from sk_margin._pipeline import final_estimator, prefix_steps, transform_prefix
from sk_margin._validation import check_eps

__all__ = [
    "average_margin",
    "certified_accuracy",
    "certified_detection_accuracy",
    "certified_radii",
    "minimum_margin",
]


def _check_distances(y_true, y_pred, distances, name, sample_weight=None):
    """``(correct, distances, weights)``, validated; distances >= 0, inf allowed."""
    distances = column_or_1d(
        check_array(
            distances, ensure_2d=False, dtype=np.float64, ensure_all_finite=False,
            input_name=name,
        )
    )  # fmt: skip
    y_true, y_pred = column_or_1d(y_true), column_or_1d(y_pred)
    check_consistent_length(y_true, y_pred, distances, sample_weight)
    if not np.all(distances >= 0):  # also catches NaN
        raise ValueError(
            f"{name} must be non-negative (distances to the decision boundary, "
            f"+inf allowed), got {distances[~(distances >= 0)][:5].tolist()}."
        )
    weights = _check_sample_weight(sample_weight, distances, ensure_non_negative=True)
    return y_true == y_pred, distances, weights


def certified_accuracy(y_true, y_pred, radii, eps, *, sample_weight=None):
    """Share of samples classified correctly with a certified radius of at least eps.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predictions of the classifier whose decisions ``radii`` certify.
    radii : array-like of shape (n_samples,)
        Certified l2 radii (lower bounds of the distance to the decision
        boundary, e.g. from :func:`certified_radii`); non-negative, ``inf``
        allowed.
    eps : float or array-like of shape (n_eps,)
        Perturbation size(s), non-negative.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.

    Returns
    -------
    score : float or ndarray of shape (n_eps,)
        A float for a scalar ``eps``; for an array, the certified-accuracy
        curve, one value per entry of ``eps``.

    Notes
    -----
    A sample counts at ``eps`` iff ``y_pred == y_true`` and ``radius >= eps``,
    the convention of Cohen et al. A radius ``r`` lower-bounds the distance
    to the decision boundary, so no perturbation of norm ``< r`` changes the
    decision: the certified accuracy at ``eps`` lower-bounds the accuracy
    under every perturbation of norm ``< eps`` (of norm ``<= eps`` where
    ``radius > eps``). At ``eps = 0`` it is the accuracy. Theorem 2.1 of
    Hein & Andriushchenko certifies the closed ball, Theorem 2.1 of Kesidis
    et al. the open one.

    References
    ----------
    .. [1] J. Cohen, E. Rosenfeld and Z. Kolter, "Certified adversarial
       robustness via randomized smoothing", ICML 2019.

    Examples
    --------
    >>> from sk_margin.metrics import certified_accuracy
    >>> y_true, y_pred, radii = [0, 1, 1, 0], [0, 1, 0, 0], [0.5, 0.2, 0.9, 0.0]
    >>> certified_accuracy(y_true, y_pred, radii, 0.2)
    0.5
    >>> certified_accuracy(y_true, y_pred, radii, [0.0, 0.2, 0.3])
    array([0.75, 0.5 , 0.25])
    """
    correct, radii, w = _check_distances(y_true, y_pred, radii, "radii", sample_weight)
    eps, scalar = check_eps(eps)
    scores = (correct & (radii >= eps[:, None])) @ w / w.sum()
    return float(scores[0]) if scalar else scores


def certified_detection_accuracy(
    y_true, y_pred, guaranteed_radii, eps, *, accepted=None, sample_weight=None
):
    """Share of samples classified correctly, accepted, and guarded up to eps.

    The certified accuracy of a classifier with a detector in front of it
    (see :meth:`sk_margin.MarginPValueDetector.guaranteed_radius`): a sample
    counts at ``eps`` when it is classified correctly, not flagged, and every
    misclassified input within ``eps`` of it would be flagged.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predictions of the classifier.
    guaranteed_radii : array-like of shape (n_samples,)
        Radii within which every misclassification is flagged; non-negative,
        ``inf`` allowed.
    eps : float or array-like of shape (n_eps,)
        Perturbation size(s), non-negative.
    accepted : array-like of bool of shape (n_samples,), default=None
        Whether the detector accepts each clean sample (``predict == 1``);
        None: all are.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.

    Returns
    -------
    score : float or ndarray of shape (n_eps,)
        A float for a scalar ``eps``, else one value per entry of ``eps``.

    Examples
    --------
    >>> from sk_margin.metrics import certified_detection_accuracy
    >>> certified_detection_accuracy(
    ...     [0, 1, 1, 0],
    ...     [0, 1, 0, 0],
    ...     [0.5, 0.2, 0.9, 0.3],
    ...     0.25,
    ...     accepted=[True, True, True, False],
    ... )
    0.25
    """
    correct, radii, w = _check_distances(
        y_true, y_pred, guaranteed_radii, "guaranteed_radii", sample_weight
    )
    if accepted is not None:
        accepted = column_or_1d(check_array(accepted, ensure_2d=False, dtype=None))
        check_consistent_length(correct, accepted)
        if accepted.dtype.kind != "b":
            raise ValueError(
                "accepted must be booleans (the detector's predict(X) == 1), got "
                f"dtype {accepted.dtype}."
            )
        correct = correct & accepted
    eps, scalar = check_eps(eps)
    scores = (correct & (radii >= eps[:, None])) @ w / w.sum()
    return float(scores[0]) if scalar else scores


def average_margin(
    y_true, y_pred, distances, *, misclassified="distance", sample_weight=None
):
    """Average margin of Wu & Yu: the mean distance to the decision boundary.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    distances : array-like of shape (n_samples,)
        Distance of each sample to the boundary of its predicted class region,
        or a bound of it (see Notes); non-negative.
    misclassified : {"distance", "zero"}, default="distance"
        What a misclassified sample contributes: its distance (Wu & Yu), or 0
        (with certified radii: the average certified radius of Zhai et al.).
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.

    Returns
    -------
    score : float
        The (weighted) mean, in the units of ``distances``.

    Notes
    -----
    Wu & Yu (Section 2, eq. 6) define the margin ``m(x, y) = sign(y_hat, y)
    d(x, bd F_y_hat)``, the distance to the boundary of the predicted
    region, negated for a misclassified ``x``, and the average margin
    ``(1/n) sum_i |m(x_i, y_i)|``: a mean over *all* samples. Certified radii
    as ``distances`` give a lower bound of it, distances to adversarial
    examples an upper bound, ``abs(clf.margins(X, y))`` the logit-unit
    analogue.

    References
    ----------
    .. [1] K. Wu and Y. Yu, "Understanding adversarial robustness: the
       trade-off between minimum and average margin", 2019, Section 2.
    .. [2] R. Zhai et al., "MACER: attack-free and scalable robust training
       via maximizing certified radius", ICLR 2020.

    Examples
    --------
    >>> from sk_margin.metrics import average_margin
    >>> y_true, y_pred, d = [0, 1, 1, 0], [0, 1, 0, 0], [0.5, 0.2, 0.9, 0.0]
    >>> round(average_margin(y_true, y_pred, d), 4)
    0.4
    >>> round(average_margin(y_true, y_pred, d, misclassified="zero"), 4)
    0.175
    """
    if misclassified not in ("distance", "zero"):
        raise ValueError(
            f"misclassified must be 'distance' or 'zero', got {misclassified!r}."
        )
    correct, d, w = _check_distances(
        y_true, y_pred, distances, "distances", sample_weight
    )
    if misclassified == "zero":
        d = np.where(correct, d, 0.0)
    return float(np.average(d, weights=w))


def minimum_margin(y_true, y_pred, distances):
    """Minimum margin of Wu & Yu: the smallest signed distance to the boundary.

    Parameters
    ----------
    y_true : array-like of shape (n_samples,)
        True labels.
    y_pred : array-like of shape (n_samples,)
        Predicted labels.
    distances : array-like of shape (n_samples,)
        Distance of each sample to the boundary of its predicted class region,
        or a bound of it; non-negative.

    Returns
    -------
    score : float
        ``min_i m(x_i, y_i)``, with ``m`` the distance of a correctly
        classified sample and minus that of a misclassified one: negative as
        soon as one sample is misclassified.

    Notes
    -----
    Wu & Yu, Section 2, eq. 6. With certified radii as ``distances`` it is a
    lower bound of the minimum margin when every sample is classified
    correctly and an upper bound otherwise.

    References
    ----------
    .. [1] K. Wu and Y. Yu, "Understanding adversarial robustness: the
       trade-off between minimum and average margin", 2019, Section 2.

    Examples
    --------
    >>> from sk_margin.metrics import minimum_margin
    >>> minimum_margin([0, 1, 1], [0, 1, 1], [0.5, 0.2, 0.9])
    0.2
    >>> minimum_margin([0, 1, 1], [0, 1, 0], [0.5, 0.2, 0.9])
    -0.9
    """
    correct, d, _ = _check_distances(y_true, y_pred, distances, "distances")
    return float(np.min(np.where(correct, d, -d))) + 0.0


# --------------------------------------------------------------------------
# The input space of a pipeline
# --------------------------------------------------------------------------


def _step_gain(name, step):
    """``|d|`` of a diagonal affine step ``x -> d * x + b``, per feature."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return 1.0
    kind = type(step)  # exact types: a subclass may transform differently
    if kind is FunctionTransformer and step.func is None:
        return 1.0
    if kind in (StandardScaler, MinMaxScaler, MaxAbsScaler):
        check_is_fitted(step)
        if step.scale_ is None:  # StandardScaler(with_std=False)
            return 1.0
        scale = np.abs(np.asarray(step.scale_, dtype=np.float64))
        return scale if kind is MinMaxScaler else 1.0 / scale
    raise TypeError(
        f"Pipeline step {name!r} ({kind.__name__}) is not a known affine map with "
        "a known l2 operator norm, so no sound bound carries a radius certified "
        "after it back to the pipeline's input space. Steps allowed before the "
        "classifier: StandardScaler, MinMaxScaler, MaxAbsScaler, "
        "FunctionTransformer(func=None), 'passthrough', None. To certify in the "
        "transformed space: pipe[-1].certify(pipe[:-1].transform(X))."
    )


def _prefix_gain(estimator):
    """Largest l2 gain of the (diagonal affine) steps before the final estimator."""
    gains = (_step_gain(name, step) for name, step in prefix_steps(estimator))
    return float(np.max(np.abs(functools.reduce(np.multiply, gains, 1.0))))


def certified_radii(estimator, X, **certify_params):
    """Certified l2 radii in the input space of an estimator or pipeline.

    Parameters
    ----------
    estimator : estimator or Pipeline
        A fitted estimator with ``certify(X, ...)``, or a fitted (possibly
        nested) :class:`~sklearn.pipeline.Pipeline` of diagonal affine steps
        (see Notes) before such an estimator; either may be wrapped in a
        :class:`~sklearn.frozen.FrozenEstimator`.
    X : array-like of shape (n_samples, ...)
        Points to certify, in the input space of ``estimator``.
    **certify_params : dict
        Passed on to ``certify``, e.g. ``method="second_order"`` for
        :class:`~sk_margin.MarginKernelLogReg`.

    Returns
    -------
    radii : ndarray of shape (n_samples,)
        No perturbation of ``X`` of a smaller l2 norm changes the prediction.

    Notes
    -----
    The steps before the classifier compose to ``T(x) = D x + b``,
    ``D = diag(d)``: a change ``delta`` of the input moves ``T(x)`` by
    ``D delta``, of norm at most ``max_i |d_i| ||delta||``, so a radius ``r``
    certified after ``T`` is ``r / max_i |d_i|`` before it (the largest
    radius sound for every ``r``). Known steps, by exact type:
    ``StandardScaler`` (``d = 1 / scale_``; 1 with ``with_std=False``),
    ``MinMaxScaler`` (``d = scale_``; its ``clip`` is 1-Lipschitz per
    feature), ``MaxAbsScaler`` (``d = 1 / scale_``),
    ``FunctionTransformer(func=None)``, ``"passthrough"`` and None. Any
    other step raises a TypeError.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from sk_margin import MarginKernelLogReg
    >>> from sk_margin.metrics import certified_radii
    >>> X, y = make_blobs(60, centers=2, cluster_std=0.5, random_state=0)
    >>> pipe = make_pipeline(MinMaxScaler(), MarginKernelLogReg()).fit(X, y)
    >>> radii = certified_radii(pipe, X[:3])
    >>> inner = pipe[-1].certify(pipe[0].transform(X[:3]))
    >>> bool((radii == inner / pipe[0].scale_.max()).all())
    True
    """
    final = final_estimator(estimator)
    if not callable(getattr(final, "certify", None)):
        raise TypeError(
            f"{type(final).__name__} has no certify method; certified_radii needs "
            "an estimator with certify(X), or a Pipeline ending in one."
        )
    gain = _prefix_gain(estimator)
    X = transform_prefix(estimator, X)
    return np.asarray(final.certify(X, **certify_params), dtype=float) / gain
