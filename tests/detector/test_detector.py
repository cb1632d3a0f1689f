"""Tests of MarginPValueDetector and its p-value and BIC helpers."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.stats import norm
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_blobs
from sklearn.ensemble import RandomForestClassifier
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import RocCurveDisplay, average_precision_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sk_margin import MarginKernelLogReg, box_constrained_attack
from sk_margin.detector import MarginPValueDetector, fit_mixture_bic, mixture_pvalue
from sk_margin.metrics import certified_radii


class _AnyWidthScores(ClassifierMixin, BaseEstimator):
    """A fitted classifier of inputs of any width: ``cos(2 pi (7 sum_j x_j - k) / K)``.

    The predicted class goes round the ``K`` classes as the sum of the
    features grows, so random labels are right about one time in ``K``.
    Frozen, it lets scikit-learn's checks fit the detector, with or without
    labels, on data of every shape they try.
    """

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def decision_function(self, X):
        t = 7.0 * np.asarray(X, dtype=np.float64).sum(axis=1)
        k = len(self.classes_)
        return np.cos(2 * np.pi * (t[:, None] - np.arange(k)) / k)


# With a classifier to fit, the detector needs labels (tag
# target_tags.required=True); these two checks call fit(X) regardless.
# The frozen instance runs them, and test_outlier_api_with_labels runs
# their assertions with labels.
NEEDS_Y = "fits an outlier detector without y; this one needs labels (fit(X, y))."
EXPECTED_FAILED_CHECKS = {
    "check_outliers_fit_predict": NEEDS_Y,
    "check_outliers_train": NEEDS_Y,
}


def _expected_failed(estimator):
    if isinstance(estimator.estimator, FrozenEstimator):
        return {}
    return EXPECTED_FAILED_CHECKS


@parametrize_with_checks(
    [
        MarginPValueDetector(random_state=0),
        MarginPValueDetector(  # lam, tol: 10x fewer L-BFGS iterations
            MarginKernelLogReg(n_centers=20, lam=1.0, tol=1e-3, random_state=0),
            margin="certified",
            tail="two_sided",
            per_class=False,
            random_state=0,
        ),
        MarginPValueDetector(
            FrozenEstimator(_AnyWidthScores().fit(None, np.arange(5))), random_state=0
        ),
        MarginPValueDetector(representations="input", random_state=0),
        MarginPValueDetector(
            FrozenEstimator(_AnyWidthScores().fit(None, np.arange(5))),
            representations="input",
            combine="fisher",
            random_state=0,
        ),
    ],
    expected_failed_checks=_expected_failed,
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


class _CentroidScores(ClassifierMixin, BaseEstimator):
    """Scores ``-||x - c_k||^2`` to the class means: exact ties are easy to make."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        self.centroids_ = np.array([X[y == c].mean(axis=0) for c in self.classes_])
        return self

    def decision_function(self, X):
        X = np.asarray(X, dtype=np.float64)
        return -((X[:, None, :] - self.centroids_) ** 2).sum(axis=2)


class _SymmetricBinary(ClassifierMixin, BaseEstimator):
    """Binary logistic regression with 2-D scores ``(-d/2, d/2)`` instead of ``d``."""

    def fit(self, X, y):
        self.lr_ = LogisticRegression().fit(X, y)
        self.classes_ = self.lr_.classes_
        return self

    def decision_function(self, X):
        d = self.lr_.decision_function(X)
        return np.column_stack([-d / 2, d / 2])


class _ThreeColumns(_SymmetricBinary):
    """A broken classifier: three score columns for two classes."""

    def decision_function(self, X):
        return np.column_stack([super().decision_function(X), np.zeros(len(X))])


@pytest.fixture(scope="module")
def blobs():
    """Three far-apart blobs (LogisticRegression classifies all correctly)."""
    X, y = make_blobs(
        n_samples=4000,
        centers=[[0, 0], [8, 0], [0, 8]],
        cluster_std=1.0,
        random_state=0,
    )
    return train_test_split(X, y, train_size=0.5, random_state=0)


