"""Sound local bounds of the gradient and Hessian of Gaussian-kernel expansions.

For ``g(y) = sum_r beta_r k(c_r, y)`` (a difference ``f_c - f_j`` of two
outputs, so ``beta = alpha_c - alpha_j``), bounds of
``max_{y in B(x, R)} ||grad g(y)||_2`` and of the Hessian's spectral norm
over the ball. Every one is an *upper* bound, never an estimate. All depend
on ``y`` only through the distances ``t_r = ||y - c_r||_2``, which on the
ball range over ``[max(0, ||x - c_r|| - R), ||x - c_r|| + R]``. The bound of
Proposition 2.1, which sees the signs of the ``beta_r``, is in
:mod:`sk_margin.kernel._quadratic_bound`.
"""

import numpy as np

__all__ = [
    "gaussian_curvature_bound",
    "gaussian_grad_norm_max",
    "gaussian_hessian_norm_max",
    "gaussian_triangle_bound",
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
