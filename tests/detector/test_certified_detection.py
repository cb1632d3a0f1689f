"""Certified detection: radius thresholds, guaranteed radii, metric, scorer, Display."""

import matplotlib
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_digits, make_blobs
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import GridSearchCV, train_test_split

from sk_margin import MarginKernelLogReg, MarginNetClassifier, box_constrained_attack
from sk_margin.detector import MarginPValueDetector, mixture_pvalue
from sk_margin.detector._mixture import _mixture_params
from sk_margin.metrics import (
    certified_detection_accuracy,
    make_certified_detection_scorer,
)
from sk_margin.plot import CertifiedDetectionDisplay

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(
        600,
        centers=[[0.25, 0.25], [0.75, 0.3], [0.5, 0.75]],
        cluster_std=0.12,
        random_state=0,
    )
    return X[:300], y[:300], X[300:], y[300:]


@pytest.fixture(scope="module")
def blob_models(blobs):
    X, y, _, _ = blobs
    return {
        "kernel": MarginKernelLogReg(lam=1e-2, random_state=0).fit(X, y),
        "net": MarginNetClassifier(
            module__hidden_sizes=(32,), max_epochs=60, lr=1e-2, random_state=0
        ).fit(X.astype(np.float32), y),
    }


DETECTORS = {
    "margin": {},
    "margin+input": {"representations": "input"},
    "fisher": {"representations": "input", "combine": "fisher"},
    "reject 0.05": {"reject_radius": 0.05},
}


@pytest.mark.parametrize("model", ["kernel", "net"])
@pytest.mark.parametrize("kind", list(DETECTORS))
def test_no_accepted_misclassification_within_the_guaranteed_radius_on_a_grid(
    blobs, blob_models, model, kind
):
    _, _, X_cal, y_cal = blobs
    clf = blob_models[model]
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", random_state=0, **DETECTORS[kind]
    ).fit(X_cal, y_cal)
    g = np.linspace(-0.05, 1.05, 161)  # steps of 0.007; radii 0.02-0.1
    grid = np.array(np.meshgrid(g, g)).reshape(2, -1).T
    accepted_wrong = det.predict(grid) == 1
    grid_pred = clf.predict(grid)
    X, pred = X_cal[:60], clf.predict(X_cal[:60])
    R = det.guaranteed_radius(X)
    assert np.all(R >= clf.certify(X))
    violations = 0
    for x, r, c in zip(X, R, pred, strict=True):
        near = np.linalg.norm(grid - x, axis=1) < r
        violations += int(np.sum(near & (grid_pred != c) & accepted_wrong))
    assert violations == 0
    # Not vacuous: the grid has accepted points of every class, and most
    # guaranteed radii reach past the certified radius.
    assert len(np.unique(grid_pred[accepted_wrong])) == 3
    assert np.mean(R > clf.certify(X) + 1e-3) > 0.9


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return train_test_split(
        X / 16.0, y, train_size=500, test_size=300, stratify=y, random_state=0
    )


@pytest.mark.parametrize("model", ["kernel", "net"])
def test_attacks_below_the_guaranteed_radius_are_always_flagged(digits, model):
    X_train, X_test, y_train, y_test = digits
    if model == "kernel":
        clf = MarginKernelLogReg(n_centers=150, random_state=0)
    else:
        clf = MarginNetClassifier(
            module__hidden_sizes=(64,), max_epochs=20, lr=3e-3, random_state=0
        )
    clf.fit(X_train.astype(np.float32), y_train)
    X_cal, X_eval, y_cal, y_eval = train_test_split(
        X_test, y_test, test_size=0.3, stratify=y_test, random_state=0
    )
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", random_state=0
    ).fit(X_cal, y_cal)
    X = X_eval[:60]
    R = det.guaranteed_radius(X)
    # Minimal adversarial examples, then every point further along the same
    # ray, deeper into the wrong class (where the certified radius grows),
    # up to the guaranteed radius.
    X_adv, success = box_constrained_attack(clf, X, bounds=(0.0, 1.0))
    direction = X_adv - X
    dist = np.linalg.norm(direction, axis=1)
    tried = 0
    for t in np.linspace(0.0, 1.0, 21):
        length = dist + t * (R - dist)
        X_t = X + direction * (length / np.maximum(dist, 1e-12))[:, None]
        inside = success & (length < R) & (dist > 0)
        wrong = inside & (clf.predict(X_t) != clf.predict(X))
        tried += int(wrong.sum())
        if wrong.any():
            assert np.all(det.predict(X_t[wrong]) == -1)
    assert tried > 50  # the attack found misclassified points to check


def test_thresholds_match_a_direct_computation(blobs, blob_models):
    _, _, X_cal, y_cal = blobs
    clf = blob_models["kernel"]
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", random_state=0
    ).fit(X_cal, y_cal)
    for j, mixture in enumerate(det.mixtures_):
        params = _mixture_params(mixture)
        below = mixture_pvalue([np.log(det.tau_[j])], *params)[0]
        above = mixture_pvalue([np.log(det.tau_[j] * (1 + 1e-6))], *params)[0]
        assert below < det.offset_ <= above
    X = X_cal[:40]
    r, pred = clf.certify(X), np.searchsorted(clf.classes_, clf.predict(X))
    expected = [
        r[i] + min(det.tau_[j] for j in range(3) if j != pred[i]) for i in range(40)
    ]
    assert_allclose(det.guaranteed_radius(X), expected)
    # Accepted exactly when the radius reaches the threshold of its class.
    accepted = det.predict(X) == 1
    assert_array_equal(accepted, r >= det.tau_[pred])