@pytest.fixture(scope="module")
def blobs_detector(blobs):
    X_train, _, y_train, _ = blobs
    return MarginPValueDetector(random_state=0).fit(X_train, y_train)


@pytest.fixture(scope="module")
def digits_kernel(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    X_train, y_train = X_train[:600], y_train[:600]
    clf = MarginKernelLogReg(n_centers=100, random_state=0).fit(X_train, y_train)
    return clf, X_train, y_train, X_test[:150]


# ---------------------------------------------------------------- formulas
def test_mixture_pvalue_matches_both_formulas_of_section_v():
    w, m, s = np.array([0.3, 0.7]), np.array([-1.0, 2.0]), np.array([0.5, 1.5])
    z = np.array([-3.0, -1.0, 0.4, 2.0, 6.0])
    lower = (w * norm.cdf((z[:, None] - m) / s)).sum(axis=1)
    two_sided = (w * (1 - norm.cdf(np.abs(z[:, None] - m) / s))).sum(axis=1)
    assert_allclose(mixture_pvalue(z, w, m, s), lower, rtol=1e-12)
    assert_allclose(mixture_pvalue(z, w, m, s, tail="two_sided"), two_sided, rtol=1e-12)
    # log 0 = -inf is the limit of both: p-value 0.
    assert_array_equal(mixture_pvalue([-np.inf], w, m, s), [0.0])
    assert_array_equal(mixture_pvalue([-np.inf], w, m, s, tail="two_sided"), [0.0])
    with pytest.raises(ValueError, match="tail must be"):
        mixture_pvalue(z, w, m, s, tail="upper")


def test_mixture_pvalue_lower_is_uniform_two_sided_is_halved():
    rng = np.random.default_rng(0)
    w, m, s = np.array([0.4, 0.6]), np.array([0.0, 3.0]), np.array([1.0, 0.5])
    comp = rng.choice(2, size=20000, p=w)
    z = rng.normal(m[comp], s[comp])
    # Lower tail with the true mixture: the p-values are Uniform(0, 1). 20000
    # draws: the binomial standard error of a share near 0.1 is 0.002.
    p = mixture_pvalue(z, w, m, s)
    for alpha in (0.01, 0.1, 0.5):
        assert abs(np.mean(p < alpha) - alpha) < 0.01
    # The printed formula, one component: half a two-sided p-value.
    p2 = mixture_pvalue(z[comp == 0], [1.0], [0.0], [1.0], tail="two_sided")
    assert p2.max() <= 0.5
    assert abs(np.mean(p2 < 0.05) - 0.10) < 0.015


def test_fit_mixture_bic_chooses_components_and_caps_them():
    rng = np.random.default_rng(0)
    unimodal = rng.normal(size=400)
    bimodal = np.r_[rng.normal(-5, 1, 200), rng.normal(5, 1, 200)]
    assert fit_mixture_bic(unimodal, random_state=0).n_components == 1
    assert fit_mixture_bic(bimodal, random_state=0).n_components == 2
    # 9 samples: one component at most (one per 5 samples), however bimodal.
    assert fit_mixture_bic(bimodal[::45], random_state=0).n_components == 1
    # A single value: one component centred on it, of variance reg_covar.
    single = fit_mixture_bic([1.3], reg_covar=1e-4, random_state=0)
    assert_allclose(single.means_.ravel(), [1.3])
    assert_allclose(single.covariances_.ravel(), [1e-4])
    with pytest.raises(ValueError, match="finite"):
        fit_mixture_bic([0.0, np.nan])


# ------------------------------------------------------------ estimator API
def test_outlier_api_with_labels():
    # The assertions of check_outliers_train / check_outliers_fit_predict,
    # with the labels the detector needs.
    X, y = make_blobs(n_samples=300, random_state=0)
    det = MarginPValueDetector(random_state=0).fit(X.tolist(), y.tolist())
    y_pred = det.predict(X)
    assert y_pred.shape == (300,) and y_pred.dtype.kind == "i"
    assert_array_equal(np.unique(y_pred), [-1, 1])
    decision, scores = det.decision_function(X), det.score_samples(X)
    for output in (decision, scores):
        assert output.dtype == np.float64 and output.shape == (300,)
    assert_array_equal(np.where(decision >= 0, 1, -1), y_pred)
    assert_allclose(scores - det.offset_, decision)
    for method in (det.predict, det.decision_function, det.score_samples):
        with pytest.raises(ValueError, match="features"):
            method(X.T)
    assert_array_equal(det.fit_predict(X, y), det.fit(X, y).predict(X))


def test_pickle_and_clone(blobs, blobs_detector):
    _, X_test, _, _ = blobs
    restored = pickle.loads(pickle.dumps(blobs_detector))
    assert_array_equal(
        restored.score_samples(X_test), blobs_detector.score_samples(X_test)
    )
    cloned = clone(blobs_detector)
    assert cloned.get_params() == blobs_detector.get_params()
    assert not hasattr(cloned, "offset_")


def test_parameter_and_input_validation(blobs):
    X, _, y, _ = blobs
    with pytest.raises(InvalidParameterError, match="decision_function"):
        MarginPValueDetector(RandomForestClassifier()).fit(X, y)
    with pytest.raises(InvalidParameterError, match="fpr"):
        MarginPValueDetector(fpr=1.0).fit(X, y)
    with pytest.raises(ValueError, match="requires y to be passed"):
        MarginPValueDetector().fit(X, None)
    with pytest.raises(ValueError, match="Unknown label type"):
        MarginPValueDetector().fit(X, X[:, 0])
    with pytest.raises(ValueError, match="together"):
        MarginPValueDetector().fit(X, y, X_val=X)
    X_bad = X.copy()
    X_bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MarginPValueDetector().fit(X_bad, y)
    det = MarginPValueDetector().fit(X[:200], y[:200])
    X_bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="Input X contains infinity"):
        det.score_samples(X_bad)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        MarginPValueDetector().fit(X, y, X_val=np.full((2, 2), np.nan), y_val=[0, 1])


