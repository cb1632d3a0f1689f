"""Certified l2 radii of Gaussian-kernel expansions (Hein & Andriushchenko 2017).

Every method lower-bounds the distance from ``x`` to the decision boundary of
``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j`` through ``g_j = f_c - f_j``,
``c`` the predicted class (see :meth:`sk_margin.MarginKernelLogReg.certify`):

====================  ========================================  ==============
method                bound                                     needs
====================  ========================================  ==============
``"local_quadratic"`` Theorem 2.1 with Proposition 2.1: the     ``O(m^2)``
                      local cross-Lipschitz constant as a       memory and
                      quadratic form in the signed ``beta``     time per point
``"local_triangle"``  Theorem 2.1 with the triangle             ``O(m)``
                      inequality, ``sum_r |beta_r|`` times the
                      largest kernel gradient on the ball
``"second_order"``    exact gradient at ``x``, the Hessian's    ``O(m)``
                      norm bounded on the ball (Taylor)
``"auto"``            the largest of the three per point
====================  ========================================  ==============
"""

import numpy as np
from scipy.spatial.distance import cdist
from sklearn.utils import gen_batches
from tqdm.auto import tqdm

from sk_margin._validation import check_method
from sk_margin.certify import (
    BISECTION_STEPS,
    ROUNDING_SLACK,
    local_lipschitz_radius,
    second_order_radius,
)
from sk_margin.kernel._bounds import gaussian_curvature_bound, gaussian_triangle_bound
from sk_margin.kernel._expansion import (
    gaussian_expansion_jacobian,
    gaussian_expansion_scores,
)
from sk_margin.kernel._quadratic_bound import QuadraticGradientBound
from sk_margin.margins import score_gaps

__all__ = ["CERTIFY_METHODS", "certify_gaussian_expansion"]

#: The certify methods of Gaussian-kernel expansions.
CERTIFY_METHODS = ("auto", "local_quadratic", "local_triangle", "second_order")
# Former names, accepted with a FutureWarning.
_RENAMED = {"prop21": "local_quadratic", "triangle": "local_triangle"}
# Certification works on row batches of at most this many entries of the
# (rows, n_classes, n_centers) coefficient arrays (32 MB each).
_CERTIFY_BATCH_ENTRIES = 2**22
# Proposition 2.1 holds nine n_centers x n_centers work arrays (1.2 GB here).
_QUADRATIC_MAX_CENTERS = 4000


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
    method : {"auto", "local_quadratic", "local_triangle", "second_order"}, \
            default="auto"
        Which certificate (see the table above). The former names
        ``"prop21"`` and ``"triangle"`` still work, with a FutureWarning.
    n_steps : int, default=BISECTION_STEPS
        Bisection steps over ``R``.
    progress : bool, default=False
        Show a progress bar (tqdm, on stderr) over the rows.

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
    quadratic = None
    if method == "local_quadratic" or (
        method == "auto" and n_centers <= _QUADRATIC_MAX_CENTERS
    ):
        quadratic = QuadraticGradientBound(centers, gamma)
    radius = np.empty(X.shape[0])
    rows = max(1, _CERTIFY_BATCH_ENTRIES // (n_classes * n_centers))
    with tqdm(
        total=X.shape[0], desc="certify", unit="rows", disable=not progress
    ) as bar:
        for batch in gen_batches(X.shape[0], rows):
            radius[batch] = _certify_batch(
                X[batch],
                centers,
                dual_coef,
                intercept,
                gamma,
                method,
                n_steps,
                quadratic,
            )
            bar.update(batch.stop - batch.start)
    return radius * (1.0 - ROUNDING_SLACK)


def _certify_batch(X, centers, dual_coef, intercept, gamma, method, n_steps, quadratic):
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
    if method in ("local_triangle", "auto"):
        radius = local_lipschitz_radius(gaps, triangle, first_order, n_steps=n_steps)
    if method in ("second_order", "auto"):
        M0 = curvature(np.zeros(X.shape[0]), rows)
        with np.errstate(divide="ignore", invalid="ignore"):
            quad = np.where(gaps > 0, np.sqrt(2.0 * gaps / M0), 0.0)
        upper = np.minimum(first_order, quad.min(axis=1))
        second = second_order_radius(
            gaps, grad_norms, curvature, upper, n_steps=n_steps
        )
        radius = np.maximum(radius, second)
    if quadratic is not None:
        # Theorem 2.1 with Proposition 2.1, one row at a time (it costs
        # O(m^2) per radius tried). In "auto" the local bound is the
        # smaller of Prop. 2.1 and the triangle bound, and the search starts
        # from the radius already certified, so most rows need one check.
        lower = radius if method == "auto" else None
        for i in np.flatnonzero(first_order > radius):
            bound = quadratic.at(X[i])

            def local(R, _, i=i, bound=bound):
                lip = bound(R[0], beta[i])[None, :]
                if method == "auto":
                    lip = np.minimum(lip, triangle(R, [i]))
                return lip

            radius[i] = local_lipschitz_radius(
                gaps[i : i + 1],
                local,
                first_order[i : i + 1],
                lower=None if lower is None else lower[i : i + 1],
                n_steps=n_steps,
            )[0]
    return radius
