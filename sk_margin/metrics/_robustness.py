"""Empirical robustness under attack: robust accuracy and relative robustness.

Both run an attack from :mod:`sk_margin.attacks` (ART, or the library's
box-constrained attack) and judge the perturbed points with the estimator's
own ``predict``; both are re-exported by :mod:`sk_margin.metrics`. Their
values are *upper* bounds of the true robustness (an attack that fails does
not prove a point robust), to be compared with the certified lower bounds.
"""

import functools
import warnings

import numpy as np
from sklearn.utils import check_array, check_consistent_length, column_or_1d
from sklearn.utils.validation import _check_sample_weight

from sk_margin._validation import (
    check_attack,
    check_clip_values,
    check_eps,
    check_norm,
)
from sk_margin.attacks import (
    ATTACKS,
    BUDGET_ATTACKS,
    generate_adversarial,
    project_to_ball,
)

__all__ = ["relative_robustness", "robust_accuracy"]


def _row_norms(A, p):
    return np.linalg.norm(A.reshape(len(A), -1), ord=p, axis=1)


def robust_accuracy(
    estimator, X, y, *, attack="pgd", eps, norm=2, clip_values=None,
    sample_weight=None, **attack_params,
):  # fmt: skip
    """Accuracy under adversarial perturbations of norm at most eps.

    Parameters
    ----------
    estimator : estimator or Pipeline
        A fitted classifier that
        :func:`~sk_margin.attacks.generate_adversarial` can attack: with a
        torch ``module_``, or ``decision_function`` and ``input_jacobian``, or
        a Pipeline ending in one.
    X : array-like of shape (n_samples, ...)
        Test inputs.
    y : array-like of shape (n_samples,)
        True labels.
    attack : str or callable, default="pgd"
        ``"fgsm"``, ``"pgd"``, ``"deepfool"``, ``"carlini_wagner"``, ``"box"``
        or a callable building an ART attack, as in
        :func:`~sk_margin.attacks.generate_adversarial`.
    eps : float or array-like of shape (n_eps,)
        Perturbation size(s), non-negative; an array gives the curve.
    norm : {1, 2, np.inf, "inf"}, default=2
        Norm of the perturbation.
    clip_values : tuple (lo, hi) or None, default=None
        Box of valid inputs, which must contain ``X``; None: unbounded.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.
    **attack_params : dict
        Parameters of the attack (e.g. ``max_iter=20``).

    Returns
    -------
    score : float or ndarray of shape (n_eps,)
        Share of samples that ``estimator.predict`` classifies correctly at
        ``x`` and at the attacked point; an array for an array ``eps``.

    Notes
    -----
    Only correctly classified samples are attacked. Each attacked point is
    pulled into the closed ball of radius ``eps`` around ``x`` (and into
    ``clip_values``) in float64 before ``estimator.predict`` judges it, so a
    sample is only ever broken within the ball: the score is an upper bound
    of the accuracy under the worst perturbation, never below the certified
    accuracy of sound radii ``> eps``. ``"fgsm"`` and ``"pgd"`` run once per
    ``eps``; the other attacks, searching for small perturbations, run once,
    then are projected onto every ball. A sample broken at some ``eps``
    stays broken at larger ones, so the curve is non-increasing; at
    ``eps = 0`` it is the accuracy. Wu & Yu (Section 5) report it under l2
    PGD.

    References
    ----------
    .. [1] A. Madry et al., "Towards deep learning models resistant to
       adversarial attacks", ICLR 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_margin import MarginKernelLogReg
    >>> from sk_margin.metrics import robust_accuracy
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200] / 16.0, y[:200]
    >>> clf = MarginKernelLogReg(n_centers=50, random_state=0).fit(X, y)
    >>> box = (0.0, 1.0)
    >>> robust_accuracy(
    ...     clf, X[:50], y[:50], attack="box", eps=[0, 0.3, 1], clip_values=box
    ... )
    array([1.  , 0.94, 0.22])
    """
    p = check_norm(norm, "norm")
    X = check_array(X, allow_nd=True, dtype=np.float64, input_name="X")
    y = column_or_1d(y)
    check_consistent_length(X, y, sample_weight)
    w = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
    eps, scalar = check_eps(eps)
    clip = check_clip_values(clip_values, X)
    check_attack(attack, ATTACKS)
    run = functools.partial(
        generate_adversarial, estimator, attack=attack, norm=p,
        clip_values=clip_values, **attack_params,
    )  # fmt: skip
    robust = estimator.predict(X) == y
    scores, X_min = np.empty(eps.shape), None
    for k in np.argsort(eps, kind="stable"):
        idx = np.flatnonzero(robust)
        if eps[k] > 0 and idx.size:
            if attack in BUDGET_ATTACKS:
                X_adv = run(X[idx], y[idx], eps=float(eps[k]))
            else:  # one run, over the samples correct at eps = 0
                if X_min is None:
                    X_min = X.copy()
                    X_min[idx] = run(X[idx], y[idx], eps=float(eps.max()))
                X_adv = X_min[idx]
            X_eps = project_to_ball(X[idx], X_adv, eps[k], norm=p, clip_values=clip)
            robust[idx] = estimator.predict(X_eps) == y[idx]
        scores[k] = np.average(robust, weights=w)
    return float(scores[0]) if scalar else scores


