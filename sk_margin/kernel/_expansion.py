"""Gaussian-kernel expansions: their scores, input gradients and gradient Gram.

A Gaussian-kernel expansion is ``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j`` with
``k(c, x) = exp(-gamma ||x - c||^2)``: the model of
:class:`sk_margin.MarginKernelLogReg`, or of any kernel classifier with the
same form. The functions take the expansion's arrays, not an estimator.
"""

import numpy as np
from sklearn.metrics.pairwise import rbf_kernel

__all__ = [
    "cross_lipschitz_gram",
    "gaussian_expansion_jacobian",
    "gaussian_expansion_scores",
]


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
