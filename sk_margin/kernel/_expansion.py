"""Gaussian-kernel expansions: their scores, input gradients and gradient Gram.

A Gaussian-kernel expansion is ``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j`` with
``k(c, x) = exp(-gamma ||x - c||^2)``: the model of
:class:`sk_margin.MarginKernelLogReg`, or of any kernel classifier with the
same form. The functions take the expansion's arrays, not an estimator.
"""

import numpy as np
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.utils import gen_batches

__all__ = [
    "cross_lipschitz_gram",
    "expansion_rkhs_gram",
    "gaussian_expansion_jacobian",
    "gaussian_expansion_scores",
    "pair_rkhs_norms",
]

_EPS = np.finfo(np.float64).eps
# Rows of the centre kernel matrix computed at a time (at most 64 MB).
_GRAM_BLOCK_ENTRIES = 2**23


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


def cross_lipschitz_gram(X, centers, K_xc, gamma, sample_weight=None):
    """Gram matrix of kernel input gradients summed over the training points.

    ``Q[r, s] = sum_i w_i <grad_y k(c_r, x_i), grad_y k(c_s, x_i)>
    = 4 gamma^2 sum_i w_i k_ir k_is <x_i - c_r, x_i - c_s>`` (``w_i = 1``
    unless weighted), so that for a kernel expansion with coefficients
    ``alpha_l`` one has ``sum_i w_i ||grad f_l(x_i)||^2 = alpha_l^T Q alpha_l``
    (Hein & Andriushchenko 2017, eq. 3 and Section 3.1). With
    ``<x_i - c_r, x_i - c_s> = |x_i|^2 - <x_i, c_r> - <x_i, c_s> + <c_r, c_s>``
    it is three matrix products per
    block of rows, accumulated over blocks: memory beyond the inputs is one
    block of ``n_centers`` columns and a few ``n_centers x n_centers``
    arrays, never an ``n x m x d``, ``n x n`` or second ``n x m`` array.

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
    sample_weight : ndarray of shape (n_samples,), default=None
        Weights ``w_i`` of the training points; None for 1.

    Returns
    -------
    Q : ndarray of shape (n_centers, n_centers)
        Symmetric positive semi-definite Gram matrix.
    """
    n, m = K_xc.shape
    cross = np.zeros((m, m))
    kk = K_xc.T @ K_xc if sample_weight is None else np.zeros((m, m))
    for rows in gen_batches(n, max(1, _GRAM_BLOCK_ENTRIES // max(m, 1))):
        K = K_xc[rows]
        Xb = X[rows]
        half_sq = 0.5 * np.einsum("nd,nd->n", Xb, Xb)
        Mx = K * (half_sq[:, None] - Xb @ centers.T)
        if sample_weight is None:
            cross += Mx.T @ K
        else:
            Kw = K * sample_weight[rows, None]
            cross += Mx.T @ Kw
            kk += K.T @ Kw
    Q = cross + cross.T
    Q += kk * (centers @ centers.T)
    Q *= 4.0 * gamma**2
    return 0.5 * (Q + Q.T)


def expansion_rkhs_gram(centers, dual_coef, gamma, *, K_cc=None):
    """Inner products ``<f_a, f_b>_H`` of the outputs in the kernel's RKHS.

    ``G = alpha K alpha^T`` with ``K[r, s] = k(c_r, c_s)``: the RKHS norm of
    ``f_c - f_j`` (without its offset) is ``sqrt(G_cc + G_jj - 2 G_cj)``, see
    :func:`pair_rkhs_norms`. ``K`` is computed in blocks of rows, so memory
    stays bounded for any number of centres, unless it is passed.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    dual_coef : ndarray of shape (n_classes, n_centers)
        Coefficients ``alpha``.
    gamma : float
        Kernel width.
    K_cc : ndarray of shape (n_centers, n_centers), default=None
        The centre kernel matrix, when it is at hand.

    Returns
    -------
    G : ndarray of shape (n_classes, n_classes)
        Symmetric positive semi-definite (up to rounding).
    """
    A = np.asarray(dual_coef, dtype=np.float64)
    if K_cc is not None:
        G = A @ (K_cc @ A.T)
    else:
        m = centers.shape[0]
        G = np.zeros((A.shape[0], A.shape[0]))
        rows = max(1, _GRAM_BLOCK_ENTRIES // max(m, 1))
        for start in range(0, m, rows):
            block = slice(start, min(start + rows, m))
            G += A[:, block] @ (rbf_kernel(centers[block], centers, gamma=gamma) @ A.T)
    return 0.5 * (G + G.T)


def pair_rkhs_norms(gram, centers, dual_coef, gamma):
    """Upper bounds of the RKHS norms ``||f_c - f_j||_H`` for every class pair.

    ``||f_c - f_j||_H^2 = G_cc + G_jj - 2 G_cj`` (the offsets are constants,
    whose derivatives vanish, so they are left out). That difference can
    cancel: for models with large, cancelling coefficients it is many orders
    of magnitude below its terms. The bound therefore adds what rounding can
    have cost: an error ``delta_K`` in every computed kernel value (the
    squared distances behind it are accurate to ``(d + 4) eps`` times
    ``4 max_r ||c_r||^2``, and ``|e^{-a} - e^{-b}| <= |a - b|``) and
    ``4 m eps`` for the sums of the products, both times
    ``(||alpha_c||_1 + ||alpha_j||_1)^2``.

    Parameters
    ----------
    gram : ndarray of shape (n_classes, n_classes)
        :func:`expansion_rkhs_gram` of the expansion.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres.
    dual_coef : ndarray of shape (n_classes, n_centers)
        Coefficients ``alpha``.
    gamma : float
        Kernel width.

    Returns
    -------
    norms : ndarray of shape (n_classes, n_classes)
        ``norms[c, j] >= ||f_c - f_j||_H``; 0 on the diagonal.
    """
    m, d = centers.shape
    diag = np.diag(gram)
    sq = diag[:, None] + diag[None, :] - 2.0 * gram
    l1 = np.abs(dual_coef).sum(axis=1)
    max_sq_norm = float(np.max(np.einsum("md,md->m", centers, centers), initial=0.0))
    delta_K = gamma * (d + 4) * _EPS * 4.0 * max_sq_norm + 4.0 * _EPS
    slack = (delta_K + 4.0 * m * _EPS) * np.square(l1[:, None] + l1[None, :])
    norms = np.sqrt(np.maximum(sq, 0.0) + slack)
    np.fill_diagonal(norms, 0.0)
    return norms