def test_labels_unknown_to_a_frozen_classifier_raise(blobs):
    X, _, y, _ = blobs
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match=r"y contains labels unknown .*\[7\]"):
        MarginPValueDetector(FrozenEstimator(clf)).fit(X, np.where(y == 2, 7, y))
    with pytest.raises(ValueError, match=r"y_val contains labels unknown"):
        MarginPValueDetector(FrozenEstimator(clf)).fit(X, y, X_val=X, y_val=y + 5)


def test_decision_function_with_wrong_number_of_columns_raises(blobs):
    X, _, y, _ = blobs
    binary = y < 2
    with pytest.raises(ValueError, match="3 columns for 2 classes"):
        MarginPValueDetector(_ThreeColumns()).fit(X[binary], y[binary])


# -------------------------------------------------------------- behaviour
def test_lower_tail_is_calibrated_on_held_out_clean_data(blobs, blobs_detector):
    _, X_test, _, y_test = blobs
    assert blobs_detector.estimator_.score(X_test, y_test) > 0.99  # all clean
    pvalues = blobs_detector.score_samples(X_test)
    # 2000 held-out samples: the binomial standard error of the share is 0.0067
    # at alpha=0.1 (0.0049 at 0.05); the tolerance allows for that (3 SE) plus
    # the error of mixtures fitted to 2000 training margins. Measured: 0.086
    # and 0.042.
    assert abs(np.mean(pvalues < 0.1) - 0.1) < 0.03
    assert abs(np.mean(pvalues < 0.05) - 0.05) < 0.02


