"""scikit-learn's estimator checks."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_margin import MarginKernelLogReg

# Every check that fails is listed here with the reason.
EXPECTED_FAILED_CHECKS = {
    "MarginKernelLogReg": {},
}


@parametrize_with_checks(
    [MarginKernelLogReg(n_centers=None, random_state=0)],
    expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS[type(est).__name__],
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
