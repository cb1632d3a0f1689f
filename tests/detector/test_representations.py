"""The detector's class-conditional models of representations (issue 20)."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import InvalidParameterError

from sk_margin import MarginKernelLogReg, MarginNetClassifier
from sk_margin.detector import MarginPValueDetector
from sk_margin.detector._density import ClassConditionalDensity, EmpiricalPValues


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X / 16.0, y, test_size=0.4, stratify=y, random_state=0
    )
    return X_train, X_test, y_train, y_test


@pytest.fixture(scope="module")
def logreg(digits):
    X_train, _, y_train, _ = digits
    return LogisticRegression(C=0.1, max_iter=2000).fit(X_train, y_train)


def _auc(clean, attacked):
    """AUC of telling attacked from clean inputs by a low score."""
    labels = np.r_[np.zeros(len(clean)), np.ones(len(attacked))]
    return roc_auc_score(labels, -np.r_[clean, attacked])


# ------------------------------------------------------------ the models
def test_log_posterior_is_bayes_rule_with_gaussian_classes():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.randn(300, 3) @ [[1, 0.5, 0], [0, 1, 0], [0, 0, 2]],
                   rng.randn(100, 3) + [2.0, -1.0, 0.5]])  # fmt: skip
    labels = np.r_[np.zeros(300, int), np.ones(100, int)]
    model = ClassConditionalDensity(n_dims=3, max_components=1, random_state=0)
    model.fit(X, labels, 2)
    # All components kept: a rotation of the input, under which posteriors do
    # not change. Direct computation: maximum-likelihood Gaussians plus the
    # documented regularisation, 1e-3 times the largest component variance.
    reg = 1e-3 * np.linalg.eigvalsh(np.cov(X.T, bias=True)).max()
    joint = np.column_stack(
        [
            multivariate_normal(
                X[labels == c].mean(0),
                np.cov(X[labels == c].T, bias=True) + reg * np.eye(3),
            ).logpdf(X)
            + np.log(np.mean(labels == c))
            for c in (0, 1)
        ]
    )
    pred = rng.randint(0, 2, len(X))
    expected = joint[np.arange(len(X)), pred] - logsumexp(joint, axis=1)
    assert_allclose(model.log_posterior(X, pred), expected, rtol=1e-6, atol=1e-8)


def test_a_class_without_samples_gets_minus_infinity():
    rng = np.random.RandomState(0)
    X = rng.randn(50, 4)
    model = ClassConditionalDensity(2, 1, 0).fit(X, np.zeros(50, int), 3)
    out = model.log_posterior(X[:5], np.array([0, 1, 2, 0, 0]))
    assert_allclose(out[[0, 3, 4]], 0.0)  # the only class: posterior 1
    assert np.all(out[[1, 2]] == -np.inf)


def test_empirical_pvalues_are_valid_and_leave_one_out_when_held_in():
    rng = np.random.RandomState(0)
    ref, ref_pred = rng.randn(400), rng.randint(0, 2, 400)
    pvalues = EmpiricalPValues(ref, ref_pred, 2)
    new, new_pred = rng.randn(20000), rng.randint(0, 2, 20000)
    p = pvalues(new, new_pred)
    for alpha in (0.01, 0.05, 0.2):
        assert abs(np.mean(p <= alpha) - alpha) < 0.02
    # Held in: each value is left out of its own class's reference.
    held = pvalues(ref, ref_pred, held_in=True)
    i = 7
    others = ref[(ref_pred == ref_pred[i]) & (np.arange(400) != i)]
    assert_allclose(held[i], (1 + np.sum(others <= ref[i])) / (1 + len(others)))
    # Too few values of a class: the pooled reference.
    few = EmpiricalPValues(ref, np.r_[np.ones(5, int), np.zeros(395, int)], 2)
    assert_array_equal(few.by_class_[1], np.sort(ref))


# --------------------------------------------------------- the detector
def _high_confidence_attack(clf, X, y):
    """Move each input along ``w_b - w_a`` (``a`` its class, ``b`` the runner-up)
    until ``b`` wins by the median clean margin: misclassified, with a margin
    as typical as a clean input's, which the margin p-value cannot tell."""
    scores = clf.decision_function(X)
    clean = np.sort(scores, axis=1)
    target_margin = np.median(clean[:, -1] - clean[:, -2])
    masked = scores.copy()
    masked[np.arange(len(X)), y] = -np.inf
    b = masked.argmax(1)
    d = clf.coef_[b] - clf.coef_[y]
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    X_adv = X.copy()
    for _ in range(20):  # the runner-up can change on the way: a few steps
        s = clf.decision_function(X_adv)
        top = s.argmax(1)
        gap = s[np.arange(len(X)), b] - np.max(
            np.where(np.arange(s.shape[1]) == b[:, None], -np.inf, s), axis=1
        )
        slope = np.einsum("ij,ij->i", d, clf.coef_[b] - clf.coef_[top]) + 1e-12
        slope = np.where(
            top == b, np.linalg.norm(clf.coef_[b] - clf.coef_[y], axis=1), slope
        )
        X_adv += ((target_margin - gap) / np.maximum(slope, 1e-3))[:, None] * d
    return X_adv


