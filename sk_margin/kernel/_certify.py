"""Certified l2 radii of Gaussian-kernel expansions (Hein & Andriushchenko 2017).

Every method lower-bounds the distance from ``x`` to the decision boundary of
``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j`` through ``g_j = f_c - f_j``,
``c`` the predicted class (see :meth:`sk_margin.MarginKernelLogReg.certify`):

=====================  =======================================  ===============
method                 bound                                    cost per row
=====================  =======================================  ===============
``"local_quadratic"``  Theorem 2.1 with Proposition 2.1: the    ``O(m^2)`` per
                       local cross-Lipschitz constant as a      radius tried
                       quadratic form in the signed ``beta``
``"local_triangle"``   Theorem 2.1 with the triangle            ``O(K m)`` per
                       inequality, ``sum_r |beta_r|`` times     radius tried
                       the largest kernel gradient on the ball
``"second_order"``     exact gradient at ``x``, the Hessian's   ``O(K m d)``,
                       norm bounded on the ball (Taylor), by    then ``O(K m)``
                       the smaller of a local and a global      per radius
                       (RKHS) bound                             tried
``"third_order"``      exact gradient and Hessian at ``x``,     ``O(K m d^2)``,
                       the third derivatives bounded on the     then ``O(K m)``
                       ball (local or RKHS, the smaller)        per radius
``"auto"``             the largest of the global RKHS-          that of
                       Lipschitz, second-order, triangle and    ``"second_order"``;
                       (up to 16 features) third-order radii    up to 16 features,
                                                                with the Hessians
=====================  =======================================  ===============

The global bounds use the RKHS norm of ``g_j``, which sees coefficients that
cancel (models fitted with the Cross-Lipschitz regulariser have large ones),
while every local bound sums ``|beta_r|`` terms and cannot.
"""

import numpy as np
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.utils import gen_batches
from tqdm.auto import tqdm

from sk_margin._validation import check_method
from sk_margin.certify import (
    BISECTION_STEPS,
    ROUNDING_SLACK,
    local_lipschitz_radius,
    search_radius,
)
from sk_margin.kernel._bounds import (
    gaussian_grad_norm_max,
    gaussian_hessian_norm_max,
    gaussian_rkhs_derivative_factor,
    gaussian_third_derivative_max,
)
from sk_margin.kernel._expansion import expansion_rkhs_gram, pair_rkhs_norms
from sk_margin.kernel._quadratic_bound import QuadraticGradientBound
from sk_margin.margins import score_gaps

__all__ = ["CERTIFY_METHODS", "certify_gaussian_expansion"]

#: The certify methods of Gaussian-kernel expansions.
CERTIFY_METHODS = (
    "auto",
    "local_quadratic",
    "local_triangle",
    "second_order",
    "third_order",
)
# Former names, accepted with a FutureWarning.
_RENAMED = {"prop21": "local_quadratic", "triangle": "local_triangle"}
# Certification works on row batches of at most this many entries of the
# (rows, n_classes, n_centers) and (rows, n_classes, n_features) work arrays.
_CERTIFY_BATCH_ENTRIES = 2**22
# Proposition 2.1 holds nine n_centers x n_centers work arrays (1.2 GB here).
_QUADRATIC_MAX_CENTERS = 4000
# "auto" adds the third-order certificate up to this many features, where its
# exact Hessians (K m d^2 per row) cost well under a millisecond per row (but
# some 90 times predict, which is cheap with few features), on the rows
# where a cheap test shows it can improve the radius.
_AUTO_THIRD_ORDER_MAX_FEATURES = 16
_EPS = np.finfo(np.float64).eps
# Relative precision of the searches over R, near that of the bounds
# themselves: radii then do not depend on which rows share a batch.
_SEARCH_RTOL = 1e-12


