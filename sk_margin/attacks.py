"""Box-constrained adversarial samples (Hein & Andriushchenko, 2017, Section 4).

The attack linearises the classifier and solves problem (8) of the paper: the
smallest ``l_p`` change ``delta`` (``p`` in ``{1, 2, inf}``) that moves the
linearised score of a target class ``j`` above the one of the predicted class
``c`` while keeping ``x + delta`` inside a box ``[lo, hi]``. Each problem is
solved exactly in ``O(d log d)`` by sorting breakpoints (Proposition 4.1).
Found points give *upper* bounds on the distance to the decision boundary,
to be compared with the certified lower bounds of :mod:`sk_margin.certify`.

All functions are pure: they never modify their inputs.
"""

import numbers

import numpy as np
from sklearn.utils import check_array, check_scalar, column_or_1d

__all__ = [
    "box_constrained_attack",
    "minimal_box_perturbation",
]


def _check_p(p):
    """Return ``p`` as one of ``1``, ``2``, ``np.inf``, or raise."""
    if isinstance(p, str):
        if p == "inf":
            return np.inf
    elif isinstance(p, numbers.Real) and not isinstance(p, bool):
        if p == 1:
            return 1
        if p == 2:
            return 2
        if p == np.inf:
            return np.inf
    raise ValueError(f"p must be one of 1, 2, np.inf or 'inf', got {p!r}.")


# --------------------------------------------------------------------------
# Exact solvers of the linearised problem (8); batched over leading axes.
# Inputs: v (..., d), c (...), lower / upper (..., d) with lower <= 0 <= upper.
# Outputs: delta (..., d), NaN where infeasible.
# --------------------------------------------------------------------------


def _descent_room(v, lower, upper):
    """``|b_i|``: room to the box bound in the descent direction ``-sign(v_i)``."""
    return np.where(v > 0, -lower, np.where(v < 0, upper, 0.0))