def test_input_model_flags_high_confidence_attacks_the_margin_misses(digits, logreg):
    X_train, X_test, y_train, y_test = digits
    X_cal, X_eval, y_cal, y_eval = train_test_split(
        X_test, y_test, test_size=0.5, stratify=y_test, random_state=0
    )
    clean = logreg.predict(X_eval) == y_eval
    X_clean, y_clean = X_eval[clean], y_eval[clean]
    X_adv = _high_confidence_attack(logreg, X_clean, y_clean)
    fooled = logreg.predict(X_adv) != y_clean
    assert fooled.mean() > 0.9
    X_adv = X_adv[fooled]
    aucs, flagged = {}, {}
    for reps in (None, "input"):
        det = MarginPValueDetector(
            FrozenEstimator(logreg), representations=reps, random_state=0
        ).fit(X_cal, y_cal)
        aucs[reps] = _auc(det.score_samples(X_clean), det.score_samples(X_adv))
        flagged[reps] = np.mean(det.predict(X_adv) == -1)
    # Their margins are typical: the margin alone is at chance (0.45 here). A
    # model of what each class's digits look like sees most of them (0.74),
    # though each moved along the classifier's own direction between the two
    # classes, a third of a digit's norm, towards what the other class looks
    # like to a linear model.
    assert aucs[None] < 0.6
    assert aucs["input"] > 0.68
    assert aucs["input"] > aucs[None] + 0.2
    assert flagged["input"] > 2 * flagged[None]


@pytest.mark.parametrize("mode", ["cv", "X_val", "frozen", "unlabelled"])
def test_false_positives_on_unseen_digits_stay_near_fpr(digits, mode):
    X_train, X_test, y_train, y_test = digits
    clf = LogisticRegression(C=0.1, max_iter=2000)
    det = MarginPValueDetector(clf, representations="input", random_state=0)
    if mode == "cv":
        det.fit(X_train, y_train)
    elif mode == "X_val":
        X_fit, X_val, y_fit, y_val = train_test_split(
            X_train, y_train, test_size=0.4, stratify=y_train, random_state=0
        )
        det.fit(X_fit, y_fit, X_val=X_val, y_val=y_val)
    else:
        X_fit, X_cal, y_fit, y_cal = train_test_split(
            X_train, y_train, test_size=0.5, stratify=y_train, random_state=0
        )
        det.set_params(estimator=FrozenEstimator(clf.fit(X_fit, y_fit)))
        det.fit(X_cal, None if mode == "unlabelled" else y_cal)
    clean = det.estimator_.predict(X_test) == y_test
    share = np.mean(det.predict(X_test[clean]) == -1)
    # 690 clean test digits: one standard deviation of the share is 0.008.
    limit = 0.035 if mode == "unlabelled" else 0.03
    assert abs(share - det.fpr) < limit, share