def test_two_sided_also_flags_large_margins(blobs):
    X_train, X_test, y_train, _ = blobs
    lower = MarginPValueDetector(random_state=0).fit(X_train, y_train)
    two_sided = clone(lower).set_params(tail="two_sided").fit(X_train, y_train)
    # Far from the blobs' common centre, the margins are far above the clean
    # ones: p-value ~1 in the lower tail, ~0 for the printed formula.
    X_far = X_test[:50] + 20 * (X_test[:50] - X_train.mean(axis=0))
    assert lower.score_samples(X_far).min() > 0.99
    assert two_sided.score_samples(X_far).max() < 0.01
    # Below every component mean, each term of the printed formula is the lower
    # tail: both agree there, and the printed one never exceeds 1/2.
    p_lower, p_two = lower.score_samples(X_test), two_sided.score_samples(X_test)
    assert p_two.max() <= 0.5
    margins = _logit_margin(lower.estimator_, X_test)
    pred = np.argmax(lower.estimator_.decision_function(X_test), axis=1)
    lowest_mean = np.array([m.means_.min() for m in lower.mixtures_])[pred]
    below = np.log(margins) < lowest_mean
    assert below.sum() > 10
    assert_allclose(p_two[below], p_lower[below], rtol=1e-10)


def _logit_margin(clf, X):
    scores = np.sort(clf.decision_function(X), axis=1)
    return scores[:, -1] - scores[:, -2]


def test_offset_flags_at_most_fpr_of_clean_training_samples(blobs):
    X, _, y, _ = blobs
    X, y = X[:600], y[:600]
    # All 600 are clean. fpr=0.123: an interpolated percentile (np.percentile)
    # would flag 74 > 0.123 * 600 = 73.8 of them.
    # A FrozenEstimator's calibration data are the data given to fit.
    frozen = FrozenEstimator(LogisticRegression().fit(X, y))
    for fpr in (0.05, 0.123):
        det = MarginPValueDetector(frozen, fpr=fpr, random_state=0).fit(X, y)
        clean = det.estimator_.predict(X) == y
        n_flagged = np.sum(det.predict(X[clean]) == -1)
        assert fpr * clean.sum() - 1 < n_flagged <= fpr * clean.sum()
    det = MarginPValueDetector(frozen, fpr=0.0, random_state=0).fit(X, y)
    assert np.all(det.predict(X[det.estimator_.predict(X) == y]) == 1)


def test_offset_from_validation_data(blobs):
    X_train, X_val, y_train, y_val = blobs
    X_train, y_train = X_train[:600], y_train[:600]
    det = MarginPValueDetector(fpr=0.1, random_state=0)
    det.fit(X_train, y_train, X_val=X_val, y_val=y_val)
    clean = det.estimator_.predict(X_val) == y_val
    n_flagged = np.sum(det.predict(X_val[clean]) == -1)
    assert 0.1 * clean.sum() - 1 < n_flagged <= 0.1 * clean.sum()
    # The classifier is fitted on X_train alone, once; the mixtures and the
    # threshold on X_val's margins, as a frozen copy calibrated on X_val.
    ref = MarginPValueDetector(FrozenEstimator(det.estimator_), fpr=0.1, random_state=0)
    ref.fit(X_val, y_val)
    assert_allclose(det.score_samples(X_train), ref.score_samples(X_train))
    assert det.offset_ == ref.offset_


def test_per_class_false_pools_one_mixture(blobs):
    X_train, X_test, y_train, _ = blobs
    det = MarginPValueDetector(per_class=False, random_state=0).fit(X_train, y_train)
    assert all(m is det.mixtures_[0] for m in det.mixtures_)
    assert len(set(det.n_components_)) == 1
    # One CDF for all classes: the p-value is non-decreasing in the margin.
    order = np.argsort(_logit_margin(det.estimator_, X_test))
    assert np.all(np.diff(det.score_samples(X_test)[order]) >= 0)
    per_class = clone(det).set_params(per_class=True).fit(X_train, y_train)
    assert np.any(np.diff(per_class.score_samples(X_test)[order]) < 0)


