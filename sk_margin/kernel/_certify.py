"""Gaussian-kernel expansions: scores, input gradients and certified radii.

A Gaussian-kernel expansion is ``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j`` with
``k(c, x) = exp(-gamma ||x - c||^2)``: the model of
:class:`sk_margin.MarginKernelLogReg`, or of any kernel classifier with the
same form. The functions here take the expansion's arrays, not an estimator.

Local bounds
------------
For ``g(y) = sum_r beta_r k(c_r, y)`` (a difference ``f_c - f_j`` of two
outputs, so ``beta = alpha_c - alpha_j``), three sound bounds of
``max_{y in B(x, R)} ||grad g(y)||_2`` or of the Hessian's spectral norm over
the ball are provided. Every one is an *upper* bound, never an estimate. All
depend on ``y`` only through the distances ``t_r = ||y - c_r||_2``, which on
the ball range over ``[max(0, ||x - c_r|| - R), ||x - c_r|| + R]``.
"""

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.utils import gen_batches
from tqdm.auto import tqdm

from sk_margin.certify import second_order_radius, theorem21_radius
from sk_margin.kernel._quadratic_bound import GaussianProp21Bound
from sk_margin.margins import score_gaps

__all__ = [
    "CERTIFY_METHODS",
    "gaussian_curvature_bound",
    "gaussian_grad_norm_max",
    "gaussian_hessian_norm_max",
    "gaussian_triangle_bound",
    "certify_gaussian_expansion",
    "cross_lipschitz_gram",
    "gaussian_expansion_jacobian",
    "gaussian_expansion_scores",
]

CERTIFY_METHODS = ("auto", "prop21", "triangle", "second_order")
# Certification works on row batches of at most this many entries of the
# (rows, n_classes, n_centers) coefficient arrays (32 MB each).
_CERTIFY_BATCH_ENTRIES = 2**22
# Proposition 2.1 holds nine n_centers x n_centers work arrays (1.2 GB here).
_PROP21_MAX_CENTERS = 4000
# Radii are shrunk by this relative amount to absorb floating-point rounding
# in the scores, gradients and bounds (each accurate to ~1e-12 relative).
_ROUNDING_SLACK = 1e-9


def gaussian_expansion_scores(X, centers, dual_coef, intercept, gamma):
    """Scores ``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Input points.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    dual_coef : ndarray of shape (n_classes, n_centers)
        Coefficients ``alpha``.
    intercept : ndarray of shape (n_classes,)
        Offsets ``b``.
    gamma : float
        Kernel width.

    Returns
    -------
    scores : ndarray of shape (n_samples, n_classes)
        One column per class.
    """
    return rbf_kernel(X, centers, gamma=gamma) @ dual_coef.T + intercept


def gaussian_expansion_jacobian(X, centers, dual_coef, gamma):
    """Input gradients ``grad_x f_j(x)`` of a Gaussian-kernel expansion.

    ``grad_x k(c_r, x) = -2 gamma k(c_r, x) (x - c_r)`` (Hein & Andriushchenko
    2017, Section 2.2).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Input points.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    dual_coef : ndarray of shape (n_classes, n_centers)
        Coefficients ``alpha``.
    gamma : float
        Kernel width.

    Returns
    -------
    jacobian : ndarray of shape (n_samples, n_classes, n_features)
        One gradient per sample and class.
    """
    K = rbf_kernel(X, centers, gamma=gamma)
    weighted = K[:, None, :] * dual_coef[None, :, :]  # (n, K, m)
    J = weighted.sum(axis=2)[:, :, None] * X[:, None, :]
    J -= weighted @ centers
    return -2.0 * gamma * J


def cross_lipschitz_gram(X, centers, K_xc, gamma):
    """Gram matrix of kernel input gradients summed over the training points.

    ``Q[r, s] = sum_i <grad_y k(c_r, x_i), grad_y k(c_s, x_i)>
    = 4 gamma^2 sum_i k_ir k_is <x_i - c_r, x_i - c_s>``, so that for a kernel
    expansion with coefficients ``alpha_l`` one has
    ``sum_i ||grad f_l(x_i)||^2 = alpha_l^T Q alpha_l`` (Hein & Andriushchenko
    2017, eq. 3 and Section 3.1). Computed with two ``n m^2`` matrix products
    and never an ``n x m x d`` or ``n x n x d`` array.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Training points ``x_i``.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    K_xc : ndarray of shape (n_samples, n_centers)
        ``k(x_i, c_r)``.
    gamma : float
        Kernel width.

    Returns
    -------
    Q : ndarray of shape (n_centers, n_centers)
        Symmetric positive semi-definite Gram matrix.
    """
    # <x_i - c_r, x_i - c_s> = |x_i|^2 - <x_i, c_r> - <x_i, c_s> + <c_r, c_s>
    half_sq = 0.5 * np.einsum("nd,nd->n", X, X)
    Mx = K_xc * (half_sq[:, None] - X @ centers.T)
    cross = Mx.T @ K_xc
    Q = cross + cross.T + (K_xc.T @ K_xc) * (centers @ centers.T)
    Q *= 4.0 * gamma**2
    return 0.5 * (Q + Q.T)


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


