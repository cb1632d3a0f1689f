"""Box-constrained adversarial samples (Hein & Andriushchenko, 2017, Section 4).

The attack linearises the classifier and solves problem (8) of the paper: the
smallest ``l_p`` change ``delta`` (``p`` in ``{1, 2, inf}``) that moves the
linearised score of a target class ``j`` above the one of the predicted class
``c`` while keeping ``x + delta`` inside a box ``[lo, hi]``. Each problem is
solved exactly in ``O(d log d)`` by sorting breakpoints (Proposition 4.1;
:mod:`sk_margin.attacks`).
Found points give *upper* bounds on the distance to the decision boundary,
to be compared with the certified lower bounds of :mod:`sk_margin.certify`.

All functions are pure: they never modify their inputs.
"""

import numbers

import numpy as np
from sklearn.utils import check_array, check_scalar

from sk_margin._validation import (
    as_jacobian_columns,
    as_score_columns,
    check_norm,
    label_indices,
    score_functions,
)
from sk_margin.attacks._box_perturbation import _solve

__all__ = ["box_constrained_attack"]


def _scores(scores_fn, Z):
    """Scores of shape (m, K), validated; binary 1-D scores become two columns."""
    return as_score_columns(scores_fn(Z), n_rows=Z.shape[0])


def _jacobian(jacobian_fn, Z, n_classes):
    """Input Jacobian of shape (m, K, d); a binary (m, d) output ``J`` -> ``[0, J]``."""
    jac = as_jacobian_columns(jacobian_fn(Z), Z.shape)
    m, d = Z.shape
    if jac.shape != (m, n_classes, d):
        raise ValueError(
            f"input_jacobian must return an array of shape ({m}, {n_classes}, {d})"
            f" (or ({m}, {d}) for a binary 1-D decision_function), got shape "
            f"{jac.shape}."
        )
    return jac


def _check_bounds(bounds, n_features):
    try:
        lo, hi = bounds
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bounds must be a pair (lo, hi), got {bounds!r}.") from exc
    lo, hi = (np.asarray(b, dtype=np.float64) for b in (lo, hi))
    for name, b in (("lo", lo), ("hi", hi)):
        if b.shape not in ((), (n_features,)):
            raise ValueError(
                f"bounds {name} must be a scalar or of shape ({n_features},), got "
                f"shape {b.shape}."
            )
        if not np.all(np.isfinite(b)):
            raise ValueError(f"bounds {name} must be finite.")
    lo, hi = np.broadcast_to(lo, n_features), np.broadcast_to(hi, n_features)
    if np.any(lo >= hi):
        bad = np.flatnonzero(lo >= hi)
        raise ValueError(
            f"bounds must satisfy lo < hi, violated at feature(s) {bad[:10].tolist()}"
            f" (lo={lo[bad[0]]:g}, hi={hi[bad[0]]:g})."
        )
    return lo, hi


def _check_in_box(X, lo, hi):
    excess = np.maximum(lo - X, X - hi).max(axis=1)
    bad = np.flatnonzero(excess > 0)
    if bad.size:
        raise ValueError(
            f"X must lie inside the box bounds=[lo, hi]; {bad.size} row(s) lie "
            f"outside, e.g. rows {bad[:10].tolist()}, by up to {excess.max():g}. "
            "Rescale X or widen bounds."
        )


