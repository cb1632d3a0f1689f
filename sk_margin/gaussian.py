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
from sk_margin.margins import score_gaps

__all__ = [
    "CERTIFY_METHODS",
    "GaussianProp21Bound",
    "gaussian_curvature_bound",
    "gaussian_grad_norm_max",
    "gaussian_hessian_norm_max",
    "gaussian_prop21_bound",
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


def gaussian_prop21_bound(x, centers, gamma):
    """Hein & Andriushchenko (2017), Proposition 2.1, for one point ``x``.

    Returns a callable ``bound(R, beta)`` giving, for a radius ``R`` and a
    coefficient matrix ``beta`` of shape (n_pairs, n_centers), upper bounds of
    ``max_{y in B(x, R)} ||grad g(y)||_2`` for each row of ``beta``. The
    quantities that depend only on ``x`` are computed once; each call costs
    ``O(m^2)`` elementwise work plus three matrix products. To certify many
    points, build one :class:`GaussianProp21Bound` and call its ``at(x)``.

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
    bound : GaussianProp21Bound
        Callable as ``bound(R, beta) -> ndarray of shape (n_pairs,)``.

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
    return GaussianProp21Bound(centers, gamma).at(x)


class GaussianProp21Bound:
    """Proposition 2.1 of Hein & Andriushchenko (2017), point after point.

    Holds what depends only on the centres (their pairwise squared distances)
    and the m-by-m work arrays, so that certifying many points allocates
    nothing per point. See :func:`gaussian_prop21_bound` for the bound and
    its derivation.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    gamma : float
        Kernel width parameter.
    """

    def __init__(self, centers, gamma):
        self.centers = np.asarray(centers, dtype=np.float64)
        self.gamma = float(gamma)
        self._center_sq_dist = cdist(self.centers, self.centers, "sqeuclidean")
        m = self.centers.shape[0]
        (
            self._ip,
            self._S,
            self._z,
            self._w,
            self._M,
            self._tmp,
            self._U,
            self._L,
            self._grow,
        ) = (np.empty((m, m)) for _ in range(9))
        self._mask = np.empty((m, m), dtype=bool)
        self._k = None

    def at(self, x):
        """Prepare the bound for the point ``x``.

        Parameters
        ----------
        x : ndarray of shape (n_features,)
            The point to certify.

        Returns
        -------
        self : GaussianProp21Bound
            Ready to be called.
        """
        sq = cdist(np.asarray(x, dtype=np.float64)[None], self.centers, "sqeuclidean")[
            0
        ]
        # <x - c_r, x - c_s> = (|x - c_r|^2 + |x - c_s|^2 - |c_r - c_s|^2) / 2
        # and S^2 = |2x - c_r - c_s|^2 = 2 |x - c_r|^2 + 2 |x - c_s|^2 - |c_r - c_s|^2.
        np.add(sq[:, None], sq[None, :], out=self._ip)
        np.multiply(self._ip, 2.0, out=self._S)
        np.subtract(self._S, self._center_sq_dist, out=self._S)
        np.maximum(self._S, 0.0, out=self._S)
        np.sqrt(self._S, out=self._S)
        np.subtract(self._ip, self._center_sq_dist, out=self._ip)
        np.multiply(self._ip, 0.5, out=self._ip)
        # exp(-gamma e) = k(c_r, x) k(c_s, x) is folded into the coefficients.
        self._k = np.exp(-self.gamma * sq)
        return self

    def __call__(self, R, beta):
        """Upper bounds of ``max_{y in B(x, R)} ||grad g(y)||_2``.

        Parameters
        ----------
        R : float
            Ball radius.
        beta : ndarray of shape (n_pairs, n_centers)
            Coefficients of ``g`` for each class pair.

        Returns
        -------
        ndarray of shape (n_pairs,)
            One bound per row of ``beta``.
        """
        if self._k is None:
            raise RuntimeError("Call at(x) before evaluating the bound.")
        R, gamma = float(R), self.gamma
        ip, S, z, w, M, tmp = self._ip, self._S, self._z, self._w, self._M, self._tmp
        U, L, grow, mask = self._U, self._L, self._grow, self._mask
        # On the ball: P+ = p + z, E- = exp(-gamma e) exp(-2 gamma z) with
        # z = R S + R^2 >= 0; P- = p + w, E+ = exp(-gamma e) exp(-2 gamma w)
        # with w = M^2 - M S <= 0 and M = min(S / 2, R).
        np.multiply(S, R, out=z)
        np.add(z, R * R, out=z)
        np.multiply(S, 0.5, out=M)
        np.minimum(M, R, out=M)
        np.subtract(M, S, out=w)
        np.multiply(w, M, out=w)
        np.multiply(w, -2.0 * gamma, out=grow)
        np.exp(grow, out=grow)  # E+ / exp(-gamma e)
        np.multiply(z, -2.0 * gamma, out=tmp)
        np.exp(tmp, out=tmp)  # E- / exp(-gamma e)
        np.add(ip, z, out=z)  # P+
        np.add(ip, w, out=w)  # P-
        np.greater_equal(z, 0.0, out=mask)
        np.copyto(U, tmp)
        np.copyto(U, grow, where=mask)
        np.multiply(U, z, out=U)  # max(P+, 0) E+ + min(P+, 0) E-
        np.greater_equal(w, 0.0, out=mask)
        np.copyto(L, grow)
        np.copyto(L, tmp, where=mask)
        np.multiply(L, w, out=L)  # max(P-, 0) E- + min(P-, 0) E+
        bk = np.asarray(beta, dtype=np.float64) * self._k
        bp, bn = np.maximum(bk, 0.0), np.maximum(-bk, 0.0)
        sq_norm = (
            np.einsum("km,km->k", bp @ U, bp)
            + np.einsum("km,km->k", bn @ U, bn)
            - 2.0 * np.einsum("km,km->k", bp @ L, bn)
        )
        return 2.0 * gamma * np.sqrt(np.maximum(sq_norm, 0.0))


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
