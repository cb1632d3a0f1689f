"""Certified-radius formulas and the search over the ball radius ``R``.

Nothing here knows about a particular estimator: the functions take score
gaps and (bounds on) Lipschitz constants or curvatures and turn them into
l2 radii within which the decision provably cannot change.
"""

import numpy as np

from sk_margin.margins import score_gaps

__all__ = [
    "BISECTION_STEPS",
    "ROUNDING_SLACK",
    "bisect_radius",
    "cross_lipschitz_radius",
    "linf_lipschitz_radius",
    "lipschitz_margin_radius",
    "local_lipschitz_radius",
    "proved_radius_search",
    "search_radius",
    "second_order_radius",
]

#: Default number of bisection steps of every search over the ball radius
#: ``R``. Each step halves the bracket; every returned radius was verified,
#: so fewer steps give smaller radii, never unsound ones.
BISECTION_STEPS = 20
#: Relative slack that absorbs floating-point rounding: certified radii are
#: shrunk, and computed Lipschitz bounds enlarged, by this fraction (the
#: scores, gradients, SVDs and products behind them are accurate to about
#: 1e-12 relative in float64).
ROUNDING_SLACK = 1e-9


def _nonneg_ratio(num, den):
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(num <= 0, 0.0, num / den)
    return out


def lipschitz_margin_radius(margin, lipschitz):
    """Radius of Lipschitz-margin training: ``mu / (sqrt(2) * L2)``.

    Tsuzuku, Sato & Sugiyama (2018), Proposition 1, as restated by Ono et al.
    (eq. 3: the margin required for radius ``eps`` is ``sqrt(2) L eps``):
    if every logit is ``L``-Lipschitz in the l2 norm as a vector map, a logit
    margin ``mu`` certifies ``mu / (sqrt(2) L)``.

    Parameters
    ----------
    margin : array-like of shape (n_samples,)
        Logit margins ``f_c - max_{i != c} f_i`` (see
        :func:`sk_margin.margins.logit_margin`).
    lipschitz : float or array-like of shape (n_samples,)
        Upper bound of the l2 -> l2 Lipschitz constant of the logit map.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Certified l2 radii; 0 where the margin is not positive.
    """
    return _nonneg_ratio(margin, np.sqrt(2.0) * np.asarray(lipschitz))


def linf_lipschitz_radius(margin, lipschitz_inf):
    """Radius from an l2 -> l_inf Lipschitz bound: ``mu / (2 * L_inf)``.

    Kesidis, Miller & Xiang, Theorem 2.1.

    ``L_inf`` is a Lipschitz constant of the logit map from the l2 norm of the
    input to the l_inf norm of the output: every logit moves by at most
    ``L_inf * ||delta||_2``, so the top two can close a gap ``mu`` only when
    ``2 L_inf ||delta||_2 >= mu``.

    Parameters
    ----------
    margin : array-like of shape (n_samples,)
        Logit margins.
    lipschitz_inf : float or array-like of shape (n_samples,)
        Upper bound of the l2 -> l_inf Lipschitz constant.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Certified l2 radii; 0 where the margin is not positive.
    """
    return _nonneg_ratio(margin, 2.0 * np.asarray(lipschitz_inf))


def cross_lipschitz_radius(scores, pair_lipschitz):
    """Cross-Lipschitz radius ``min_{j != c} (f_c - f_j) / L_cj``.

    Hein & Andriushchenko (2017), Theorem 2.1 with a constant ``L_cj`` that
    bounds the Lipschitz constant of ``f_c - f_j`` on the whole space (or on
    a ball at least as large as the returned radius).

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores.
    pair_lipschitz : array-like of shape (n_classes, n_classes) or \
            (n_samples, n_classes, n_classes)
        ``L[c, j]``: upper bound of the Lipschitz constant of ``f_c - f_j``,
        shared by all samples or one matrix per sample.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        0 when the two top scores tie.
    """
    gaps, c = score_gaps(scores)
    pair = np.asarray(pair_lipschitz, dtype=np.float64)
    rows = np.arange(len(c))
    lip = pair[c] if pair.ndim == 2 else pair[rows, c]
    ratio = _nonneg_ratio(gaps, lip)
    ratio[rows, c] = np.inf
    return ratio.min(axis=1)


