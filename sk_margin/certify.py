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
