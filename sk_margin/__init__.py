"""Margin-based adversarial robustness with certified radii, for scikit-learn.

``sk_margin`` trains classifiers for large margins in *input space* and
certifies, per input, an l2 radius within which their decision cannot change.
The torch-backed :class:`MarginNetClassifier` and :class:`MarginStatistics` are
imported on first use, so that the kernel estimator, the detector, the metrics
and the plots do not pay for importing torch (nor matplotlib, imported when a
plot is drawn, nor the attack library, imported when an attack runs).
"""

from sk_margin.attacks import box_constrained_attack
from sk_margin.detector import MarginPValueDetector
from sk_margin.kernel import MarginKernelLogReg
from sk_margin.metrics import (
    average_margin,
    certified_accuracy,
    certified_radii,
    make_average_margin_scorer,
    make_certified_accuracy_scorer,
    make_robust_accuracy_scorer,
    minimum_margin,
    relative_robustness,
    robust_accuracy,
)
from sk_margin.plot import (
    CertifiedAccuracyDisplay,
    MarginHistogramDisplay,
    MarginTrajectoryDisplay,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "CertifiedAccuracyDisplay",
    "MarginHistogramDisplay",
    "MarginKernelLogReg",
    "MarginNetClassifier",
    "MarginPValueDetector",
    "MarginStatistics",
    "MarginTrajectoryDisplay",
    "__version__",
    "average_margin",
    "box_constrained_attack",
    "certified_accuracy",
    "certified_radii",
    "make_average_margin_scorer",
    "make_certified_accuracy_scorer",
    "make_robust_accuracy_scorer",
    "minimum_margin",
    "relative_robustness",
    "robust_accuracy",
]


def __getattr__(name):
    if name == "MarginNetClassifier":
        from sk_margin.nets import MarginNetClassifier

        return MarginNetClassifier
    if name == "MarginStatistics":
        from sk_margin.nets import MarginStatistics

        return MarginStatistics
    raise AttributeError(f"module 'sk_margin' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