def bisect_radius(
    is_certified, upper, *, lower=None, n_steps=BISECTION_STEPS, rtol=0.0
):
    """Largest radius, found by bisection, at which a certificate holds.

    ``is_certified(R, idx)`` must answer, for the samples ``idx`` and radii
    ``R`` (both of length ``len(idx)``), whether the decision provably does
    not change on the ball of radius ``R``. The returned radius is always one
    at which ``is_certified`` returned True (or 0), so the result is sound
    whatever the accuracy of the bisection and even if the certificate is not
    monotone in ``R``; monotonicity only makes it the largest.

    Parameters
    ----------
    is_certified : callable
        ``is_certified(R, idx) -> ndarray of bool``.
    upper : array-like of shape (n_samples,)
        A radius above which nothing can be certified (e.g. the first-order
        margin). Entries may be 0 (nothing to certify) or ``inf``: then the
        search first doubles from 1 until the certificate fails, at most
        ``n_steps`` times.
    lower : array-like of shape (n_samples,), default=None
        Radii already known to be certified (by any sound means). The search
        starts there and stops at once for the rows where ``is_certified``
        fails at ``lower``: a certificate that grows weaker with ``R`` cannot
        then certify anything larger. The result is never below ``lower``.
    n_steps : int, default=BISECTION_STEPS
        Bisection steps; the result is within ``upper * 2**-n_steps`` of the
        largest certified radius.
    rtol : float, default=0.0
        A row stops as soon as its bracket ``[lo, hi]`` is narrower than
        ``rtol * hi``: for certificates that are expensive to check, a
        relative precision of the radius instead of a fixed step count.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        The largest radius found at which ``is_certified`` held, or
        ``lower`` (0 by default).
    """
    upper = np.asarray(upper, dtype=np.float64)
    lo = np.zeros_like(upper) if lower is None else np.array(lower, dtype=np.float64)
    hi = np.maximum(upper, lo)
    if lower is not None:
        check = np.flatnonzero((lo > 0) & (hi > lo))
        failed = check[~is_certified(lo[check], check)]
        hi[failed] = lo[failed]
    # Unbounded rows: grow the bracket until the certificate fails.
    grow = np.flatnonzero(~np.isfinite(hi))
    if grow.size:
        hi[grow] = 1.0
        for _ in range(n_steps):
            ok = is_certified(hi[grow], grow)
            lo[grow[ok]] = hi[grow[ok]]
            hi[grow[ok]] *= 2.0
            grow = grow[ok]
            if not grow.size:
                break
        if grow.size:  # certified up to the last tried radius; stop there
            hi[grow] = lo[grow]
    # The upper end itself may be certified.
    active = np.flatnonzero(hi > lo)
    if active.size:
        ok = is_certified(hi[active], active)
        lo[active[ok]] = hi[active[ok]]
    for _ in range(n_steps):
        active = np.flatnonzero(hi - lo > rtol * hi)
        if not active.size:
            break
        mid = 0.5 * (lo[active] + hi[active])
        ok = is_certified(mid, active)
        lo[active[ok]] = mid[ok]
        hi[active[~ok]] = mid[~ok]
    return lo


