"""Scorers for model selection: certified accuracy, average margin, robust accuracy.

Each ``make_*`` function returns a picklable ``scorer(estimator, X, y,
sample_weight=None)`` for ``GridSearchCV(scoring=...)``; greater is better.
With metadata routing enabled, ``scorer.set_score_request(sample_weight=True)``
asks a search to pass it the weights, as scikit-learn's scorers do.
"""

import difflib
from numbers import Integral

from sklearn import get_config
from sklearn.utils.metadata_routing import MetadataRequest

from sk_margin._validation import check_nonnegative
from sk_margin.metrics._certified import (
    average_margin,
    certified_accuracy,
    certified_detection_accuracy,
    certified_radii,
)
from sk_margin.metrics._robustness import robust_accuracy

__all__ = [
    "make_average_margin_scorer",
    "make_certified_accuracy_scorer",
    "make_certified_detection_scorer",
    "make_robust_accuracy_scorer",
]


# The keyword arguments of the estimators' certify methods (after X).
_CERTIFY_PARAMS = ("method", "n_steps")


def _check_certify_params(factory, params, own, hint=""):
    """Reject, when the scorer is made, what no ``certify`` would accept.

    Otherwise a mistyped keyword fails inside every fold, and a search
    reports NaN scores instead of an error.
    """
    unknown = sorted(set(params) - set(_CERTIFY_PARAMS))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, _CERTIFY_PARAMS + own, n=1)
        suggestion = f" Did you mean {close[0]}?" if close and not hint else ""
        keywords = ", ".join(own + _CERTIFY_PARAMS)
        raise TypeError(
            f"{factory}() got an unexpected keyword argument {name!r}; its "
            f"keywords are {keywords} (method and n_steps go on to "
            f"certify).{suggestion}{hint}"
        )
    method = params.get("method")
    if method is not None and not isinstance(method, str):
        raise TypeError(
            f"{factory}(method=...) must be the name of a certify method, a str; "
            f"got {method!r}."
        )
    n_steps = params.get("n_steps")
    if n_steps is not None and not (isinstance(n_steps, Integral) and n_steps >= 1):
        raise ValueError(
            f"{factory}(n_steps=...) must be an int >= 1, got {n_steps!r}."
        )


def _certified_score(estimator, X, y, *, metric, certify_params, **kwargs):
    radii = certified_radii(estimator, X, **certify_params)
    return metric(y, estimator.predict(X), radii, **kwargs)


class _RobustnessScorer:
    """``scorer(estimator, X, y_true, sample_weight=None)``, picklable."""

    def __init__(self, factory, shown, score_func, **kwargs):
        self._factory, self._shown = factory, shown
        self._score_func, self._kwargs = score_func, kwargs

    def __call__(self, estimator, X, y_true, sample_weight=None):
        kwargs = {**self._kwargs, "sample_weight": sample_weight}
        return float(self._score_func(estimator, X, y_true, **kwargs))

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._shown.items())
        return f"{self._factory}({args})"

    def _accept_sample_weight(self):
        # scikit-learn's (private) protocol: without metadata routing, a search
        # passes sample_weight to the scorers for which this returns True.
        return True

    def set_score_request(self, *, sample_weight=None):
        """Request ``sample_weight`` from a search (metadata routing).

        Parameters
        ----------
        sample_weight : bool, str or None, default=None
            True: pass the weights; False: do not; None: raise if they are
            passed (scikit-learn's default); a str: the name they come under.

        Returns
        -------
        self : scorer
            The scorer.
        """
        if not get_config()["enable_metadata_routing"]:
            raise RuntimeError(
                "set_score_request is only available when metadata routing is "
                "enabled: sklearn.set_config(enable_metadata_routing=True)."
            )
        self._request = sample_weight
        return self

    def get_metadata_routing(self):
        """The scorer's metadata request: ``sample_weight`` for ``score``.

        Returns
        -------
        request : sklearn.utils.metadata_routing.MetadataRequest
            Unset (None) unless :meth:`set_score_request` set it.
        """
        request = MetadataRequest(owner=repr(self))
        request.score.add_request(
            param="sample_weight", alias=getattr(self, "_request", None)
        )
        return request


def make_certified_accuracy_scorer(eps, **certify_params):
    """Scorer of the certified accuracy at radius eps, for model selection.

    Parameters
    ----------
    eps : float
        Perturbation size, non-negative.
    **certify_params : dict
        Passed on to ``certify``: ``method`` (e.g. ``"global_pairwise"`` for
        a :class:`~sk_margin.MarginNetClassifier`) and, for
        :class:`~sk_margin.MarginKernelLogReg`, ``n_steps``. Any other keyword
        is a TypeError here, not a failure in every fold of a search.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sample_weight=None)``: the
        :func:`certified_accuracy` at ``eps`` of ``estimator.predict(X)`` with
        :func:`certified_radii` (pipelines of scalers work); greater is
        better.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.model_selection import cross_val_score
    >>> from sk_margin import MarginKernelLogReg
    >>> from sk_margin.metrics import make_certified_accuracy_scorer
    >>> X, y = make_blobs(60, centers=2, cluster_std=1.0, random_state=0)
    >>> scorer = make_certified_accuracy_scorer(eps=0.1)
    >>> scorer
    make_certified_accuracy_scorer(eps=0.1)
    >>> cross_val_score(MarginKernelLogReg(), X, y, cv=2, scoring=scorer).shape
    (2,)
    """
    eps = check_nonnegative(eps, "eps")
    _check_certify_params("make_certified_accuracy_scorer", certify_params, ("eps",))
    return _RobustnessScorer(
        "make_certified_accuracy_scorer", {"eps": eps, **certify_params},
        _certified_score, metric=certified_accuracy, certify_params=certify_params,
        eps=eps,
    )  # fmt: skip


