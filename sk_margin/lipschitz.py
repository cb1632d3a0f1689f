"""Sound upper bounds on (local) Lipschitz constants and curvatures.

Every function here returns an *upper* bound, never an estimate: a
certificate built on it is a lower bound of the distance to the decision
boundary.

Gaussian-kernel expansions
--------------------------
For ``g(y) = sum_r beta_r k(c_r, y)`` with ``k(c, y) = exp(-gamma ||y - c||^2)``
(a difference ``f_c - f_j`` of two outputs of a kernel classifier, so
``beta = alpha_c - alpha_j``), three bounds of
``max_{y in B(x, R)} ||grad g(y)||_2`` or of the Hessian's spectral norm over
the ball are provided. All depend on ``y`` only through the distances
``t_r = ||y - c_r||_2``, which on the ball range over
``[max(0, ||x - c_r|| - R), ||x - c_r|| + R]``.
"""

import numpy as np

__all__ = [
    "gaussian_grad_norm_max",
    "gaussian_hessian_norm_max",
    "gaussian_prop21_bound",
    "gaussian_triangle_bound",
    "gaussian_curvature_bound",
]


def _radius_interval(dist, R):
    R = np.asarray(R, dtype=np.float64)
    R = R[:, None] if dist.ndim == 2 else R
    return np.maximum(dist - R, 0.0), dist + R


def gaussian_grad_norm_max(lo, hi, gamma):
    """``max_{t in [lo, hi]} 2 gamma t exp(-gamma t^2)``, exactly.

    ``||grad_y k(c, y)||_2 = 2 gamma t exp(-gamma t^2)`` with ``t = ||y - c||``.
    The function of ``t`` increases up to ``t* = 1 / sqrt(2 gamma)`` and
    decreases after it, so its maximum on an interval is attained at
    ``t*`` clipped to the interval.

    Parameters
    ----------
    lo, hi : ndarray
        Interval ends, ``0 <= lo <= hi``.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    ndarray
        The maximum, elementwise.
    """
    t = np.clip(1.0 / np.sqrt(2.0 * gamma), lo, hi)
    return 2.0 * gamma * t * np.exp(-gamma * t**2)


def _hessian_norm(u, gamma):
    # u = gamma t^2;  ||Hess|| = exp(-u) * max(2 gamma, |4 gamma u - 2 gamma|)
    return 2.0 * gamma * np.exp(-u) * np.maximum(1.0, np.abs(2.0 * u - 1.0))


def gaussian_hessian_norm_max(lo, hi, gamma):
    """Exact maximum over ``t in [lo, hi]`` of ``||Hess_y k(c, y)||_2``.

    ``Hess_y k(c, y) = k(c, y) (4 gamma^2 (y - c)(y - c)^T - 2 gamma I)`` has
    the eigenvalues ``-2 gamma k`` and ``(4 gamma^2 t^2 - 2 gamma) k``, so its
    spectral norm is ``exp(-gamma t^2) max(2 gamma, |4 gamma^2 t^2 - 2 gamma|)``.
    In ``u = gamma t^2`` this is ``2 gamma e^{-u}`` (decreasing) on
    ``[0, 1]`` and ``2 gamma e^{-u} (2u - 1)`` on ``[1, inf)``, which increases
    up to ``u = 3/2`` and decreases after it. The maximum on an interval is
    therefore attained at an end or at ``u = 3/2``.

    Parameters
    ----------
    lo, hi : ndarray
        Interval ends, ``0 <= lo <= hi``.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    ndarray
        The maximum, elementwise.
    """
    ulo, uhi = gamma * np.square(lo), gamma * np.square(hi)
    out = np.maximum(_hessian_norm(ulo, gamma), _hessian_norm(uhi, gamma))
    inside = (ulo < 1.5) & (uhi > 1.5)
    return np.where(inside, np.maximum(out, _hessian_norm(1.5, gamma)), out)


def gaussian_triangle_bound(dist, abs_beta, R, gamma):
    """Triangle-inequality bound of the local Lipschitz constant.

    ``||grad g(y)|| <= sum_r |beta_r| ||grad_y k(c_r, y)||``, each term
    maximised exactly over the distances reachable in ``B(x, R)`` (see
    :func:`gaussian_grad_norm_max`). Costs ``O(m)`` per sample and class pair.

    Parameters
    ----------
    dist : ndarray of shape (n_samples, n_centers)
        ``||x - c_r||_2``.
    abs_beta : ndarray of shape (n_samples, n_pairs, n_centers)
        ``|beta_r|`` for every sample and class pair.
    R : ndarray of shape (n_samples,)
        Ball radii.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    ndarray of shape (n_samples, n_pairs)
        Upper bounds of ``max_{y in B(x, R)} ||grad g(y)||_2``.
    """
    lo, hi = _radius_interval(dist, R)
    return np.einsum("nkm,nm->nk", abs_beta, gaussian_grad_norm_max(lo, hi, gamma))