def proved_radius_search(
    evaluate,
    upper,
    *,
    lower=None,
    n_steps=BISECTION_STEPS,
    rtol=5e-3,
    first=0.55,
    check_lower=True,
):
    """Largest certified radius, from checks that each prove a radius themselves.

    For certificates computed for the ball of radius ``R`` that hold, in
    closed form, on every smaller ball, up to a radius ``psi(R)``: bound
    propagation, whose relaxations fitted for ``R`` hold on the smaller balls
    and whose final bounds are lines in the radius. Each check at ``R`` then
    proves ``min(R, psi(R))``, and ``psi`` decreases with ``R`` (looser
    relaxations); the largest certified radius is near the fixed point
    ``psi(R) = R``. A check at ``lower`` gives an upper end ``psi(lower)``;
    the next goes ``first`` of the way up; then the secant of ``psi(R) - R``
    through the last two checks, aimed just above the fixed point so that
    the next check fails and its ``psi``, proved, closes the bracket from
    below; regula falsi or the midpoint where the secant leaves the bracket.
    A row stops once the bracket is narrower than ``rtol`` of its upper end.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(R, idx) -> psi`` for the samples ``idx`` and radii ``R``
        (both of length ``len(idx)``): the check at ``R`` proves the decision
        constant on the ball of radius ``min(R, psi)``; ``psi >= R`` means
        ``R`` itself is certified. ``psi`` may be ``inf``.
    upper : array-like of shape (n_samples,)
        No radius above it is tried; 0 means nothing to certify, ``inf``
        leaves the upper end to ``psi(lower)``.
    lower : array-like of shape (n_samples,), default=None
        Radii already certified by other means; never returns less.
    n_steps : int, default=BISECTION_STEPS
        At most this many checks per row besides the first.
    rtol : float, default=5e-3
        Relative width of the final bracket.
    first : float, default=0.55
        Where in the first bracket the second check goes (the fixed point of
        bound propagation on ReLU networks was measured at 0.54-0.59 of
        ``psi(0)``).
    check_lower : bool, default=True
        Whether the first check of the rows with ``lower > 0`` is at
        ``lower``: a row that fails there stops at once (a certificate that
        weakens as ``R`` grows certifies nothing larger), the others get
        ``psi(lower)`` as their upper end. Rows with ``lower = 0``, or all
        with False, start ``first`` of the way up to ``upper`` (which should
        then be an estimate of ``psi(0)``). Rows with ``upper = inf`` start
        at twice ``lower`` (or 1) and double while certified.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        The largest radius proved by a check, or ``lower`` (0 by default).
    """
    upper = np.asarray(upper, dtype=np.float64)
    lo = np.zeros_like(upper) if lower is None else np.array(lower, dtype=np.float64)
    hi = np.maximum(upper, lo)
    nan = np.full_like(lo, np.nan)
    # The last radius that held and the last that failed, with psi - R; the
    # last two checks, for the secant.
    held, f_held, fail, f_fail = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    last, f_last, last2, f_last2 = nan.copy(), nan.copy(), nan.copy(), nan.copy()

    def check(R, idx):
        psi = np.asarray(evaluate(R, idx), dtype=np.float64)
        ok = psi >= R
        lo[idx] = np.maximum(lo[idx], np.minimum(psi, R))
        good, bad = idx[ok], idx[~ok]
        last2[idx], f_last2[idx] = last[idx], f_last[idx]
        last[idx], f_last[idx] = R, np.minimum(psi - R, 1e300)
        held[good], f_held[good] = R[ok], f_last[good]
        # psi decreases: the fixed point is at most psi(R) (not proved; it
        # only ends the search).
        hi[good] = np.minimum(hi[good], psi[ok])
        fail[bad], f_fail[bad] = R[~ok], f_last[bad]
        hi[bad] = R[~ok]
        return ok, psi

    # Rows whose upper end is within rtol of lower need no check at all.
    room = hi - lo > rtol * hi
    active = np.flatnonzero(room & (lo > 0)) if check_lower else []
    if len(active):
        ok, _ = check(lo[active], active)
        hi[active[~ok]] = lo[active[~ok]]  # fails at lower: nothing larger
    with np.errstate(invalid="ignore"):
        R = lo + first * (hi - lo)
    R = np.where(np.isfinite(hi), R, np.where(lo > 0, 2.0 * lo, 1.0))
    for _ in range(n_steps):
        with np.errstate(invalid="ignore"):
            open_ = (hi - lo > rtol * hi) | (np.isinf(hi) & (lo < hi))
        active = np.flatnonzero(open_)
        if not active.size:
            break
        check(R[active], active)
        a, b = lo[active], hi[active]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            p1, f1 = last[active], f_last[active]
            p2, f2 = last2[active], f_last2[active]
            secant = p1 - f1 * (p1 - p2) / (f1 - f2)
            secant = secant * (1.0 + 0.25 * rtol)
            falsi = held[active] + f_held[active] * (fail[active] - held[active]) / (
                f_held[active] - f_fail[active]
            )
        nxt = 0.5 * (a + b)
        # Safeguarded: a step must cut at least a tenth off the bracket.
        low, high = a + 0.1 * (b - a), b - 0.1 * (b - a)
        nxt = np.where((falsi > a) & (falsi < b), np.clip(falsi, low, high), nxt)
        ok_secant = (secant > a) & (secant < b)
        nxt = np.where(ok_secant, np.clip(secant, low, high), nxt)
        # Far from the fixed point psi can be far from linear (a hockey
        # stick on convolutional nets): halve the bracket's ratio instead.
        with np.errstate(invalid="ignore"):
            wide = (a > 0) & (b > 2.0 * a)
        nxt = np.where(wide, np.sqrt(a * b), nxt)
        R[active] = np.where(np.isfinite(b), nxt, 2.0 * R[active])
    return lo