def _detection_score(detector, X, y, *, eps, sample_weight=None):
    for name in ("guaranteed_radius", "estimator_", "predict"):
        if not hasattr(detector, name):
            raise TypeError(
                "make_certified_detection_scorer scores a fitted detector with "
                "guaranteed_radius(X), such as sk_margin.MarginPValueDetector("
                f"margin='certified'); {type(detector).__name__} has no {name}."
            )
    return certified_detection_accuracy(
        y,
        detector.estimator_.predict(X),
        detector.guaranteed_radius(X),
        eps,
        accepted=detector.predict(X) == 1,
        sample_weight=sample_weight,
    )


def make_certified_detection_scorer(eps):
    """Scorer of the certified accuracy with detection at radius eps.

    Parameters
    ----------
    eps : float
        Perturbation size, non-negative.

    Returns
    -------
    scorer : callable
        ``scorer(detector, X, y, sample_weight=None)`` for a fitted
        :class:`~sk_margin.MarginPValueDetector` with ``margin="certified"``:
        :func:`certified_detection_accuracy` at ``eps`` of its classifier's
        predictions, its :meth:`~sk_margin.MarginPValueDetector.guaranteed_radius`
        and its acceptance of the clean samples; greater is better. Use it to
        choose ``fpr`` or ``reject_radius`` by cross-validation.

    Examples
    --------
    >>> from sk_margin.metrics import make_certified_detection_scorer
    >>> make_certified_detection_scorer(eps=0.1)
    make_certified_detection_scorer(eps=0.1)
    """
    eps = check_nonnegative(eps, "eps")
    return _RobustnessScorer(
        "make_certified_detection_scorer", {"eps": eps}, _detection_score, eps=eps
    )


def make_average_margin_scorer(*, misclassified="distance", **certify_params):
    """Scorer of Wu & Yu's average margin, with certified radii as distances.

    Parameters
    ----------
    misclassified : {"distance", "zero"}, default="distance"
        As in :func:`average_margin`; ``"zero"`` scores the average certified
        radius.
    **certify_params : dict
        Passed on to ``certify``: ``method`` and ``n_steps``; any other
        keyword (``eps``, say) is a TypeError here.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sample_weight=None)``: the
        :func:`average_margin` of :func:`certified_radii`, a lower bound of
        the average margin; greater is better.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.model_selection import GridSearchCV
    >>> from sk_margin import MarginKernelLogReg
    >>> from sk_margin.metrics import (
    ...     make_average_margin_scorer,
    ...     make_certified_accuracy_scorer,
    ... )
    >>> X, y = make_blobs(60, centers=2, cluster_std=1.0, random_state=0)
    >>> scoring = {
    ...     "acc": "accuracy",
    ...     "margin": make_average_margin_scorer(),
    ...     "cert": make_certified_accuracy_scorer(eps=0.01),
    ... }
    >>> search = GridSearchCV(
    ...     MarginKernelLogReg(), {"lam": [1e-3, 1e-1]}, scoring=scoring, refit="cert"
    ... ).fit(X, y)
    >>> sorted(key for key in search.cv_results_ if key.startswith("mean_test"))
    ['mean_test_acc', 'mean_test_cert', 'mean_test_margin']
    """
    if misclassified not in ("distance", "zero"):
        raise ValueError(
            f"misclassified must be 'distance' or 'zero', got {misclassified!r}."
        )
    _check_certify_params(
        "make_average_margin_scorer",
        certify_params,
        ("misclassified",),
        hint=(
            " The average margin takes no radius; for the certified accuracy "
            "at a radius, use make_certified_accuracy_scorer(eps=...)."
            if "eps" in certify_params
            else ""
        ),
    )
    shown = {"misclassified": misclassified, **certify_params}
    return _RobustnessScorer(
        "make_average_margin_scorer", shown, _certified_score, metric=average_margin,
        certify_params=certify_params, misclassified=misclassified,
    )  # fmt: skip


def make_robust_accuracy_scorer(
    *, attack="pgd", eps, norm=2, clip_values=None, **attack_params
):
    """Scorer of the accuracy under attack, for model selection.

    Parameters
    ----------
    attack : str or callable, default="pgd"
        As in :func:`robust_accuracy`; a callable must be picklable (e.g. a
        ``functools.partial`` of an ART attack class) for ``n_jobs > 1``.
    eps : float
        Perturbation size, non-negative.
    norm : {1, 2, np.inf, "inf"}, default=2
        Norm of the perturbation.
    clip_values : tuple (lo, hi) or None, default=None
        Box of valid inputs; None: unbounded.
    **attack_params : dict
        Parameters of the attack.

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sample_weight=None)``: the
        :func:`robust_accuracy`; greater is better.

    Examples
    --------
    >>> from sk_margin.metrics import make_robust_accuracy_scorer
    >>> make_robust_accuracy_scorer(eps=0.5)
    make_robust_accuracy_scorer(attack='pgd', eps=0.5, norm=2, clip_values=None)
    """
    eps = check_nonnegative(eps, "eps")
    kwargs = {"attack": attack, "eps": eps, "norm": norm, "clip_values": clip_values}
    kwargs.update(attack_params)
    return _RobustnessScorer(
        "make_robust_accuracy_scorer", kwargs, robust_accuracy, **kwargs
    )