def box_constrained_attack(
    estimator,
    X,
    y=None,
    *,
    p=2,
    bounds=(0.0, 1.0),
    max_iter=20,
    n_bisect=20,
    overshoot=0.02,
):
    """Box-constrained minimal adversarial samples (Hein & Andriushchenko, Sec. 4).

    For every sample ``x`` with predicted class ``c``, repeatedly linearise the
    classifier, solve the box-constrained problem (8) towards every class
    ``j != c`` exactly
    (:func:`~sk_margin.attacks.minimal_box_perturbation`), keep the smallest
    change, and finish with a binary search back towards ``x`` so that the
    returned point lies just beyond the decision boundary.

    Parameters
    ----------
    estimator : object or tuple of two callables
        Either an object with ``decision_function(X)``, returning scores of
        shape (n, K) for K classes or (n,) for binary problems (``f_1 - f_0``,
        the scikit-learn convention), and ``input_jacobian(X)``, returning the
        gradient of those scores with respect to the input, of shape
        (n, K, n_features), resp. (n, n_features) for binary problems; or a
        pair ``(scores_fn, jacobian_fn)`` of callables with the same contract.
        Binary outputs are treated as the two columns ``[0, s]``.
    X : array-like of shape (n_samples, n_features)
        Points to attack; finite and inside the box.
    y : array-like of shape (n_samples,), default=None
        True labels, optional. Samples whose prediction already differs from
        ``y`` are returned unchanged with ``success=True``. Labels are looked
        up in ``estimator.classes_``; without ``classes_`` (e.g. for a pair of
        callables), ``y`` holds column indices of the scores.
    p : {1, 2, np.inf, "inf"}, default=2
        The norm of the perturbation that is minimised.
    bounds : tuple (lo, hi), default=(0.0, 1.0)
        Box constraints; ``lo`` and ``hi`` are finite scalars or arrays of
        shape (n_features,) with ``lo < hi``.
    max_iter : int, default=20
        Maximal number of linearisation steps per sample.
    n_bisect : int, default=20
        Number of bisection steps on the scale ``s`` of the final step
        (see Notes); the returned scale is at most ``(1 + overshoot) *
        2**-n_bisect`` beyond the first crossing found.
    overshoot : float, default=0.02
        Relative overshoot ``delta -> (1 + overshoot) delta`` of each step, so
        that a step onto the linearised boundary crosses it.

    Returns
    -------
    X_adv : ndarray of shape (n_samples, n_features)
        Adversarial points inside the box, float64. Rows without success are
        copies of ``X``.
    success : ndarray of shape (n_samples,) of bool
        Whether ``argmax`` of the scores at ``X_adv`` differs from the class
        attacked (or, with ``y``, the sample was already misclassified).

    Notes
    -----
    At the current iterate ``z`` (first ``z = x``), with ``g_j = f_c(z) -
    f_j(z)`` and ``v_j = grad f_c(z) - grad f_j(z)``, the linearisation of
    ``f_c - f_j`` at ``z`` evaluated at ``x + delta`` is non-positive iff
    ``<v_j, delta> <= -(g_j - <v_j, z - x>)``. This is problem (8) with the
    perturbation always measured from the original ``x`` and the box
    ``lo - x <= delta <= hi - x``; for ``z = x`` it is exactly (8). The
    smallest feasible ``delta`` over ``j != c`` gives the next iterate
    ``z = clip(x + (1 + overshoot) delta, lo, hi)`` (a DeepFool-style
    iteration). For a linear classifier, the first step already yields the
    exact minimal box-constrained change. Once ``argmax f(z) != c``, a
    bisection on the scale ``s in [0, 1 + overshoot]`` of the path
    ``clip(x + s delta, lo, hi)`` (inside the box, with ``||.||_p``
    non-decreasing in ``s``) moves the point back to just beyond the decision
    boundary, in the spirit of the paper's binary search on the output
    difference (Sections 4 and 5); for a linear classifier it stops at
    ``s = 1``, the exact solution. The point returned
    has itself been evaluated and is classified differently from ``c``. If
    every problem (8) is infeasible, or ``max_iter`` is reached, the sample
    fails.

    References
    ----------
    .. [1] M. Hein and M. Andriushchenko, "Formal guarantees on the robustness
       of a classifier against adversarial manipulation", NeurIPS 2017.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_margin.attacks import box_constrained_attack
    >>> w = np.array([1.0, -1.0])
    >>> def scores(X):  # binary: f_1 - f_0 = <w, x> - 0.1
    ...     return X @ w - 0.1
    >>> def jacobian(X):
    ...     return np.tile(w, (len(X), 1))
    >>> X_adv, success = box_constrained_attack((scores, jacobian), [[0.2, 0.6]])
    >>> success
    array([ True])
    >>> np.round(X_adv, 4)
    array([[0.45, 0.35]])
    """
    p = check_norm(p)
    scores_fn, jacobian_fn, classes = score_functions(
        estimator, "box_constrained_attack"
    )
    X = check_array(X, dtype=np.float64, input_name="X")
    n_samples, n_features = X.shape
    lo, hi = _check_bounds(bounds, n_features)
    _check_in_box(X, lo, hi)
    check_scalar(max_iter, "max_iter", numbers.Integral, min_val=1)
    check_scalar(n_bisect, "n_bisect", numbers.Integral, min_val=0)
    check_scalar(overshoot, "overshoot", numbers.Real, min_val=0.0)

    scores = _scores(scores_fn, X)
    n_classes = scores.shape[1]
    pred = np.argmax(scores, axis=1)
    X_adv = X.copy()
    success = np.zeros(n_samples, dtype=bool)
    if y is not None:
        success = pred != label_indices(y, classes, n_samples, n_classes)

    todo = np.flatnonzero(~success)
    x0, target = X[todo], pred[todo]
    lower, upper = (lo - x0)[:, None, :], (hi - x0)[:, None, :]
    Z, D = x0.copy(), np.zeros_like(x0)  # iterate, and its step from x
    found = np.zeros(todo.size, dtype=bool)
    alive = np.ones(todo.size, dtype=bool)
    for it in range(max_iter + 1):
        idx = np.flatnonzero(alive)
        if idx.size == 0:
            break
        s = _scores(scores_fn, Z[idx])
        adv = np.argmax(s, axis=1) != target[idx]
        found[idx[adv]] = True
        alive[idx[adv]] = False
        idx, s = idx[~adv], s[~adv]
        if it == max_iter or idx.size == 0:
            break
        jac = _jacobian(jacobian_fn, Z[idx], n_classes)
        rows, c = np.arange(idx.size), target[idx]
        gap = s[rows, c][:, None] - s  # g_j(z), (m, K)
        v = jac[rows, c][:, None, :] - jac  # v_j(z), (m, K, d)
        rhs = gap - np.einsum("mkd,md->mk", v, Z[idx] - x0[idx])
        delta, norm = _solve(v, rhs, lower[idx], upper[idx], p)
        norm[rows, c] = np.inf
        best = np.argmin(norm, axis=1)
        ok = np.isfinite(norm[rows, best])
        alive[idx[~ok]] = False
        D[idx[ok]] = delta[rows[ok], best[ok]]
        Z[idx[ok]] = np.clip(x0[idx[ok]] + (1.0 + overshoot) * D[idx[ok]], lo, hi)

    fi = np.flatnonzero(found)
    start, step = x0[fi], D[fi]
    low_t, high_t = np.zeros(fi.size), np.full(fi.size, 1.0 + overshoot)
    result = Z[fi]
    for _ in range(n_bisect if fi.size else 0):
        mid = 0.5 * (low_t + high_t)
        point = np.clip(start + mid[:, None] * step, lo, hi)
        adv = np.argmax(_scores(scores_fn, point), axis=1) != target[fi]
        result[adv] = point[adv]
        high_t = np.where(adv, mid, high_t)
        low_t = np.where(adv, low_t, mid)
    X_adv[todo[fi]] = result
    success[todo[fi]] = True
    return X_adv, success