def relative_robustness(
    estimator, X, *, attack="deepfool", norm=2, clip_values=None,
    failed="exclude", sample_weight=None, **attack_params,
):  # fmt: skip
    """Average relative robustness ``rho_adv``, the mean of ``||r(x)|| / ||x||``.

    Parameters
    ----------
    estimator : estimator or Pipeline
        A fitted classifier, as in :func:`robust_accuracy`.
    X : array-like of shape (n_samples, ...)
        Test inputs, none of norm 0.
    attack : {"deepfool", "carlini_wagner", "box"} or callable, \
            default="deepfool"
        An attack that looks for a minimal change ``r(x)`` of the prediction
        (see :func:`~sk_margin.attacks.generate_adversarial`).
    norm : {1, 2, np.inf, "inf"}, default=2
        Norm of ``r(x)`` and of ``x``.
    clip_values : tuple (lo, hi) or None, default=None
        Box of valid inputs, which must contain ``X``; None: unbounded.
    failed : {"exclude", "inf", "raise"}, default="exclude"
        Samples whose prediction the attack did not change are left out of
        the mean (with a warning), make the result ``inf``, or raise.
    sample_weight : array-like of shape (n_samples,), default=None
        Sample weights.
    **attack_params : dict
        Parameters of the attack.

    Returns
    -------
    score : float
        ``rho_adv``; NaN if ``failed="exclude"`` and every attack failed.

    Notes
    -----
    Matyasko & Chau (slides, "Experiments: MNIST"), after DeepFool
    (Moosavi-Dezfooli et al., eq. 15): ``rho_adv(f) = 1/|D| sum_{x in D}
    ||r(x)||_2 / ||x||_2``, with ``r(x)`` the perturbation found to change
    the *prediction* at ``x``, misclassified samples included. Attacks give
    upper bounds of the minimal perturbation, hence of ``rho_adv``; leaving
    out failures biases it low (they are presumably robust samples).

    References
    ----------
    .. [1] A. Matyasko and L.-P. Chau, "Margin maximization for robust
       classification using deep learning", IJCNN 2017.
    .. [2] S.-M. Moosavi-Dezfooli, A. Fawzi and P. Frossard, "DeepFool: a
       simple and accurate method to fool deep neural networks", CVPR 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_margin import MarginKernelLogReg
    >>> from sk_margin.metrics import relative_robustness
    >>> X, y = load_digits(return_X_y=True)
    >>> X, y = X[:200] / 16.0, y[:200]
    >>> clf = MarginKernelLogReg(n_centers=50, random_state=0).fit(X, y)
    >>> rho = relative_robustness(clf, X[:50], attack="box", clip_values=(0, 1))
    >>> round(rho, 2)
    0.22
    """
    if failed not in ("exclude", "inf", "raise"):
        raise ValueError(f"failed must be 'exclude', 'inf' or 'raise', got {failed!r}.")
    if attack in BUDGET_ATTACKS or not (callable(attack) or attack in ATTACKS):
        raise ValueError(
            "attack must search for a minimal perturbation: 'deepfool', "
            f"'carlini_wagner', 'box' or a callable; got {attack!r}."
        )
    p = check_norm(norm, "norm")
    X = check_array(X, allow_nd=True, dtype=np.float64, input_name="X")
    w = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
    x_norms = _row_norms(X, p)
    if np.any(x_norms == 0):
        raise ValueError(
            "relative_robustness divides by ||x||, but X has rows of norm 0: "
            f"{np.flatnonzero(x_norms == 0)[:10].tolist()}."
        )
    X_adv = generate_adversarial(
        estimator, X, attack=attack, norm=p, clip_values=clip_values,
        **attack_params,
    )  # fmt: skip
    ok = estimator.predict(X_adv) != estimator.predict(X)
    if not ok.all():
        msg = f"The attack left the prediction of {(~ok).sum()} of {len(X)} samples"
        if failed == "raise":
            raise ValueError(msg + " unchanged.")
        if failed == "inf":
            return float("inf")
        warnings.warn(msg + " unchanged; they are left out of rho_adv.", stacklevel=2)
        if not ok.any():
            return float("nan")
    return float(np.average(_row_norms(X_adv - X, p)[ok] / x_norms[ok], weights=w[ok]))
