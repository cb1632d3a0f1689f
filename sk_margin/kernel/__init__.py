"""Gaussian-kernel classifiers with certified l2 radii.

:class:`MarginKernelLogReg` is Gaussian-kernel logistic regression with the
Cross-Lipschitz regulariser of Hein & Andriushchenko (2017). The functions
work on the arrays of any Gaussian-kernel expansion
``f_j(x) = sum_r alpha_jr exp(-gamma ||x - c_r||^2) + b_j``, not on an
estimator: its scores, input gradients, the Cross-Lipschitz Gram matrix and
certified radii.
"""

from sk_margin.kernel._certify import (
    certify_gaussian_expansion,
    cross_lipschitz_gram,
    gaussian_expansion_jacobian,
    gaussian_expansion_scores,
)
from sk_margin.kernel._estimator import MarginKernelLogReg

__all__ = [
    "MarginKernelLogReg",
    "certify_gaussian_expansion",
    "cross_lipschitz_gram",
    "gaussian_expansion_jacobian",
    "gaussian_expansion_scores",
]