def test_binary_scores_read_as_zero_and_d(blobs):
    X_train, X_test, y_train, _ = blobs
    binary = y_train < 2
    one_d = MarginPValueDetector(random_state=0).fit(X_train[binary], y_train[binary])
    two_d = MarginPValueDetector(_SymmetricBinary(), random_state=0)
    two_d.fit(X_train[binary], y_train[binary])
    assert_allclose(one_d.score_samples(X_test), two_d.score_samples(X_test))
    assert_allclose(one_d.offset_, two_d.offset_)


def test_frozen_classifier_is_used_without_refitting(blobs):
    X, _, y, _ = blobs
    clf = LogisticRegression().fit(X[:300], y[:300])
    coef = clf.coef_.copy()
    det = MarginPValueDetector(FrozenEstimator(clf), random_state=0).fit(
        X[300:], y[300:]
    )
    assert det.estimator_.estimator is clf
    assert_array_equal(clf.coef_, coef)
    assert_array_equal(det.estimator_.decision_function(X), clf.decision_function(X))
    # Without FrozenEstimator the clone is refitted on the detector's data.
    refit = MarginPValueDetector(clf, random_state=0).fit(X[300:], y[300:])
    assert refit.estimator_ is not clf
    assert not np.array_equal(refit.estimator_.coef_, coef)