def _smallest_level(w, s, c):
    """Smallest ``mu >= 0`` with ``sum_i w_i min(mu, s_i) >= c``, row-wise.

    ``w, s >= 0`` of shape (..., d), ``c`` of shape (...). The left-hand side
    ``phi(mu)`` is concave, non-decreasing and piecewise linear with kinks at
    the ``s_i``; it is evaluated at the sorted kinks with cumulative sums, and
    ``mu`` is found by linear interpolation on the first segment reaching
    ``c``. Returns ``inf`` where ``sup phi = sum_i w_i s_i < c``.
    """
    order = np.argsort(s, axis=-1, kind="stable")
    s_sorted = np.take_along_axis(s, order, axis=-1)
    w_sorted = np.take_along_axis(w, order, axis=-1)
    tail = np.cumsum(w_sorted[..., ::-1], axis=-1)[..., ::-1]  # sum_{i >= k} w_i
    head = np.cumsum(w_sorted * s_sorted, axis=-1)
    head = np.concatenate([np.zeros_like(head[..., :1]), head[..., :-1]], axis=-1)
    level = head + s_sorted * tail  # phi(s_k), non-decreasing in k
    c = np.asarray(c)[..., None]
    reached = level >= c
    feasible = reached.any(axis=-1)
    k = np.argmax(reached, axis=-1)[..., None]
    s_k = np.take_along_axis(s_sorted, k, axis=-1)
    s_prev = np.where(
        k > 0, np.take_along_axis(s_sorted, np.maximum(k - 1, 0), axis=-1), 0.0
    )
    tail_k = np.take_along_axis(tail, k, axis=-1)
    head_k = np.take_along_axis(head, k, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        mu = (c - head_k) / tail_k
    mu = np.where(tail_k > 0, np.clip(mu, s_prev, s_k), s_k)[..., 0]
    mu = np.where(c[..., 0] <= 0, 0.0, mu)
    return np.where(feasible | (c[..., 0] <= 0), mu, np.inf)


def _solve_l2(v, c, lower, upper):
    size = _descent_room(v, lower, upper)
    abs_v = np.abs(v)
    ratio = np.divide(size, abs_v, out=np.zeros_like(size), where=abs_v > 0)
    mu = _smallest_level(v * v, ratio, c)
    finite = np.isfinite(mu)
    delta = np.clip(-np.where(finite, mu, 0.0)[..., None] * v, lower, upper)
    return np.where(finite[..., None], delta, np.nan)


def _solve_linf(v, c, lower, upper):
    size = _descent_room(v, lower, upper)
    t = _smallest_level(np.abs(v), size, c)
    finite = np.isfinite(t)
    delta = np.clip(-np.where(finite, t, 0.0)[..., None] * np.sign(v), lower, upper)
    return np.where(finite[..., None], delta, np.nan)


def _solve_l1(v, c, lower, upper):
    size = _descent_room(v, lower, upper)
    abs_v = np.abs(v)
    order = np.argsort(-abs_v, axis=-1, kind="stable")
    a_sorted = np.take_along_axis(abs_v, order, axis=-1)
    cap = np.take_along_axis(size, order, axis=-1)
    gain = np.cumsum(a_sorted * cap, axis=-1)
    gain_prev = np.concatenate([np.zeros_like(gain[..., :1]), gain[..., :-1]], -1)
    c = np.asarray(c)[..., None]
    reached = gain >= c
    positive = c[..., 0] > 0
    feasible = reached.any(axis=-1) | ~positive
    k = np.argmax(reached, axis=-1)[..., None]
    a_k = np.take_along_axis(a_sorted, k, axis=-1)
    cap_k = np.take_along_axis(cap, k, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        partial = (c - np.take_along_axis(gain_prev, k, axis=-1)) / a_k
    partial = np.where(a_k > 0, np.clip(partial, 0.0, cap_k), 0.0)
    index = np.arange(v.shape[-1])
    amount = np.where(index < k, cap, 0.0)
    np.put_along_axis(amount, k, partial, axis=-1)
    amount = np.where(positive[..., None], amount, 0.0)
    out = np.empty_like(amount)
    np.put_along_axis(out, order, amount, axis=-1)
    delta = np.clip(-np.sign(v) * out, lower, upper)
    return np.where(feasible[..., None], delta, np.nan)


_SOLVERS = {1: _solve_l1, 2: _solve_l2, np.inf: _solve_linf}


def _solve(v, c, lower, upper, p):
    """Dispatch to the exact solver; return ``delta`` and its norm (inf if none)."""
    v, lower, upper = np.broadcast_arrays(v, lower, upper)
    delta = _SOLVERS[p](v, c, lower, upper) + 0.0  # + 0.0 turns -0.0 into 0.0
    norm = np.linalg.norm(delta, ord=p, axis=-1)
    return delta, np.where(np.isnan(norm), np.inf, norm)[()]


def minimal_box_perturbation(v, c, lower, upper, *, p=2):
    """Exact minimiser of the linearised box-constrained problem (8).

    Solves ``min ||delta||_p`` subject to ``<v, delta> <= -c`` and
    ``lower <= delta <= upper``, for ``p`` in ``{1, 2, inf}``, in
    ``O(d log d)`` (Hein & Andriushchenko, 2017, problem (8) and
    Proposition 4.1). For an attack on ``x`` from its class ``c`` towards a
    class ``j``: ``v = grad f_c(x) - grad f_j(x)``, ``c = f_c(x) - f_j(x)``,
    ``lower = lo - x`` and ``upper = hi - x`` for the box ``[lo, hi]``.

    Parameters
    ----------
    v : array-like of shape (..., n_features)
        Normal vector(s) of the linearised constraint. Leading axes are batch
        axes: every row is an independent problem.
    c : float or array-like of shape (...)
        Required decrease of ``<v, delta>``. Where ``c <= 0``, ``delta = 0``.
    lower, upper : float or array-like broadcastable to ``v``
        Box on ``delta``; must satisfy ``lower <= 0 <= upper`` (the point
        itself lies in the box). Finite.
    p : {1, 2, np.inf, "inf"}, default=2
        The norm minimised.

    Returns
    -------
    delta : ndarray of shape (..., n_features)
        A minimiser; rows of NaN where the problem is infeasible, i.e. where
        no ``delta`` in the box reaches ``<v, delta> <= -c``.
    norm : ndarray of shape (...)
        ``||delta||_p``; ``inf`` where the problem is infeasible.

    Notes
    -----
    Write ``b_i`` for the box bound in the descent direction ``-sign(v_i)``
    (``lower_i`` if ``v_i > 0``, else ``upper_i``). The problem is feasible
    iff ``sum_i |v_i| |b_i| >= c``, the largest decrease the box allows.

    *p = 2.* The Lagrangian of (8) for the squared norm is
    ``||delta||^2 / 2 + mu (<v, delta> + c)``; minimising over the box for a
    fixed ``mu >= 0`` separates per coordinate and gives
    ``delta(mu) = clip(-mu v, lower, upper)``. The decrease
    ``-<v, delta(mu)> = sum_i v_i^2 min(mu, |b_i| / |v_i|)`` is non-decreasing
    and piecewise linear in ``mu`` with breakpoints ``|b_i| / |v_i|``. By
    complementary slackness the optimal ``mu`` is the smallest one with a
    decrease of ``c``: sort the breakpoints, evaluate the decrease at all of
    them with cumulative sums, and interpolate linearly on the first segment
    that reaches ``c``.

    *p = inf.* Any ``delta`` in the box with ``||delta||_inf <= t`` has
    ``-<v, delta> <= sum_i |v_i| min(t, |b_i|)``, with equality at
    ``delta(t) = clip(-t sign(v), lower, upper)``. The optimal ``t`` is the
    smallest one whose decrease reaches ``c``: the same breakpoint search,
    with weights ``|v_i|`` and breakpoints ``|b_i|``.

    *p = 1.* Moving coordinate ``i`` by ``a_i in [0, |b_i|]`` in the direction
    ``-sign(v_i)`` costs ``a_i`` and buys a decrease of ``|v_i| a_i``: a
    fractional knapsack (equivalently, the LP dual has one variable). Filling
    the coordinates by decreasing ``|v_i|`` to their capacity ``|b_i|``, the
    last one partially, until the decrease reaches ``c`` is optimal.

    Each case costs one sort plus linear work: ``O(d log d)``.

    References
    ----------
    .. [1] M. Hein and M. Andriushchenko, "Formal guarantees on the robustness
       of a classifier against adversarial manipulation", NeurIPS 2017.

    Examples
    --------
    >>> from sk_margin.attacks import minimal_box_perturbation
    >>> delta, norm = minimal_box_perturbation([1.0, 1.0], 1.0, [-0.2, -1.0], 1.0)
    >>> delta, round(float(norm), 4)
    (array([-0.2, -0.8]), 0.8246)
    >>> minimal_box_perturbation([1.0, 2.0], 1.0, -1.0, 1.0, p=1)
    (array([ 0. , -0.5]), np.float64(0.5))
    >>> minimal_box_perturbation([1.0, 2.0], 1.0, -0.1, 1.0, p=np.inf)
    (array([nan, nan]), np.float64(inf))
    """
    p = _check_p(p)
    v = check_array(v, ensure_2d=False, allow_nd=True, dtype=np.float64, input_name="v")
    c = np.asarray(c, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    try:
        c = np.broadcast_to(c, v.shape[:-1])
        lower = np.broadcast_to(lower, v.shape)
        upper = np.broadcast_to(upper, v.shape)
    except ValueError as exc:
        raise ValueError(
            f"c, lower and upper must broadcast to v's batch shape {v.shape[:-1]} "
            f"and shape {v.shape} respectively, got shapes {np.shape(c)}, "
            f"{np.shape(lower)} and {np.shape(upper)}."
        ) from exc
    for name, arr in (("c", c), ("lower", lower), ("upper", upper)):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} must be finite.")
    if np.any(lower > 0) or np.any(upper < 0):
        raise ValueError(
            "The box must contain delta = 0 (lower <= 0 <= upper), i.e. the "
            "linearisation point must lie in the box; got lower up to "
            f"{lower.max():g} and upper down to {upper.min():g}."
        )
    return _solve(v, c, lower, upper, p)


# --------------------------------------------------------------------------
# The attack.
# --------------------------------------------------------------------------


def _resolve_estimator(estimator):
    """Return ``(scores_fn, jacobian_fn, classes)`` from an estimator or pair."""
    if isinstance(estimator, tuple):
        if len(estimator) != 2 or not all(callable(f) for f in estimator):
            raise TypeError(
                "estimator given as a tuple must be a pair of callables "
                "(scores_fn, jacobian_fn)."
            )
        return estimator[0], estimator[1], None
    missing = [
        name
        for name in ("decision_function", "input_jacobian")
        if not callable(getattr(estimator, name, None))
    ]
    if missing:
        raise TypeError(
            f"estimator {type(estimator).__name__} has no method "
            f"{' or '.join(missing)}; box_constrained_attack needs "
            "decision_function(X) and input_jacobian(X), or a pair of callables "
            "(scores_fn, jacobian_fn)."
        )
    return (
        estimator.decision_function,
        estimator.input_jacobian,
        getattr(estimator, "classes_", None),
    )


def _scores(scores_fn, Z):
    """Scores of shape (m, K); a 1-D binary output ``s`` becomes ``[0, s]``."""
    scores = np.asarray(scores_fn(Z), dtype=np.float64)
    if scores.ndim == 1:
        scores = np.stack([np.zeros_like(scores), scores], axis=1)
    if scores.ndim != 2 or scores.shape[0] != Z.shape[0] or scores.shape[1] < 2:
        raise ValueError(
            f"decision_function must return an array of shape ({Z.shape[0]},) or "
            f"({Z.shape[0]}, n_classes) with n_classes >= 2, got shape "
            f"{np.shape(scores_fn(Z))}."
        )
    return scores


def _jacobian(jacobian_fn, Z, n_classes):
    """Input Jacobian of shape (m, K, d); a binary (m, d) output ``J`` -> ``[0, J]``."""
    jac = np.asarray(jacobian_fn(Z), dtype=np.float64)
    m, d = Z.shape
    if n_classes == 2 and jac.shape == (m, d):
        jac = np.stack([np.zeros_like(jac), jac], axis=1)
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


def _label_indices(y, classes, n_samples, n_classes):
    y = column_or_1d(y)
    if y.shape[0] != n_samples:
        raise ValueError(f"y has {y.shape[0]} samples, but X has {n_samples} samples.")
    if classes is None:
        if not np.issubdtype(y.dtype, np.integer) or np.any((y < 0) | (y >= n_classes)):
            raise ValueError(
                "Without estimator.classes_, y must hold column indices in "
                f"[0, {n_classes}), got {np.unique(y)[:10].tolist()}."
            )
        return y.astype(np.intp)
    classes = np.asarray(classes)
    if classes.shape != (n_classes,):
        raise ValueError(
            f"estimator.classes_ has {classes.size} entries, but decision_function "
            f"gives {n_classes} score columns."
        )
    match = y[:, None] == classes[None, :]
    unknown = ~match.any(axis=1)
    if unknown.any():
        raise ValueError(
            f"y contains labels not in estimator.classes_: "
            f"{np.unique(y[unknown])[:10].tolist()}."
        )
    return np.argmax(match, axis=1)


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
    ``j != c`` exactly (:func:`minimal_box_perturbation`), keep the smallest
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
    p = _check_p(p)
    scores_fn, jacobian_fn, classes = _resolve_estimator(estimator)
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
        success = pred != _label_indices(y, classes, n_samples, n_classes)

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
