"""Gaussian-kernel classifiers with certified l2 radii.

:class:`MarginKernelLogReg` is Gaussian-kernel logistic regression with the
Cross-Lipschitz regulariser of Hein & Andriushchenko (2017). The functions
work on the arrays of any Gaussian-kernel expansion
``f_j(x) = sum_r alpha_jr exp(-gamma ||x - c_r||^2) + b_j``, not on an
estimator: its scores, input gradients, the Cross-Lipschitz Gram matrix, the
RKHS norms behind the global certificates, and certified radii.
"""

from sk_margin.kernel._certify import CERTIFY_METHODS, certify_gaussian_expansion
from sk_margin.kernel._estimator import MarginKernelLogReg
from sk_margin.kernel._expansion import (
    cross_lipschitz_gram,
    expansion_rkhs_gram,
    gaussian_expansion_jacobian,
    gaussian_expansion_scores,
    pair_rkhs_norms,
)

__all__ = [
    "CERTIFY_METHODS",
    "MarginKernelLogReg",
    "certify_gaussian_expansion",
    "cross_lipschitz_gram",
    "expansion_rkhs_gram",
    "gaussian_expansion_jacobian",
    "gaussian_expansion_scores",
    "pair_rkhs_norms",
]