def local_lipschitz_radius(
    gaps, local_lipschitz, upper, *, lower=None, n_steps=BISECTION_STEPS
):
    """Radius from local cross-Lipschitz bounds on balls, maximised over ``R``.

    Hein & Andriushchenko (2017), Theorem 2.1.

    For ``R > 0`` let ``L_j(R) >= max_{y in B(x, R)} ||grad f_c(y) -
    grad f_j(y)||_2``. Then the decision cannot change on
    ``B(x, min{min_{j != c} (f_c(x) - f_j(x)) / L_j(R), R})``. The radius
    ``R`` is certified when ``min_j gap_j / L_j(R) >= R``; the largest such
    ``R`` is found by :func:`bisect_radius`.

    Parameters
    ----------
    gaps : ndarray of shape (n_samples, n_classes)
        ``f_c(x) - f_j(x)`` with ``+inf`` in the column of ``c`` (see
        :func:`sk_margin.margins.score_gaps`).
    local_lipschitz : callable
        ``local_lipschitz(R, idx) -> ndarray of shape (len(idx), n_classes)``,
        sound upper bounds ``L_j(R)`` for the samples ``idx`` (the column of
        ``c`` is ignored).
    upper : array-like of shape (n_samples,)
        Bracket for the search, e.g. ``min_j gap_j / L_j(0)``.
    lower : array-like of shape (n_samples,), default=None
        Radii already certified by other means (see :func:`bisect_radius`).
    n_steps : int, default=BISECTION_STEPS
        Bisection steps.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Certified l2 radii: the decision is constant on each ball.
    """

    def certified(R, idx):
        lip = local_lipschitz(R, idx)
        phi = _nonneg_ratio(gaps[idx], lip).min(axis=1)
        return phi >= R

    return bisect_radius(certified, upper, lower=lower, n_steps=n_steps)


def second_order_radius(gaps, grad_norms, curvature, upper, *, n_steps=BISECTION_STEPS):
    """Second-order certificate: exact gradient at ``x``, bounded curvature.

    For ``g_j = f_c - f_j`` and ``||y - x||_2 <= R``, Taylor's theorem gives
    ``g_j(y) >= g_j(x) - ||grad g_j(x)||_2 R - M_j(R) R^2 / 2`` with
    ``M_j(R) >= max_{z in B(x, R)} ||Hess g_j(z)||_2``. The radius ``R`` is
    certified when the right-hand side is positive for every ``j != c``.
    Unlike Theorem 2.1 of Hein & Andriushchenko, the first-order term uses
    the exact gradient, so only the (usually small) curvature term is
    bounded.

    Parameters
    ----------
    gaps : ndarray of shape (n_samples, n_classes)
        ``f_c(x) - f_j(x)`` with ``+inf`` in the column of ``c``.
    grad_norms : ndarray of shape (n_samples, n_classes)
        ``||grad f_c(x) - grad f_j(x)||_2``.
    curvature : callable
        ``curvature(R, idx) -> ndarray of shape (len(idx), n_classes)``:
        sound bounds ``M_j(R)``.
    upper : array-like of shape (n_samples,)
        Bracket for the search.
    n_steps : int, default=BISECTION_STEPS
        Bisection steps.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Certified l2 radii: the decision is constant on each ball.
    """

    def certified(R, idx):
        r = R[:, None]
        lower = gaps[idx] - grad_norms[idx] * r - 0.5 * curvature(R, idx) * r**2
        return np.all(lower > 0, axis=1)

    return bisect_radius(certified, upper, n_steps=n_steps)


