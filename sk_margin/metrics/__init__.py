"""Robustness metrics and scorers: certified and robust accuracy, margins.

Pure metrics take labels, predictions and per-sample distances to the decision
boundary (:func:`certified_accuracy`, :func:`average_margin`,
:func:`minimum_margin`); :func:`certified_radii` carries certified radii back
through the scalers of a :class:`~sklearn.pipeline.Pipeline`;
:func:`robust_accuracy` and :func:`relative_robustness` attack the estimator;
the ``make_*`` functions build scorers for ``GridSearchCV(scoring=...)``.
"""

from sk_margin.metrics._certified import (
    average_margin,
    certified_accuracy,
    certified_detection_accuracy,
    certified_radii,
    minimum_margin,
)
from sk_margin.metrics._robustness import relative_robustness, robust_accuracy
from sk_margin.metrics._scorers import (
    make_average_margin_scorer,
    make_certified_accuracy_scorer,
    make_certified_detection_scorer,
    make_robust_accuracy_scorer,
)

__all__ = [
    "average_margin",
    "certified_accuracy",
    "certified_detection_accuracy",
    "certified_radii",
    "make_average_margin_scorer",
    "make_certified_accuracy_scorer",
    "make_certified_detection_scorer",
    "make_robust_accuracy_scorer",
    "minimum_margin",
    "relative_robustness",
    "robust_accuracy",
]
