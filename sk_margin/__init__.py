"""Margin-based adversarial robustness with certified radii, for scikit-learn.

``sk_margin`` trains classifiers for large margins in *input space* and
certifies, per input, an l2 radius within which their decision cannot change.
"""

from sk_margin.attacks import box_constrained_attack
from sk_margin.kernel import MarginKernelLogReg

__version__ = "0.1.0.dev0"

__all__ = [
    "MarginKernelLogReg",
    "__version__",
    "box_constrained_attack",
]