def test_component_pvalues_start_with_the_margin_detectors(digits, logreg):
    X_train, X_test, y_train, y_test = digits
    margin_only = MarginPValueDetector(FrozenEstimator(logreg), random_state=0)
    margin_only.fit(X_test, y_test)
    det = MarginPValueDetector(
        FrozenEstimator(logreg), representations="input", random_state=0
    ).fit(X_test, y_test)
    P = det.component_pvalues(X_train[:50])
    assert P.shape == (50, 2)
    assert_allclose(P[:, 0], margin_only.score_samples(X_train[:50]))
    assert np.all((P > 0) & (P <= 1))
    # The score is the calibrated minimum: ordered as the minimum is.
    score = det.score_samples(X_train[:50])
    order = np.argsort(P.min(axis=1), kind="stable")
    assert np.all(np.diff(score[order]) >= 0)


def test_fisher_combination_sums_log_pvalues(digits, logreg):
    _, X_test, _, y_test = digits
    det = MarginPValueDetector(
        FrozenEstimator(logreg), representations="input", combine="fisher",
        random_state=0,
    ).fit(X_test, y_test)  # fmt: skip
    P = det.component_pvalues(X_test[:40])
    score = det.score_samples(X_test[:40])
    order = np.argsort(np.log(P).sum(axis=1), kind="stable")
    assert np.all(np.diff(score[order]) >= 0)


def test_network_layers_through_a_pipeline(digits):
    X_train, X_test, y_train, y_test = digits
    pipe = make_pipeline(
        MinMaxScaler(),
        MarginNetClassifier(
            module__hidden_sizes=(32,), max_epochs=10, lr=1e-2, random_state=0
        ),
    )
    det = MarginPValueDetector(
        pipe, representations=[-1, "input"], n_dims=10, cv=2, random_state=0
    ).fit(X_train, y_train)
    first, second = det.representation_models_
    assert first.pca_.n_features_in_ == 32  # the hidden layer, not the input
    assert second.pca_.n_features_in_ == 64
    assert first.pca_.n_components_ == 10
    assert det.component_pvalues(X_test[:5]).shape == (5, 3)
    assert np.all(np.isin(det.predict(X_test), [-1, 1]))


def test_kernel_model_features_as_representation(digits):
    X_train, X_test, y_train, _ = digits
    clf = MarginKernelLogReg(n_centers=60, random_state=0).fit(X_train, y_train)
    det = MarginPValueDetector(
        FrozenEstimator(clf), representations=-1, random_state=0
    ).fit(X_test, clf.predict(X_test))
    assert det.representation_models_[0].pca_.n_features_in_ == 60


class _NoFit(ClassifierMixin, BaseEstimator):
    """A classifier that must never be fitted: errors come first."""

    def fit(self, X, y):
        raise AssertionError("fit was called before the parameters were checked")

    def decision_function(self, X):
        raise AssertionError


@pytest.mark.parametrize(
    "value, match",
    [
        ([], "got an empty list"),
        (["input", "hidden"], "got 'hidden'"),
        ([True], "got True"),
        ([0.5], "got 0.5"),
        (["input", "input"], "duplicates"),
        (-1, "representation\\(X, layer\\) method .* _NoFit has none"),
    ],
)
def test_bad_representations_are_rejected_before_fitting(digits, value, match):
    X_train, _, y_train, _ = digits
    det = MarginPValueDetector(_NoFit(), representations=value)
    with pytest.raises(ValueError, match=match):
        det.fit(X_train, y_train)


@pytest.mark.parametrize(
    "params",
    [{"representations": "hidden"}, {"representations": 0.5}, {"n_dims": 0},
     {"combine": "max"}],
)  # fmt: skip
def test_bad_parameters_name_the_parameter(digits, params):
    X_train, _, y_train, _ = digits
    det = MarginPValueDetector(_NoFit(), **params)
    with pytest.raises(InvalidParameterError, match=next(iter(params))):
        det.fit(X_train, y_train)
