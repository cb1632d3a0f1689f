"""scikit-learn's estimator checks."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import (
    check_sample_weight_equivalence_on_dense_data,
    check_sample_weights_not_an_array,
    check_sample_weights_shape,
    parametrize_with_checks,
)

from sk_margin import MarginKernelLogReg, MarginNetClassifier

# Every check that fails is listed here with the reason.
EXPECTED_FAILED_CHECKS = {
    "MarginKernelLogReg": {
        "check_sample_weight_equivalence_on_dense_data": (
            "At the default tol=1e-4 the objective's products run on float32 "
            "features and L-BFGS stops early, so weighted and repeated fits "
            "agree to ~5e-7, not the 1e-7 the check demands; with tol=1e-7 "
            "(float64 features) it passes (test_sample_weight_checks_in_float64)."
        ),
    },
    "MarginNetClassifier": {
        "check_sample_weight_equivalence_on_dense_data": (
            "float32 training (the default) holds it up to float32 rounding "
            "(~1e-7 in the probabilities, the check demands 1e-7 relative); "
            "with dtype=np.float64 it passes "
            "(test_sample_weight_checks_in_float64)."
        ),
    },
}


@parametrize_with_checks(
    [
        MarginKernelLogReg(n_centers=None, random_state=0),
        MarginNetClassifier(max_epochs=20, lr=1e-2, random_state=0),
    ],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "check",
    [
        check_sample_weight_equivalence_on_dense_data,
        check_sample_weights_not_an_array,
        check_sample_weights_shape,
    ],
)
@pytest.mark.parametrize(
    "estimator",
    [
        MarginKernelLogReg(n_centers=None, tol=1e-7, random_state=0),
        MarginNetClassifier(max_epochs=20, lr=1e-2, random_state=0, dtype=np.float64),
    ],
    ids=["kernel-tol1e-7", "net-float64"],
)
def test_sample_weight_checks_in_float64(estimator, check):
    # The one check each estimator is exempt from at its defaults, passed
    # in float64 arithmetic.
    check(type(estimator).__name__, estimator)
