"""Margin-based adversarial robustness with certified radii, for scikit-learn.

``sk_margin`` trains classifiers for large margins in *input space* and
certifies, per input, an l2 radius within which their decision cannot change.
The torch-backed :class:`MarginNetClassifier` and :class:`MarginStatistics` are
imported on first use, so that the kernel estimator does not pay for importing torch.
"""

from sk_margin.attacks import box_constrained_attack
from sk_margin.kernel import MarginKernelLogReg

__version__ = "0.1.0.dev0"

__all__ = [
    "MarginKernelLogReg",
    "MarginNetClassifier",
    "MarginStatistics",
    "__version__",
    "box_constrained_attack",
]


def __getattr__(name):
    if name == "MarginNetClassifier":
        from sk_margin.net import MarginNetClassifier

        return MarginNetClassifier
    if name == "MarginStatistics":
        from sk_margin.callbacks import MarginStatistics

        return MarginStatistics
    raise AttributeError(f"module 'sk_margin' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