def test_reject_radius_is_the_rejection_rule(blobs, blob_models):
    _, _, X_cal, y_cal = blobs
    clf = blob_models["kernel"]
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", reject_radius=0.04
    ).fit(X_cal, y_cal)
    r = clf.certify(X_cal)
    assert_array_equal(det.tau_, [0.04] * 3)
    assert_array_equal(det.score_samples(X_cal), r)
    assert_array_equal(det.predict(X_cal) == -1, r < 0.04)
    assert_allclose(det.guaranteed_radius(X_cal), r + 0.04)


def test_metric_and_scorer_count_what_they_say(blobs, blob_models):
    _, _, X_cal, y_cal = blobs
    clf = blob_models["kernel"]
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", random_state=0
    ).fit(X_cal, y_cal)
    X, y = X_cal[:100], y_cal[:100]
    R, acc = det.guaranteed_radius(X), det.predict(X) == 1
    pred = clf.predict(X)
    for eps in (0.0, 0.03, 0.08):
        direct = np.mean((pred == y) & acc & (R >= eps))
        assert certified_detection_accuracy(y, pred, R, eps, accepted=acc) == direct
        assert make_certified_detection_scorer(eps)(det, X, y) == direct
    with pytest.raises(ValueError, match="accepted must be booleans"):
        certified_detection_accuracy(y, pred, R, 0.1, accepted=acc.astype(int))


def test_scorer_chooses_the_reject_radius_in_a_search(blobs):
    X, y, X_cal, y_cal = blobs
    search = GridSearchCV(
        MarginPValueDetector(
            MarginKernelLogReg(lam=1e-2, random_state=0), margin="certified", cv=2
        ),
        {"reject_radius": [0.0, 0.02, 0.2]},
        scoring=make_certified_detection_scorer(eps=0.06),
        cv=2,
    ).fit(X, y)
    # 0.2 flags nearly everything; 0.0 guarantees only the certified radius.
    assert search.best_params_["reject_radius"] == 0.02


def test_errors_name_what_is_missing(blobs, blob_models):
    _, _, X_cal, y_cal = blobs
    clf = blob_models["kernel"]
    logit = MarginPValueDetector(FrozenEstimator(clf)).fit(X_cal, y_cal)
    with pytest.raises(ValueError, match="margin='certified' and tail='lower'"):
        logit.guaranteed_radius(X_cal)
    assert not hasattr(logit, "tau_")

    class _NoFit(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            raise AssertionError("fitted before the parameters were checked")

        def decision_function(self, X):
            raise AssertionError

        def certify(self, X):
            raise AssertionError

    for params in ({"reject_radius": 0.1},
                   {"reject_radius": 0.1, "margin": "certified",
                    "representations": "input"}):  # fmt: skip
        with pytest.raises(ValueError, match="reject_radius .* needs"):
            MarginPValueDetector(_NoFit(), **params).fit(X_cal, y_cal)
    with pytest.raises(TypeError, match="has no guaranteed_radius"):
        make_certified_detection_scorer(0.1)(clf, X_cal, y_cal)


def test_display_shows_the_trade_off(blobs, blob_models):
    import matplotlib.pyplot as plt

    _, _, X_cal, y_cal = blobs
    clf = blob_models["kernel"]
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", random_state=0
    ).fit(X_cal, y_cal)
    eps = np.array([0.0, 0.05, 0.1])
    disp = CertifiedDetectionDisplay.from_detector(det, X_cal, y_cal, eps=eps)
    r, pred = clf.certify(X_cal), clf.predict(X_cal)
    correct = pred == y_cal
    assert_allclose(disp.certified_accuracy, [np.mean(correct & (r >= e)) for e in eps])
    assert_allclose(
        disp.detection_accuracy, [np.mean(correct & (r >= e / 2)) for e in eps]
    )
    assert_allclose(disp.flagged, [np.mean(r < e / 2) for e in eps])
    R, acc = det.guaranteed_radius(X_cal), det.predict(X_cal) == 1
    assert_allclose(
        disp.detector_accuracy, [np.mean(correct & acc & (R >= e)) for e in eps]
    )
    assert set(disp.lines_) == {"certified", "detection", "flagged", "detector"}
    # With detection, more is guaranteed at every positive radius.
    assert np.all(disp.detection_accuracy[1:] >= disp.certified_accuracy[1:])
    other = CertifiedDetectionDisplay.from_estimator(clf, X_cal, y_cal, ax=disp.ax_)
    assert other.ax_ is disp.ax_
    plt.close("all")


def test_certify_params_reach_certify_and_are_checked_first(blobs, blob_models):
    _, _, X_cal, y_cal = blobs
    net = blob_models["net"]
    det = MarginPValueDetector(
        FrozenEstimator(net),
        margin="certified",
        certify_params={"method": "global_pairwise"},
        random_state=0,
    ).fit(X_cal, y_cal)
    expected = net.certify(X_cal[:20], method="global_pairwise")
    tau = det.tau_[np.searchsorted(net.classes_, net.predict(X_cal[:20]))]
    assert_array_equal(det.predict(X_cal[:20]) == 1, expected >= tau)
    others = np.where(np.eye(3, dtype=bool)[np.searchsorted(net.classes_,
                      net.predict(X_cal[:20]))], np.inf, det.tau_)  # fmt: skip
    assert_allclose(det.guaranteed_radius(X_cal[:20]), expected + others.min(1))
    with pytest.raises(ValueError, match=r"\['methd'\].*takes \['method'\]"):
        MarginPValueDetector(
            net, margin="certified", certify_params={"methd": "global_l2"}
        ).fit(X_cal, y_cal)
    with pytest.raises(ValueError, match="certify_params is for margin='certified'"):
        MarginPValueDetector(net, certify_params={"method": "auto"}).fit(X_cal, y_cal)