def search_radius(evaluate, upper, *, lower=None, n_steps=BISECTION_STEPS, rtol=None):
    """Largest radius at which a certificate holds, steered by its own bounds.

    A faster alternative to :func:`bisect_radius` for certificates that can
    say, besides whether a radius ``R`` is certified, how far the bounds
    computed for ``R`` would reach: ``psi(R)``, for example the root of
    ``gap - ||grad|| t - M(R) t^2 / 2`` for the curvature bound ``M(R)`` of
    the ball of radius ``R``. For a certificate that weakens as ``R`` grows,
    ``psi`` decreases, ``R`` is certified exactly when ``R < psi(R)``, and the
    largest certified radius is the root of ``F(R) = psi(R) - R``. The search
    brackets that root, starting from ``psi(lower)`` (an upper end, as
    ``psi(lower) >= psi(R*) = R*``), and narrows the bracket with two kinds
    of step: after a radius ``R`` that failed, ``psi(R)``, which is then just
    below the root; otherwise regula falsi on ``F`` with the Illinois
    modification, or the midpoint when that would leave the bracket. Where
    the bounds vary slowly with
    ``R``, as they do for kernel expansions, ``F`` is nearly linear and a few
    evaluations reach the precision that bisection needs ``n_steps`` for.

    ``psi`` only steers the search: the returned radius is always one at
    which ``evaluate`` reported the certificate to hold (or ``lower``, or 0),
    so the result is sound whatever ``psi`` returns and even if the
    certificate is not monotone in ``R``.

    Parameters
    ----------
    evaluate : callable
        ``evaluate(R, idx) -> (certified, psi)`` for the samples ``idx`` and
        radii ``R`` (both of length ``len(idx)``): an array of bool, whether
        the decision provably does not change on the ball of radius ``R``,
        and an array of float, ``psi(R)``.
    upper : array-like of shape (n_samples,)
        A radius above which nothing can be certified. Entries may be 0
        (nothing to certify) or ``inf``.
    lower : array-like of shape (n_samples,), default=None
        Radii already known to be certified (by any sound means). Rows where
        ``evaluate`` fails at ``lower`` stop there at the cost of one
        evaluation: a certificate that weakens with ``R`` cannot certify
        anything larger. The result is never below ``lower``.
    n_steps : int, default=BISECTION_STEPS
        At most ``n_steps + 2`` evaluations per row.
    rtol : float, default=None
        A row stops as soon as its bracket ``[lo, hi]`` is narrower than
        ``rtol * hi``; None for ``2**-n_steps``, the precision ``n_steps``
        bisection steps give. A much smaller value costs a few evaluations
        more, as the steps converge faster than linearly, and makes the
        result depend on the inputs' last bits only where the certificate
        itself does (the path of the search depends on the values of
        ``psi``, which rounding can move).

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        The largest radius found at which ``evaluate`` certified, or
        ``lower`` (0 by default).
    """
    upper = np.asarray(upper, dtype=np.float64)
    lo = np.zeros_like(upper) if lower is None else np.array(lower, dtype=np.float64)
    hi = np.maximum(upper, lo)
    if rtol is None:
        rtol = 2.0**-n_steps
    # Unbounded rows get a large finite upper end, reached only if certified.
    hi = np.where(np.isfinite(hi), hi, np.maximum(lo, 1.0) * 2.0**n_steps)
    f_lo = np.zeros_like(lo)
    f_hi = np.full_like(lo, -np.inf)
    side = np.zeros(lo.shape, dtype=np.int8)  # the end moved last: -1 lo, 1 hi

    # psi at the lower end gives an upper end of the bracket.
    active = np.flatnonzero(hi > lo)
    if active.size:
        ok, psi = evaluate(lo[active], active)
        stop = active[~ok]
        hi[stop] = lo[stop]
        active, psi = active[ok], np.asarray(psi, dtype=np.float64)[ok]
        f_lo[active] = np.maximum(psi - lo[active], 0.0)
        hi[active] = np.clip(psi, lo[active], hi[active])
    # The upper end itself may be certified.
    active = np.flatnonzero(hi > lo)
    if active.size:
        ok, psi = evaluate(hi[active], active)
        psi = np.asarray(psi, dtype=np.float64)
        lo[active[ok]] = hi[active[ok]]
        f_hi[active] = np.minimum(psi - hi[active], 0.0)
    # After a radius that failed, psi there is a radius just below the root
    # (psi decreases, so psi(R) <= psi(R*) = R* for R > R*): try it next.
    jump = np.full_like(lo, np.nan)
    if active.size:
        failed = ~ok
        jump[active[failed]] = psi[failed]
    for _ in range(n_steps):
        active = np.flatnonzero(hi - lo > rtol * hi)
        if not active.size:
            break
        a, b, fa, fb = lo[active], hi[active], f_lo[active], f_hi[active]
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            R = a + fa * (b - a) / (fa - fb)
        bad = ~(np.isfinite(R) & (R > a) & (R < b))
        # psi(hi) == hi to rounding: the root is within rounding of hi, so try
        # just below it (once in a row) before falling back to the midpoint.
        below = b * (1.0 - 0.5 * rtol)
        near_hi = bad & (fb == 0.0) & (side[active] != 1) & (below > a)
        R = np.where(bad, np.where(near_hi, below, 0.5 * (a + b)), R)
        j = jump[active]
        use_jump = (j > a) & (j < b)
        R = np.where(use_jump, j, R)
        ok, psi = evaluate(R, active)
        psi = np.asarray(psi, dtype=np.float64)
        f = psi - R
        up, down = active[ok], active[~ok]
        lo[up], f_lo[up] = R[ok], np.maximum(f[ok], 0.0)
        hi[down], f_hi[down] = R[~ok], np.minimum(f[~ok], 0.0)
        jump[up] = np.nan
        jump[down] = psi[~ok]
        # Illinois: an end kept twice in a row has its value halved, so that
        # regula falsi cannot stall on one side of a curved F.
        again_lo = up[side[up] == -1]
        f_hi[again_lo] *= 0.5
        again_hi = down[side[down] == 1]
        f_lo[again_hi] *= 0.5
        side[up], side[down] = -1, 1
    return lo
