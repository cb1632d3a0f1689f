"""Display classes for margins and certificates (scikit-learn's Display API).

``from_estimator`` computes what is shown, ``from_predictions`` takes it
precomputed; both call ``plot``, which draws on one matplotlib axis, sets
``ax_`` and ``figure_`` and returns the Display. matplotlib is imported when
a plot is drawn, with an install hint when it is missing.
"""

from sk_margin.plot._certified_accuracy import CertifiedAccuracyDisplay
from sk_margin.plot._certified_detection import CertifiedDetectionDisplay
from sk_margin.plot._histogram import MarginHistogramDisplay
from sk_margin.plot._trajectory import MarginTrajectoryDisplay

__all__ = [
    "CertifiedAccuracyDisplay",
    "CertifiedDetectionDisplay",
    "MarginHistogramDisplay",
    "MarginTrajectoryDisplay",
]