def gaussian_curvature_bound(dist, abs_beta, R, gamma):
    """Bound of the Hessian's spectral norm of ``g`` over ``B(x, R)``.

    ``||Hess g(y)||_2 <= sum_r |beta_r| ||Hess_y k(c_r, y)||_2``, each term
    maximised exactly (see :func:`gaussian_hessian_norm_max`).

    Parameters
    ----------
    dist : ndarray of shape (n_samples, n_centers)
        ``||x - c_r||_2``.
    abs_beta : ndarray of shape (n_samples, n_pairs, n_centers)
        ``|beta_r|``.
    R : ndarray of shape (n_samples,)
        Ball radii.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    ndarray of shape (n_samples, n_pairs)
        Upper bounds of ``max_{y in B(x, R)} ||Hess g(y)||_2``.
    """
    lo, hi = _radius_interval(dist, R)
    return np.einsum("nkm,nm->nk", abs_beta, gaussian_hessian_norm_max(lo, hi, gamma))


def gaussian_prop21_bound(x, centers, gamma):
    """Hein & Andriushchenko (2017), Proposition 2.1, for one point ``x``.

    Returns a function ``bound(R, beta)`` giving, for a radius ``R`` and a
    coefficient matrix ``beta`` of shape (n_pairs, n_centers), upper bounds of
    ``max_{y in B(x, R)} ||grad g(y)||_2`` for each row of ``beta``. The
    quantities that depend only on ``x`` (an m-by-m Gram matrix) are computed
    once; each call costs ``O(m^2)`` elementwise work plus three matrix
    products.

    Parameters
    ----------
    x : ndarray of shape (n_features,)
        The point to certify.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    bound : callable
        ``bound(R, beta) -> ndarray of shape (n_pairs,)``.

    Notes
    -----
    With ``y = x + delta``, ``||delta|| = t <= R`` (paper eq. 3 and the
    Gaussian kernel),

    ``||grad g(y)||^2 = 4 gamma^2 sum_{r,s} beta_r beta_s P_rs(y) E_rs(y)``,
    ``P_rs(y) = <y - c_r, y - c_s>``, ``E_rs(y) = exp(-gamma (||y - c_r||^2 +
    ||y - c_s||^2))``.

    Write ``p = <x - c_r, x - c_s>``, ``e = ||x - c_r||^2 + ||x - c_s||^2``,
    ``S = ||2x - c_r - c_s||``. Then ``P_rs = p + <delta, 2x - c_r - c_s> +
    t^2`` and the exponent is ``e + 2 <delta, 2x - c_r - c_s> + 2 t^2``; by
    Cauchy-Schwarz, over the ball,

    * ``P_rs <= p + R S + R^2 =: P+`` and ``P_rs >= min_{t <= R} p - t S + t^2
      = p - M S + M^2 =: P-`` with ``M = min(S / 2, R)``;
    * ``E_rs <= exp(-gamma (e - 2 M S + 2 M^2)) =: E+`` and
      ``E_rs >= exp(-gamma (e + 2 R S + 2 R^2)) =: E-``.

    For a pair with ``beta_r beta_s >= 0`` the term is at most
    ``beta_r beta_s max_y P E <= beta_r beta_s (max(P+, 0) E+ + min(P+, 0) E-)``
    (if ``P+ < 0`` then ``P E <= P+ E-``). For a pair with
    ``beta_r beta_s < 0`` we need a *lower* bound of ``P E``:
    ``P E >= max(P-, 0) E- + min(P-, 0) E+``. This is the paper's
    Proposition 2.1 with its two sums read as running over the pairs with
    ``beta_r beta_s >= 0`` and ``beta_r beta_s < 0`` respectively. The text we
    have indexes them by "``beta_r, beta_s >= 0``" and "``beta_r, beta_s <
    0``", which would drop the mixed-sign pairs and is not a valid bound. With
    ``beta = beta+ - beta-`` the same-sign pairs give
    ``beta+^T U beta+ + beta-^T U beta-`` and the mixed pairs
    ``-2 beta+^T L beta-``, where ``U`` and ``L`` are the bracket matrices;
    they do not depend on the class pair, so all pairs are evaluated with the
    same two matrices.
    """
    x = np.asarray(x, dtype=np.float64)
    diff = x[None, :] - np.asarray(centers, dtype=np.float64)
    ip = diff @ diff.T
    sq = np.einsum("md,md->m", diff, diff)
    e = sq[:, None] + sq[None, :]
    S = np.sqrt(np.maximum(e + 2.0 * ip, 0.0))

    def bound(R, beta):
        R = float(R)
        M = np.minimum(0.5 * S, R)
        p_hi = ip + R * S + R * R
        p_lo = ip - M * S + M * M
        e_hi = np.exp(-gamma * (e - 2.0 * M * S + 2.0 * M * M))
        e_lo = np.exp(-gamma * (e + 2.0 * R * S + 2.0 * R * R))
        U = np.where(p_hi >= 0, p_hi * e_hi, p_hi * e_lo)
        L = np.where(p_lo >= 0, p_lo * e_lo, p_lo * e_hi)
        bp = np.maximum(beta, 0.0)
        bn = np.maximum(-beta, 0.0)
        sq_norm = (
            np.einsum("km,km->k", bp @ U, bp)
            + np.einsum("km,km->k", bn @ U, bn)
            - 2.0 * np.einsum("km,km->k", bp @ L, bn)
        )
        return 2.0 * gamma * np.sqrt(np.maximum(sq_norm, 0.0))

    return bound