def certify_gaussian_expansion(
    X,
    centers,
    dual_coef,
    intercept,
    gamma,
    *,
    method="auto",
    n_steps=20,
    progress=False,
):
    """Certified l2 radii of a Gaussian-kernel expansion's decisions.

    See :meth:`sk_margin.MarginKernelLogReg.certify` for the methods.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Points to certify, float64.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    dual_coef : ndarray of shape (n_classes, n_centers)
        Coefficients ``alpha``.
    intercept : ndarray of shape (n_classes,)
        Offsets ``b``.
    gamma : float
        Kernel width.
    method : {"auto", "prop21", "triangle", "second_order"}, default="auto"
        Which certificate.
    n_steps : int, default=20
        Bisection steps over ``R``.
    progress : bool, default=False
        Show a progress bar (tqdm, on stderr) over the rows.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Radii within which the arg-max of the scores cannot change; 0 where
        the two top scores tie.
    """
    if method not in CERTIFY_METHODS:
        raise ValueError(f"method must be one of {CERTIFY_METHODS}, got {method!r}.")
    n_classes, n_centers = dual_coef.shape
    if method == "prop21" and n_centers > _PROP21_MAX_CENTERS:
        raise ValueError(
            f"method='prop21' needs {n_centers}^2-sized work arrays; it is "
            f"available for at most {_PROP21_MAX_CENTERS} centres. Refit with "
            f"n_centers <= {_PROP21_MAX_CENTERS}, or use method='second_order'."
        )
    prop21 = None
    if method == "prop21" or (method == "auto" and n_centers <= _PROP21_MAX_CENTERS):
        prop21 = GaussianProp21Bound(centers, gamma)
    radius = np.empty(X.shape[0])
    rows = max(1, _CERTIFY_BATCH_ENTRIES // (n_classes * n_centers))
    with tqdm(
        total=X.shape[0], desc="certify", unit="rows", disable=not progress
    ) as bar:
        for batch in gen_batches(X.shape[0], rows):
            radius[batch] = _certify_batch(
                X[batch], centers, dual_coef, intercept, gamma, method, n_steps, prop21
            )
            bar.update(batch.stop - batch.start)
    return radius * (1.0 - _ROUNDING_SLACK)


def _certify_batch(X, centers, dual_coef, intercept, gamma, method, n_steps, prop21):
    A = dual_coef
    gaps, c = score_gaps(gaussian_expansion_scores(X, centers, A, intercept, gamma))
    dist = cdist(X, centers)
    beta = A[c][:, None, :] - A[None, :, :]  # (n, K, m): alpha_c - alpha_j
    abs_beta = np.abs(beta)
    J = gaussian_expansion_jacobian(X, centers, A, gamma)
    rows = np.arange(X.shape[0])
    grad_norms = np.linalg.norm(J[rows, c][:, None, :] - J, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        # Theorem 2.1 can never certify beyond the first-order margin,
        # since every local bound is at least ||grad g(x)||.
        first_order = np.where(gaps > 0, gaps / grad_norms, 0.0).min(axis=1)

    def triangle(R, idx):
        return gaussian_triangle_bound(dist[idx], abs_beta[idx], R, gamma)

    def curvature(R, idx):
        return gaussian_curvature_bound(dist[idx], abs_beta[idx], R, gamma)

    radius = np.zeros(X.shape[0])
    if method in ("triangle", "auto"):
        radius = theorem21_radius(gaps, triangle, first_order, n_steps=n_steps)
    if method in ("second_order", "auto"):
        M0 = curvature(np.zeros(X.shape[0]), rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = np.where(gaps > 0, np.sqrt(2.0 * gaps / M0), 0.0)
        upper = np.minimum(first_order, quad.min(axis=1))
        second = second_order_radius(
            gaps, grad_norms, curvature, upper, n_steps=n_steps
        )
        radius = np.maximum(radius, second)
    if prop21 is not None:
        # Theorem 2.1 with Proposition 2.1, one row at a time (it costs
        # O(m^2) per radius tried). In "auto" the local bound is the
        # smaller of Prop. 2.1 and the triangle bound, and the search starts
        # from the radius already certified, so most rows need one check.
        lower = radius if method == "auto" else None
        for i in np.flatnonzero(first_order > radius):
            bound = prop21.at(X[i])

            def local(R, _, i=i, bound=bound):
                lip = bound(R[0], beta[i])[None, :]
                if method == "auto":
                    lip = np.minimum(lip, triangle(R, [i]))
                return lip

            radius[i] = theorem21_radius(
                gaps[i : i + 1],
                local,
                first_order[i : i + 1],
                lower=None if lower is None else lower[i : i + 1],
                n_steps=n_steps,
            )[0]
    return radius
