"""Sound local bounds of the gradient and Hessian of Gaussian-kernel expansions.

For ``g(y) = sum_r beta_r k(c_r, y)`` (a difference ``f_c - f_j`` of two
outputs, so ``beta = alpha_c - alpha_j``), bounds of
``max_{y in B(x, R)} ||grad g(y)||_2`` and of the Hessian's spectral norm
over the ball, and of its third directional derivatives. Every one is an
*upper* bound, never an estimate. The local ones depend on ``y`` only through
the distances ``t_r = ||y - c_r||_2``, which on the ball range over
``[max(0, ||x - c_r|| - R), ||x - c_r|| + R]``; they sum ``|beta_r|`` terms
and so cannot see coefficients that cancel. The global ones,
:func:`gaussian_rkhs_derivative_factor` times the RKHS norm of ``g``, can.
The bound of Proposition 2.1, which sees the signs of the ``beta_r``, is in
:mod:`sk_margin.kernel._quadratic_bound`.
"""

from math import factorial, sqrt

import numpy as np

__all__ = [
    "gaussian_curvature_bound",
    "gaussian_grad_norm_max",
    "gaussian_hessian_norm_max",
    "gaussian_rkhs_derivative_factor",
    "gaussian_third_derivative_max",
    "gaussian_triangle_bound",
]

# The two interior maxima of the third-derivative envelope (see
# gaussian_third_derivative_max), in tau = sqrt(gamma) t: the roots of
# 4 tau^4 - 12 tau^2 + 3 = 0.
_THIRD_PEAKS = (sqrt((12.0 - sqrt(96.0)) / 8.0), sqrt((12.0 + sqrt(96.0)) / 8.0))


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


def _third_envelope(tau):
    # e^{-tau^2} max_{|a| <= tau} |3a - 2a^3|, without the 4 gamma^{3/2} factor.
    inner = np.where(
        tau <= 1.0 / np.sqrt(2.0),
        3.0 * tau - 2.0 * tau**3,
        np.where(tau <= np.sqrt(2.0), np.sqrt(2.0), 2.0 * tau**3 - 3.0 * tau),
    )
    return np.exp(-np.square(tau)) * inner


def gaussian_third_derivative_max(lo, hi, gamma):
    """Exact maximum over ``t in [lo, hi]`` of the Gaussian's third derivatives.

    For ``k(y) = exp(-gamma ||y - c||^2)``, ``u = y - c``, ``t = ||u||`` and a
    unit direction ``h`` with ``s = <u, h>``, differentiating
    ``exp(-gamma ||u + tau h||^2)`` three times in ``tau`` gives
    ``D^3 k(y)[h, h, h] = k(y) (12 gamma^2 s - 8 gamma^3 s^3)``. As ``h``
    varies, ``s`` takes every value in ``[-t, t]``, so the largest
    ``|D^3 k(y)[h, h, h]|`` over unit ``h`` (the spectral norm of the
    symmetric third-derivative tensor) is ``N(t) = 4 gamma^{3/2} e^{-a^2}
    max_{|b| <= a} |3b - 2b^3|`` with ``a = sqrt(gamma) t``. The inner maximum
    is ``3a - 2a^3`` up to ``a = 1/sqrt(2)``, then ``sqrt(2)`` up to
    ``a = sqrt(2)``, then ``2a^3 - 3a``; ``N`` is continuous, increases up to
    ``a^2 = (12 - sqrt(96)) / 8``, decreases up to ``a = sqrt(2)``, increases
    up to ``a^2 = (12 + sqrt(96)) / 8`` and decreases after it (the roots of
    ``4a^4 - 12a^2 + 3``, where its derivative vanishes). Its maximum on an
    interval is therefore attained at an end or at one of those two peaks.

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
    root = np.sqrt(gamma)
    tlo, thi = root * np.asarray(lo), root * np.asarray(hi)
    out = np.maximum(_third_envelope(tlo), _third_envelope(thi))
    for peak in _THIRD_PEAKS:
        inside = (tlo < peak) & (thi > peak)
        out = np.where(inside, np.maximum(out, _third_envelope(peak)), out)
    return 4.0 * gamma**1.5 * out


def gaussian_rkhs_derivative_factor(order, gamma):
    """``C_p`` with ``|D^p g(y)[h, ..., h]| <= C_p ||g||_H``, all ``y``, unit ``h``.

    For ``g`` in the RKHS ``H`` of ``k(x, y) = exp(-gamma ||x - y||^2)`` (for
    instance ``g = sum_r beta_r k(c_r, .)`` with ``||g||_H^2 = beta^T K beta``),
    the reproducing property holds for derivatives of this smooth kernel:
    ``D^p g(y)[h, ..., h] = <g, d_h^p k(., y)>_H``, so by Cauchy-Schwarz
    ``|D^p g(y)[h, ..., h]| <= ||g||_H ||d_h^p k(., y)||_H`` (Steinwart &
    Christmann 2008, Corollary 4.36). With ``k`` a function of ``x - y``,
    ``||d_h^p k(., y)||_H^2 = (-1)^p d^{2p}/ds^{2p} exp(-gamma s^2)`` at
    ``s = 0``, which is ``(2p)! gamma^p / p!``: ``C_1 = sqrt(2 gamma)``
    bounds the gradient's norm, ``C_2 = sqrt(12) gamma`` the Hessian's
    spectral norm and ``C_3 = sqrt(120 gamma^3)`` the third derivatives,
    everywhere. Unlike the local bounds, these see cancelling coefficients:
    the RKHS norm of a sum of large, cancelling terms is small.

    Parameters
    ----------
    order : int
        Derivative order ``p >= 1``.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    float
        ``sqrt((2p)! gamma^p / p!)``.
    """
    return sqrt(factorial(2 * order) / factorial(order) * gamma**order)