def test_frozen_classifier_keeps_dataframe_feature_names(blobs):
    X, _, y, _ = blobs
    df = pd.DataFrame(X[:300], columns=["a", "b"])
    clf = LogisticRegression().fit(df, y[:300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "X does not have valid feature names"
        det = MarginPValueDetector(FrozenEstimator(clf), random_state=0).fit(
            df, y[:300]
        )
        det.score_samples(df)
    assert_array_equal(det.feature_names_in_, ["a", "b"])


def test_certified_margin(digits_kernel):
    clf, X_train, y_train, X_test = digits_kernel
    det = MarginPValueDetector(FrozenEstimator(clf), margin="certified", random_state=0)
    det.fit(X_train, y_train)
    pvalues = det.score_samples(X_test)
    # Within a predicted class, the p-value is a CDF of the certified radius.
    radius, pred = clf.certify(X_test), clf.predict(X_test)
    for c in np.unique(pred):
        order = np.argsort(radius[pred == c])
        assert np.all(np.diff(pvalues[pred == c][order]) >= 0)
    logit = clone(det).set_params(margin="logit").fit(X_train, y_train)
    assert not np.allclose(logit.score_samples(X_test), pvalues)
    with pytest.raises(ValueError, match=r"certify\(X\) method, but LogisticReg"):
        MarginPValueDetector(margin="certified").fit(X_train, y_train)


def test_certified_margin_through_a_frozen_pipeline(digits_kernel):
    # Raw inputs in [0, 16]: raw-space radii are the scaled-space ones divided
    # by the scaler's largest gain, and p-values still rank by them per class.
    clf, X_train, y_train, X_test = digits_kernel
    pipe = make_pipeline(MinMaxScaler(), clone(clf)).fit(16 * X_train, y_train)
    det = MarginPValueDetector(
        FrozenEstimator(pipe), margin="certified", random_state=0
    ).fit(16 * X_train, y_train)
    radius = certified_radii(pipe, 16 * X_test)
    scale = pipe[0].scale_.max()
    assert_allclose(radius, pipe[-1].certify(pipe[0].transform(16 * X_test)) / scale)
    pvalues, pred = det.score_samples(16 * X_test), pipe.predict(16 * X_test)
    for c in np.unique(pred):
        order = np.argsort(radius[pred == c])
        assert np.all(np.diff(pvalues[pred == c][order]) >= 0)
    with pytest.raises(ValueError, match=r"certify\(X\) method"):
        MarginPValueDetector(
            make_pipeline(MinMaxScaler(), LogisticRegression()), margin="certified"
        ).fit(X_train, y_train)


def test_attacked_digits_get_small_pvalues(digits_kernel):
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    clf, X_train, y_train, X_test = digits_kernel
    det = MarginPValueDetector(FrozenEstimator(clf), random_state=0)
    det.fit(X_train, y_train)
    X_adv, success = box_constrained_attack(clf, X_test, p=2, bounds=(0.0, 1.0))
    assert success.mean() > 0.9
    clean_scores = det.score_samples(X_test)
    for frac, min_auc in ((1.0, 0.99), (0.5, 0.8)):
        # Just beyond the boundary (frac=1), or halfway there, same class.
        X_pushed = (X_test + frac * (X_adv - X_test))[success]
        assert np.median(clf.margins(X_pushed)) < 0.6 * np.median(clf.margins(X_test))
        is_clean = np.r_[np.ones(len(X_test)), np.zeros(len(X_pushed))]
        scores = np.r_[clean_scores, det.score_samples(X_pushed)]
        # Measured: AUC 1.000 and 0.851, average precision 1.000 and 0.764.
        assert roc_auc_score(is_clean, scores) > min_auc
        assert average_precision_score(1 - is_clean, -scores) > min_auc - 0.1
    display = RocCurveDisplay.from_predictions(is_clean, scores)
    assert display.roc_auc > 0.8
    plt.close(display.figure_)


# ------------------------------------------------------------- edge cases
def test_zero_margins():
    # 1-D class means 0 and 2; the training point 1 of class 0 ties exactly
    # (margin 0; argmax gives class 0, so it counts as correctly classified).
    X = np.array([[-1.5], [0.5], [1.0], [1.5], [2.0], [2.5]])
    y = np.array([0, 0, 0, 1, 1, 1])
    frozen = FrozenEstimator(_CentroidScores().fit(X, y))
    det = MarginPValueDetector(frozen, random_state=0).fit(X, y)
    margins = _logit_margin(det.estimator_, X)
    assert_array_equal(margins, [10.0, 2.0, 0.0, 2.0, 4.0, 6.0])
    # log 0 is clipped for the fit, at half the smallest positive margin ...
    assert det.margin_floor_ == 1.0
    assert all(np.isfinite(m.means_).all() for m in det.mixtures_)
    # ... but a zero margin scores exactly 0 under both tails.
    pvalues = det.score_samples(X)
    assert pvalues[2] == 0.0 and np.all(pvalues[margins > 0] > 0)
    assert det.set_params(tail="two_sided").score_samples(X[2:3])[0] == 0.0


def test_all_margins_zero_stay_finite():
    # Two identical class means: every score ties, every margin is 0, and all
    # samples are predicted as class 0.
    X = np.array([[0.0], [1.0], [0.0], [1.0]])
    y = np.array([0, 0, 1, 1])
    frozen = FrozenEstimator(_CentroidScores().fit(X, y))
    with pytest.warns(UserWarning, match=r"class\(es\) \[1\]"):
        det = MarginPValueDetector(frozen, random_state=0).fit(X, y)
    assert det.margin_floor_ == np.finfo(np.float64).tiny
    assert_array_equal(det.score_samples(X), 0.0)
    assert_array_equal(det.predict(X), 1)  # offset_ = 0: nothing below it
    assert np.isfinite(det.decision_function(X)).all()


def test_constant_margins_and_single_sample_class():
    # Class 0 at 0 (4 copies), class 1 at 2 (one sample): every margin is 4.
    X = np.array([[0.0], [0.0], [0.0], [0.0], [2.0]])
    y = np.array([0, 0, 0, 0, 1])
    frozen = FrozenEstimator(_CentroidScores().fit(X, y))
    det = MarginPValueDetector(frozen, reg_covar=1e-5, random_state=0)
    det.fit(X, y)
    assert_array_equal(det.n_components_, [1, 1])
    for mixture in det.mixtures_:
        assert_allclose(mixture.means_.ravel(), [np.log(4.0)])
        assert_allclose(mixture.covariances_.ravel(), [1e-5])
    # Margin 4 is each mixture's centre; the margins 3.8 and 4.2 below are
    # about 15 standard deviations (0.0032) away on the log scale: a finite
    # step from 0 to 1.
    X_test = np.array([[0.0], [2.0], [0.05], [-0.05], [1.95], [2.05]])
    assert_allclose(_logit_margin(det.estimator_, X_test)[:2], 4.0)
    pvalues = det.score_samples(X_test)
    assert np.isfinite(pvalues).all()
    assert_allclose(pvalues[:2], 0.5)
    assert pvalues[2] < 1e-6 and pvalues[3] > 1 - 1e-6
    assert pvalues[4] < 1e-6 and pvalues[5] > 1 - 1e-6


def test_small_classes_get_fewer_components(blobs):
    X, _, y, _ = blobs
    keep = np.r_[np.flatnonzero(y == 0)[:300], np.flatnonzero(y == 1)[:7]]
    keep = np.r_[keep, np.flatnonzero(y == 2)[:12]]
    det = MarginPValueDetector(max_components=5, random_state=0).fit(X[keep], y[keep])
    assert det.n_components_[1] == 1
    assert det.n_components_[2] <= 2
    assert np.isfinite(det.score_samples(X)).all()


@pytest.mark.parametrize("cause", ["absent", "never_correct"])
def test_class_without_clean_samples_uses_pooled_mixture(blobs, cause):
    X, X_test, y, _ = blobs
    clf = LogisticRegression().fit(X, y)  # knows the three classes
    if cause == "absent":
        X_fit, y_fit = X[y != 2], y[y != 2]
    else:  # class 2 relabelled: its samples are never predicted correctly
        X_fit, y_fit = X, np.where(y == 2, 1, y)
    det = MarginPValueDetector(FrozenEstimator(clf), random_state=0)
    with pytest.warns(UserWarning, match=r"class\(es\) \[2\].*all classes"):
        det.fit(X_fit, y_fit)
    pooled = clone(det).set_params(per_class=False).fit(X_fit, y_fit)
    assert_allclose(det.mixtures_[2].means_, pooled.mixtures_[0].means_)
    assert_allclose(det.mixtures_[2].weights_, pooled.mixtures_[0].weights_)
    assert np.isfinite(det.score_samples(X_test)).all()


def test_no_clean_sample_at_all_raises(blobs):
    X, _, y, _ = blobs
    clf = LogisticRegression().fit(X, y)
    with pytest.raises(ValueError, match="classifies none of the"):
        MarginPValueDetector(FrozenEstimator(clf)).fit(X, (y + 1) % 3)
    with pytest.raises(ValueError, match="labelled by y_val"):
        MarginPValueDetector(FrozenEstimator(clf)).fit(X, y, X_val=X, y_val=(y + 1) % 3)


# ------------------------------------------------- held-out calibration (cv)
class _CountingLR(LogisticRegression):
    fits = 0

    def fit(self, X, y, sample_weight=None):
        type(self).fits += 1
        return super().fit(X, y, sample_weight)


def test_default_cv_fits_one_clone_per_fold_and_one_on_all_data(blobs):
    X, _, y, _ = blobs
    _CountingLR.fits = 0
    det = MarginPValueDetector(_CountingLR(), cv=3, random_state=0).fit(X, y)
    assert _CountingLR.fits == 4
    # The final classifier is the one fitted on all of X.
    assert_allclose(det.estimator_.coef_, LogisticRegression().fit(X, y).coef_)
    _CountingLR.fits = 0
    MarginPValueDetector(_CountingLR(), random_state=0).fit(X, y, X_val=X, y_val=y)
    assert _CountingLR.fits == 1  # X_val is held out already


def test_out_of_fold_calibration_keeps_fpr_on_unseen_digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from sk_margin import MarginKernelLogReg

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.4, stratify=y, random_state=0
    )
    clf = MarginKernelLogReg(
        lam=1e-4, regularizer="rkhs", n_centers=300, random_state=0
    )
    shares = {}
    for name, est in (
        ("in-sample", FrozenEstimator(clone(clf).fit(X_train, y_train))),
        ("cv", clf),
    ):
        det = MarginPValueDetector(est, random_state=0).fit(X_train, y_train)
        clean = det.estimator_.predict(X_test) == y_test
        shares[name] = np.mean(det.predict(X_test[clean]) == -1)
    # Training margins are larger than unseen ones: calibrated on them, the
    # detector flags more clean test digits than fpr promises (0.077);
    # out-of-fold margins keep the promise (0.051).
    assert shares["in-sample"] > 0.07
    assert abs(shares["cv"] - 0.05) < 0.015


# ------------------------------------------------------- unlabelled (prefit)
def test_frozen_classifier_calibrates_on_unlabelled_data(blobs):
    X_train, X_test, y_train, y_test = blobs
    clf = LogisticRegression().fit(X_train[:500], y_train[:500])
    X_cal, y_cal = X_train[500:], y_train[500:]
    assert clf.score(X_cal, y_cal) == 1.0  # every calibration sample is clean
    unlabelled = MarginPValueDetector(FrozenEstimator(clf), random_state=0).fit(X_cal)
    labelled = MarginPValueDetector(FrozenEstimator(clf), random_state=0)
    labelled.fit(X_cal, y_cal)
    # All samples correct: labels select nothing, the two fits are the same.
    assert unlabelled.offset_ == labelled.offset_
    assert_array_equal(unlabelled.score_samples(X_test), labelled.score_samples(X_test))
    assert_array_equal(unlabelled.fit_predict(X_cal), unlabelled.predict(X_cal))
    assert not unlabelled.__sklearn_tags__().target_tags.required
    assert MarginPValueDetector().__sklearn_tags__().target_tags.required


def test_unlabelled_calibration_counts_every_sample_under_its_prediction():
    # Overlapping blobs: many samples are misclassified. Without labels they
    # are calibration samples of the class they are predicted as.
    X, y = make_blobs(n_samples=1200, centers=2, cluster_std=4.0, random_state=1)
    clf = LogisticRegression().fit(X[:400], y[:400])
    X_cal, y_cal = X[400:800], y[400:800]
    det = MarginPValueDetector(FrozenEstimator(clf), random_state=0).fit(X_cal)
    pred = clf.predict(X_cal)
    assert np.mean(pred != y_cal) > 0.05
    with_labels = MarginPValueDetector(FrozenEstimator(clf), random_state=0)
    with_labels.fit(X_cal[pred == y_cal], y_cal[pred == y_cal])
    unlabelled_alike = MarginPValueDetector(FrozenEstimator(clf), random_state=0)
    unlabelled_alike.fit(X_cal[pred == y_cal])
    assert unlabelled_alike.offset_ == with_labels.offset_
    assert det.offset_ != with_labels.offset_  # the misclassified count too
    # On fresh data from the same distribution, unlabelled, fpr holds.
    flagged = np.mean(det.predict(X[800:]) == -1)
    assert abs(flagged - 0.05) < 0.035


def test_fit_without_labels_needs_a_frozen_classifier(blobs):
    X, _, _, _ = blobs
    with pytest.raises(ValueError, match="the labels are needed to fit its classifier"):
        MarginPValueDetector().fit(X)
    with pytest.raises(ValueError, match="FrozenEstimator"):
        MarginPValueDetector(LogisticRegression()).fit_predict(X)
