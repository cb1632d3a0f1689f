"""The linearised problem (8) of Hein & Andriushchenko (2017), solved exactly.

The smallest ``l_p`` change ``delta`` (``p`` in ``{1, 2, inf}``) with
``<v, delta> >= c`` that keeps ``x + delta`` inside a box: for a linearised
classifier, ``v`` is the gradient of ``f_j - f_c`` and ``c = f_c - f_j``.
Each problem is solved in ``O(d log d)`` by sorting breakpoints
(Proposition 4.1). :func:`sk_margin.attacks.box_constrained_attack` iterates
it on the real classifier.
"""

import numpy as np
from sklearn.utils import check_array

from sk_margin._validation import check_norm

__all__ = ["minimal_box_perturbation"]


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
    p = check_norm(p)
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