def certify_gaussian_expansion(
    X,
    centers,
    dual_coef,
    intercept,
    gamma,
    *,
    method="auto",
    n_steps=BISECTION_STEPS,
    progress=False,
    rkhs_gram=None,
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
    method : {"auto", "local_quadratic", "local_triangle", "second_order", \
            "third_order"}, default="auto"
        Which certificate (see the table above). The former names
        ``"prop21"`` and ``"triangle"`` still work, with a FutureWarning.
    n_steps : int, default=BISECTION_STEPS
        The search over ``R``: bisection steps for the local Theorem 2.1
        methods; for the others, at most ``n_steps + 2`` bound evaluations,
        stopping once the radius is known to a relative ``1e-12``.
    progress : bool, default=False
        Show a progress bar (tqdm, on stderr) over the rows.
    rkhs_gram : ndarray of shape (n_classes, n_classes), default=None
        :func:`sk_margin.kernel.expansion_rkhs_gram` of the expansion, when
        it is already known (it costs ``O(m^2 d)`` to compute).

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Radii within which the arg-max of the scores cannot change; 0 where
        the two top scores tie.
    """
    method = check_method(method, CERTIFY_METHODS, _RENAMED, "certify")
    n_classes, n_centers = dual_coef.shape
    if method == "local_quadratic" and n_centers > _QUADRATIC_MAX_CENTERS:
        raise ValueError(
            f"method='local_quadratic' needs {n_centers}^2-sized work arrays; it "
            f"is available for at most {_QUADRATIC_MAX_CENTERS} centres. Refit "
            f"with n_centers <= {_QUADRATIC_MAX_CENTERS}, or use "
            "method='second_order'."
        )
    expansion = _Expansion(centers, dual_coef, intercept, gamma, rkhs_gram)
    quadratic = None
    if method == "local_quadratic":
        quadratic = QuadraticGradientBound(centers, gamma)
    radius = np.empty(X.shape[0])
    width = n_classes * max(n_centers, X.shape[1])
    rows = max(1, _CERTIFY_BATCH_ENTRIES // width)
    with tqdm(
        total=X.shape[0], desc="certify", unit="rows", disable=not progress
    ) as bar:
        for batch in gen_batches(X.shape[0], rows):
            state = _Rows(expansion, X[batch])
            radius[batch] = state.certify(method, n_steps, quadratic)
            bar.update(batch.stop - batch.start)
    return radius * (1.0 - ROUNDING_SLACK)


def _quadratic_root(gap, G, M):
    """Positive root of ``gap - G t - M t^2 / 2`` (``inf`` if it never falls)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        root = 2.0 * gap / (G + np.sqrt(G * G + 2.0 * M * gap))
    return np.where(gap > 0, root, 0.0)


def _cubic_root(gap, G, a, b, max_newton=30):
    """Root of ``gap - G t - a t^2 - b t^3`` (``a, b >= 0``), to rounding.

    The polynomial is concave and decreasing on ``t >= 0``, so Newton's method
    started from any upper bound of the root decreases monotonically towards
    it, quadratically once close; it stops when no entry moves by more than
    a relative ``1e-15``. The result only steers the search over ``R`` (it is
    never itself certified), but an accurate one lets that search stop after
    a few steps.
    """
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # Each term alone bounds the root from above where its coefficient
        # is positive. Guarded rather than divided: a coefficient of -0.0
        # (``-0.5 * lambda`` with ``lambda = 0``) gave ``gap / a = -inf``, a
        # NaN start, and a root of ``inf`` that left the search unsteered.
        t = np.fmin(
            np.where(G > 0, gap / G, np.inf),
            np.fmin(
                np.where(a > 0, np.sqrt(gap / a), np.inf),
                np.where(b > 0, np.cbrt(gap / b), np.inf),
            ),
        )
        finite = np.isfinite(t) & (gap > 0)
        t = np.where(finite, t, np.inf)
        for _ in range(max_newton):
            p = gap - t * (G + t * (a + t * b))
            dp = G + t * (2.0 * a + 3.0 * t * b)
            step = np.where(finite, p / dp, 0.0)
            t = t + step
            if not np.any(np.abs(step) > 1e-15 * np.abs(t)):
                break
    return np.where(gap > 0, np.maximum(t, 0.0), 0.0)


class _Expansion:
    """What certification needs of an expansion, computed once per call."""

    def __init__(self, centers, dual_coef, intercept, gamma, rkhs_gram):
        self.centers = np.asarray(centers, dtype=np.float64)
        self.A = np.asarray(dual_coef, dtype=np.float64)
        self.b = np.asarray(intercept, dtype=np.float64)
        self.gamma = float(gamma)
        self.abs_A = np.abs(self.A)
        # |alpha_c - alpha_j| for every predicted class c: (K, K, m).
        self.abs_pairs = np.abs(self.A[:, None, :] - self.A[None, :, :])
        self.center_sq = np.einsum("md,md->m", self.centers, self.centers)
        self.center_norm = np.sqrt(self.center_sq)
        if rkhs_gram is None:
            rkhs_gram = expansion_rkhs_gram(self.centers, self.A, self.gamma)
        norms = pair_rkhs_norms(rkhs_gram, self.centers, self.A, self.gamma)
        factor = gaussian_rkhs_derivative_factor
        self.rkhs_gradient = norms * factor(1, self.gamma)
        self.rkhs_hessian = norms * factor(2, self.gamma)
        self.rkhs_third = norms * factor(3, self.gamma)

    def pair_sums(self, V, c):
        """``sum_r |alpha_cr - alpha_jr| V[i, r]`` for every row ``i`` and ``j``."""
        out = np.empty((V.shape[0], self.A.shape[0]))
        for k in np.unique(c):
            sel = c == k
            out[sel] = V[sel] @ self.abs_pairs[k].T
        return out


class _Rows:
    """One batch of rows: scores, exact gradients, distances, and the searches."""

    def __init__(self, expansion, X):
        e = self.e = expansion
        self.X = X
        n, d = X.shape
        m = e.centers.shape[0]
        sq = euclidean_distances(X, e.centers, squared=True)
        x_sq = np.einsum("nd,nd->n", X, X)
        x_norm = np.sqrt(x_sq)
        # The squared distances come from |x|^2 + |c|^2 - 2 <x, c>; widen the
        # distance intervals by what that can have lost to rounding.
        err = (d + 4) * _EPS * np.square(x_norm[:, None] + e.center_norm[None, :])
        self.dist_lo = np.sqrt(np.maximum(sq - err, 0.0))
        self.dist_hi = np.sqrt(sq + err)
        # As rbf_kernel computes it, so that the decisions are predict's.
        K = sq * -e.gamma
        np.exp(K, out=K)
        self.K = K
        # Each computed k_r is within a relative k_rel of the exact one: an
        # error delta in the exponent (the distance's, times gamma, and the
        # rounding of gamma * sq) moves exp by a factor within e^{+-delta},
        # and exp itself rounds.
        k_rel = np.expm1(e.gamma * (err + 2.0 * _EPS * sq)) + 4.0 * _EPS
        self.K_rel = k_rel
        s = K @ e.A.T
        self.gaps, self.c = score_gaps(s + e.b)
        rows = np.arange(n)
        # The gaps too are computed sums: lower them by what the kernel
        # values' errors (the same for both scores of a pair) and the
        # rounding of each score's sum can have cost.
        sums = K @ e.abs_A.T  # sum_r |alpha_lr| k_r, per class
        gap_err = e.pair_sums(K * k_rel, self.c)
        gap_err += (m + 4) * _EPS * (sums[rows, self.c][:, None] + sums)
        self.gaps = np.where(self.gaps > 0, self.gaps - gap_err, self.gaps)
        self.own = np.zeros(self.gaps.shape, dtype=bool)
        self.own[rows, self.c] = True
        # grad f_l(x) = -2 gamma (s_l x - sum_r alpha_lr k_r c_r), as one
        # matrix product for all rows and classes.
        n_classes = e.A.shape[0]
        weighted = (K[:, None, :] * e.A[None, :, :]).reshape(n * n_classes, m)
        J = (weighted @ e.centers).reshape(n, n_classes, d)
        J = -2.0 * e.gamma * (s[:, :, None] * X[:, None, :] - J)
        diff = J[rows, self.c][:, None, :] - J
        G = np.linalg.norm(diff, axis=2)
        # Rounding in those sums is at most (m + d + 8) eps times the sums of
        # the absolute terms, for each of the two gradients of a pair; the
        # kernel values' own errors add k_rel times theirs.
        reach = x_norm[:, None] + e.center_norm[None, :]
        spread = (K * reach) @ e.abs_A.T
        spread_K = (K * reach * k_rel) @ e.abs_A.T
        J_norm = np.linalg.norm(J, axis=2)
        rounding = (m + d + 8) * _EPS
        term = rounding * (2.0 * e.gamma * spread + J_norm) + 2.0 * e.gamma * spread_K
        G += term[rows, self.c][:, None] + term
        G[self.own] = 0.0
        self.G = G
        with np.errstate(divide="ignore", invalid="ignore"):
            # No certificate here reaches beyond the first-order margin,
            # since every local bound is at least ||grad g(x)||.
            self.first_order = np.where(self.gaps > 0, self.gaps / G, 0.0).min(axis=1)

    # ------------------------------------------------------------ helpers
    def _interval(self, R, idx):
        R = np.asarray(R, dtype=np.float64)[:, None]
        return np.maximum(self.dist_lo[idx] - R, 0.0), self.dist_hi[idx] + R

    def _min_over_pairs(self, values, idx):
        values = np.where(self.own[idx], np.inf, values)
        return values.min(axis=1)

    def _rkhs(self, table, idx):
        return table[self.c[idx]]

    # ------------------------------------------------------------- bounds
    def triangle(self, R, idx):
        """Triangle-inequality bounds of ``max_ball ||grad g_j||``."""
        lo, hi = self._interval(R, idx)
        V = gaussian_grad_norm_max(lo, hi, self.e.gamma)
        return self.e.pair_sums(V, self.c[idx])

    def curvature(self, R, idx):
        """Bounds of ``max_ball ||Hess g_j||``: local or RKHS, the smaller."""
        lo, hi = self._interval(R, idx)
        V = gaussian_hessian_norm_max(lo, hi, self.e.gamma)
        local = self.e.pair_sums(V, self.c[idx])
        return np.minimum(local, self._rkhs(self.e.rkhs_hessian, idx))

    def third(self, R, idx):
        """Bounds of the third directional derivatives of ``g_j`` on the ball."""
        lo, hi = self._interval(R, idx)
        V = gaussian_third_derivative_max(lo, hi, self.e.gamma)
        local = self.e.pair_sums(V, self.c[idx])
        return np.minimum(local, self._rkhs(self.e.rkhs_third, idx))

    # ----------------------------------------------------- certificates
    def lipschitz_eval(self, R, idx):
        """Theorem 2.1 with the smaller of the triangle and the global RKHS bound."""
        lip = np.minimum(self.triangle(R, idx), self._rkhs(self.e.rkhs_gradient, idx))
        with np.errstate(divide="ignore", invalid="ignore"):
            psi = self._min_over_pairs(self.gaps[idx] / lip, idx)
        return psi >= R, psi

    def second_eval(self, R, idx):
        """``g_j(y) >= g_j(x) - ||grad g_j(x)|| R - M_j(R) R^2 / 2``."""
        M = self.curvature(R, idx)
        gaps, G, r = self.gaps[idx], self.G[idx], R[:, None]
        value = np.where(self.own[idx], np.inf, gaps - G * r - 0.5 * M * r * r)
        psi = self._min_over_pairs(_quadratic_root(gaps, G, M), idx)
        return np.all(value > 0, axis=1), psi

    def third_eval(self, R, idx, hessian_min=None):
        """``g_j(y) >= g_j(x) - ||grad|| R + lambda_j R^2 / 2 - N_j(R) R^3 / 6``.

        ``lambda_j <= min(0, lambda_min(Hess g_j(x)))``; 0 for the pre-test of
        whether the certificate can improve on a radius at all.
        """
        N = self.third(R, idx)
        lam = np.zeros_like(N) if hessian_min is None else hessian_min[idx]
        gaps, G, r = self.gaps[idx], self.G[idx], R[:, None]
        value = gaps - r * (G + r * (-0.5 * lam + r * N / 6.0))
        value = np.where(self.own[idx], np.inf, value)
        psi = self._min_over_pairs(_cubic_root(gaps, G, -0.5 * lam, N / 6.0), idx)
        return np.all(value > 0, axis=1), psi

    def hessian_lower_bounds(self, idx):
        """``min(0, lambda_min(Hess g_j(x)))`` lower bounds for the rows ``idx``.

        ``Hess f_l(x) = sum_r alpha_lr k_r (4 gamma^2 u_r u_r^T - 2 gamma I)``
        with ``u_r = x - c_r``, computed exactly (``K m d^2`` per row, as
        batched matrix products over blocks of rows) and lowered by what
        rounding in the sums and the eigensolver can have cost.
        """
        e, gamma = self.e, self.e.gamma
        m, d = e.centers.shape
        n_classes = e.A.shape[0]
        out = np.zeros((len(idx), n_classes))
        step = max(1, _CERTIFY_BATCH_ENTRIES // (n_classes * d * m))
        eye = np.eye(d)
        for start in range(0, len(idx), step):
            sub = idx[start : start + step]
            rows = np.arange(len(sub))
            c = self.c[sub]
            U = self.X[sub][:, None, :] - e.centers[None, :, :]  # (r, m, d)
            w = self.K[sub][:, None, :] * e.A[None, :, :]  # (r, K, m)
            H = np.matmul(U.transpose(0, 2, 1)[:, None] * w[:, :, None, :], U[:, None])
            H *= 4.0 * gamma**2
            s = w.sum(axis=2)
            pair = H[rows, c][:, None] - H  # (r, K, d, d)
            pair -= (2.0 * gamma * (s[rows, c][:, None] - s))[..., None, None] * eye
            eig = np.linalg.eigvalsh(pair)[..., 0]
            u_sq = np.einsum("rmd,rmd->rm", U, U)
            weight = 4.0 * gamma**2 * u_sq + 2.0 * gamma
            k = self.K[sub]
            abs_terms = (
                k * weight * (1.0 + self.K_rel[sub] / ((m + d + 8) * _EPS))
            ) @ (e.abs_A.T)
            err = (m + d + 8) * _EPS * (abs_terms[rows, c][:, None] + abs_terms)
            err += 8 * d * _EPS * np.linalg.norm(pair, axis=(2, 3))
            out[start : start + step] = np.minimum(eig - err, 0.0)
        return out

    # ------------------------------------------------------------ methods
    def rkhs_radius(self):
        """Closed-form radii from the global RKHS bounds alone."""
        idx = np.arange(len(self.c))
        with np.errstate(divide="ignore", invalid="ignore"):
            lip = self.gaps / self._rkhs(self.e.rkhs_gradient, idx)
        lipschitz = self._min_over_pairs(lip, idx)
        quad = _quadratic_root(self.gaps, self.G, self._rkhs(self.e.rkhs_hessian, idx))
        return np.maximum(lipschitz, self._min_over_pairs(quad, idx))

    def certify(self, method, n_steps, quadratic):
        upper = self.first_order
        if method == "local_triangle":
            return local_lipschitz_radius(
                self.gaps, self.triangle, upper, n_steps=n_steps
            )
        if method == "local_quadratic":
            return self._local_quadratic(quadratic, n_steps)
        if method == "second_order":
            lower = np.minimum(self.rkhs_radius(), upper)
            return search_radius(
                self.second_eval, upper, lower=lower, n_steps=n_steps, rtol=_SEARCH_RTOL
            )
        if method == "third_order":
            idx = np.flatnonzero(upper > 0)
            hessian_min = np.zeros(self.gaps.shape)
            hessian_min[idx] = self.hessian_lower_bounds(idx)
            return search_radius(
                lambda R, i: self.third_eval(R, i, hessian_min),
                upper,
                n_steps=n_steps,
                rtol=_SEARCH_RTOL,
            )
        # auto: each search starts from the radius already certified and
        # stops after one evaluation where its bounds cannot improve on it.
        radius = np.minimum(self.rkhs_radius(), upper)
        for evaluate in (self.second_eval, self.lipschitz_eval):
            radius = search_radius(
                evaluate, upper, lower=radius, n_steps=n_steps, rtol=_SEARCH_RTOL
            )
        if self.X.shape[1] <= _AUTO_THIRD_ORDER_MAX_FEATURES:
            radius = self._third_order_where_it_helps(radius, n_steps)
        return radius

    def _third_order_where_it_helps(self, radius, n_steps):
        """The third-order search, on the rows where it can beat ``radius``.

        With ``lambda = 0`` the third-order bound is an upper bound of itself
        (the Hessian term only lowers it), and one cheap evaluation of it at
        ``radius`` decides whether the exact Hessians are worth computing.
        """
        idx = np.flatnonzero(self.first_order > radius)
        if not idx.size:
            return radius
        ok, psi = self.third_eval(radius[idx], idx)
        idx = idx[ok & (psi > radius[idx] * (1.0 + _SEARCH_RTOL))]
        if not idx.size:
            return radius
        hessian_min = np.zeros(self.gaps.shape)
        hessian_min[idx] = self.hessian_lower_bounds(idx)

        def evaluate(R, sub):
            return self.third_eval(R, idx[sub], hessian_min)

        radius = radius.copy()
        radius[idx] = search_radius(
            evaluate,
            self.first_order[idx],
            lower=radius[idx],
            n_steps=n_steps,
            rtol=_SEARCH_RTOL,
        )
        return radius

    def _local_quadratic(self, quadratic, n_steps):
        """Theorem 2.1 with Proposition 2.1, one row at a time (``O(m^2)``)."""
        beta = self.e.A[self.c][:, None, :] - self.e.A[None, :, :]
        radius = np.zeros(len(self.c))
        for i in np.flatnonzero(self.first_order > 0):
            bound = quadratic.at(self.X[i])

            def local(R, _, i=i, bound=bound):
                return bound(R[0], beta[i])[None, :]

            radius[i] = local_lipschitz_radius(
                self.gaps[i : i + 1],
                local,
                self.first_order[i : i + 1],
                n_steps=n_steps,
            )[0]
        return radius
