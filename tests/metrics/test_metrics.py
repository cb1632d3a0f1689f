import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MaxAbsScaler,
    MinMaxScaler,
    StandardScaler,
)

from sk_margin import MarginKernelLogReg, box_constrained_attack
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

ART_ATTACKS = ["fgsm", "pgd", "deepfool", "carlini_wagner"]


def _needs_art(attack):
    if attack != "box":
        pytest.importorskip("art")


class LinearModel:
    """``f(x) = W x + b``: its first-order margin is the exact l2 distance."""

    def __init__(self, W, b):
        self.W, self.b = np.asarray(W, float), np.asarray(b, float)
        self.classes_ = np.arange(len(self.b))

    def decision_function(self, X):
        return np.asarray(X, float) @ self.W.T + self.b

    def input_jacobian(self, X):
        return np.broadcast_to(self.W, (len(X),) + self.W.shape).copy()

    def predict(self, X):
        return self.classes_[np.argmax(self.decision_function(X), axis=1)]

    def distance(self, X):
        """Exact l2 distance to the decision boundary (Voronoi-type regions)."""
        s = self.decision_function(X)
        c = np.argmax(s, axis=1)
        gaps = s[np.arange(len(s)), c][:, None] - s
        norms = np.linalg.norm(self.W[c][:, None, :] - self.W[None], axis=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.arange(len(self.b)) == c[:, None], np.inf, gaps / norms)
        return ratio.min(axis=1)


@pytest.fixture(scope="module")
def digits(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:300], X_test[:60], y_train[:300], y_test[:60]


@pytest.fixture(scope="module")
def kernel_clf(digits):
    X, _, y, _ = digits
    return MarginKernelLogReg(n_centers=100, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def raw_pipe():
    """MinMaxScaler + kernel classifier on raw digits (pixels in 0..16)."""
    X, y = load_digits(return_X_y=True)
    clf = MarginKernelLogReg(n_centers=100, random_state=0)
    pipe = Pipeline([("scale", MinMaxScaler()), ("clf", clf)]).fit(X[:300], y[:300])
    return pipe, X[300:350]


@pytest.fixture(scope="module")
def linear_3class():
    rng = np.random.default_rng(0)
    model = LinearModel(rng.normal(size=(3, 5)), [0.0, 0.3, -0.2])
    X = rng.normal(size=(40, 5))
    return model, X, model.predict(X)


# --------------------------------------------------------------------------
# Pure metrics, by hand
# --------------------------------------------------------------------------


def test_certified_accuracy_by_hand():
    y_true = ["a", "b", "b", "a", "b"]
    y_pred = ["a", "b", "a", "a", "b"]
    radii = [0.5, 0.2, 0.9, 0.0, np.inf]
    assert certified_accuracy(y_true, y_pred, radii, 0.0) == 0.8  # the accuracy
    assert certified_accuracy(y_true, y_pred, radii, 0.2) == 0.6  # radius == eps
    assert certified_accuracy(y_true, y_pred, radii, 1e9) == 0.2  # inf radius
    curve = certified_accuracy(y_true, y_pred, radii, np.array([0.5, 0.0, 0.3]))
    assert isinstance(curve, np.ndarray)
    assert_allclose(curve, [0.4, 0.8, 0.4])
    assert isinstance(certified_accuracy(y_true, y_pred, radii, np.float32(0.1)), float)
    weights = [1.0, 2.0, 3.0, 0.0, 4.0]  # certified at 0.3: samples 0 and 4
    assert_allclose(
        certified_accuracy(y_true, y_pred, radii, 0.3, sample_weight=weights), 0.5
    )


def test_margins_by_hand():
    y_true, y_pred = [0, 1, 1, 0], [0, 1, 0, 0]
    d = [0.5, 0.2, 0.9, 0.0]
    # Wu & Yu: the mean of |m| over all samples, misclassified ones included.
    assert_allclose(average_margin(y_true, y_pred, d), 1.6 / 4)
    assert_allclose(average_margin(y_true, y_pred, d, misclassified="zero"), 0.7 / 4)
    assert_allclose(
        average_margin(y_true, y_pred, d, sample_weight=[0, 1, 1, 2]), 1.1 / 4
    )
    assert minimum_margin(y_true, y_pred, d) == -0.9
    assert minimum_margin([0, 1], [0, 1], [0.5, 0.2]) == 0.2
    zero = minimum_margin([0, 1], [1, 1], [0.0, 0.2])  # misclassified at distance 0
    assert zero == 0.0 and not np.signbit(zero)


def test_minimum_margin_of_absolute_signed_margins_is_their_minimum(
    kernel_clf, digits_split
):
    _, X, _, y = digits_split
    signed = kernel_clf.margins(X, y)
    assert (signed < 0).any()  # some misclassified samples
    y_pred = kernel_clf.predict(X)
    assert_allclose(minimum_margin(y, y_pred, np.abs(signed)), signed.min())
    assert_allclose(average_margin(y, y_pred, np.abs(signed)), np.abs(signed).mean())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"radii": [0.1, -0.2, 0.3]}, "radii must be non-negative"),
        ({"radii": [0.1, np.nan, 0.3]}, "radii must be non-negative"),
        ({"radii": [0.1, 0.3]}, "inconsistent numbers of samples"),
        ({"eps": -0.1}, "eps must be a non-negative"),
        ({"eps": [[0.1]]}, "eps must be a non-negative"),
        ({"eps": []}, "eps must be a non-negative"),
    ],
)
def test_certified_accuracy_errors(kwargs, match):
    args = {"y_true": [0, 1, 1], "y_pred": [0, 1, 0], "radii": [0.1, 0.2, 0.3]}
    args.update({"eps": 0.1, **kwargs})
    with pytest.raises(ValueError, match=match):
        certified_accuracy(**args)


def test_margin_errors():
    with pytest.raises(ValueError, match="distances must be non-negative"):
        minimum_margin([0, 1], [0, 1], [0.1, -1.0])
    with pytest.raises(ValueError, match="misclassified must be"):
        average_margin([0, 1], [0, 1], [0.1, 1.0], misclassified="drop")


# --------------------------------------------------------------------------
# Radii in the input space of a pipeline
# --------------------------------------------------------------------------


def test_certified_radii_of_a_bare_estimator_are_its_own(kernel_clf, digits):
    _, X, _, _ = digits
    assert_allclose(certified_radii(kernel_clf, X[:5]), kernel_clf.certify(X[:5]))
    assert_allclose(
        certified_radii(kernel_clf, X[:5], method="local_triangle"),
        kernel_clf.certify(X[:5], method="local_triangle"),
    )


def test_minmax_pipeline_radii_are_sound_in_raw_space(raw_pipe):
    pipe, X = raw_pipe
    radii = certified_radii(pipe, X)
    scaler, clf = pipe[0], pipe[-1]
    assert_allclose(radii, clf.certify(scaler.transform(X)) / scaler.scale_.max())
    assert radii.min() > 0

    def jacobian(Z):  # chain rule through x -> scale_ * x + min_
        return clf.input_jacobian(scaler.transform(Z)) * scaler.scale_

    X_adv, success = box_constrained_attack(
        (pipe.decision_function, jacobian), X, bounds=(0.0, 16.0)
    )
    assert success.all()
    assert np.all(pipe.predict(X_adv) != pipe.predict(X))
    assert np.all(radii <= np.linalg.norm(X_adv - X, axis=1))


@pytest.mark.parametrize(
    "steps, norm",
    [
        ([StandardScaler()], lambda p: np.max(1 / p[0].scale_)),
        ([StandardScaler(with_std=False)], lambda p: 1.0),
        ([MaxAbsScaler()], lambda p: np.max(1 / p[0].scale_)),
        (  # nested, passthrough and identity steps: the diagonals multiply
            [
                make_pipeline(MinMaxScaler(), "passthrough"),
                FunctionTransformer(),
                StandardScaler(),
            ],
            lambda p: np.max(p[0][0].scale_ / p[2].scale_),
        ),
    ],
)
def test_radii_through_known_scalers(digits, steps, norm):
    X, X_test, y, _ = digits
    pipe = make_pipeline(*steps, MarginKernelLogReg(n_centers=50, random_state=0))
    pipe.fit(X, y)
    inner = pipe[-1].certify(pipe[:-1].transform(X_test[:5]))
    assert_allclose(certified_radii(pipe, X_test[:5]), inner / norm(pipe))


def test_unknown_steps_and_missing_certify_raise(digits):
    X, X_test, y, _ = digits
    pipe = make_pipeline(PCA(5), MarginKernelLogReg(n_centers=20)).fit(X, y)
    with pytest.raises(TypeError, match="step 'pca' \\(PCA\\) is not a known affine"):
        certified_radii(pipe, X_test)
    with pytest.raises(TypeError, match="LogisticRegression has no certify"):
        certified_radii(make_pipeline(PCA(5), LogisticRegression()), X_test)


# --------------------------------------------------------------------------
# Robust accuracy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("attack", ART_ATTACKS + ["box"])
def test_robust_accuracy_curve_starts_at_accuracy_and_decreases(
    kernel_clf, digits, attack
):
    _needs_art(attack)
    _, X, _, y = digits
    eps = np.array([1.0, 0.0, 0.3, 0.6])
    curve = robust_accuracy(kernel_clf, X, y, attack=attack, eps=eps)
    assert curve[1] == kernel_clf.score(X, y)
    assert curve[1] >= curve[2] >= curve[3] >= curve[0]
    assert curve[0] < curve[1] - 0.2
    certified = certified_accuracy(y, kernel_clf.predict(X), kernel_clf.certify(X), eps)
    assert np.all(curve >= certified)


@pytest.mark.parametrize("attack", ["pgd", "deepfool", "carlini_wagner", "box"])
@pytest.mark.parametrize("quantile", [0.3, 0.7])
def test_attacks_never_break_a_certified_sample(kernel_clf, digits, attack, quantile):
    _needs_art(attack)
    _, X, _, y = digits
    radii, correct = kernel_clf.certify(X), kernel_clf.predict(X) == y
    eps = float(np.quantile(radii[correct], quantile))
    safe, others = correct & (radii > eps), correct & (radii < eps)
    kwargs = {"attack": attack, "eps": eps, "clip_values": (0.0, 1.0)}
    assert robust_accuracy(kernel_clf, X[safe], y[safe], **kwargs) == 1.0
    # Not vacuous: the attack does break samples that are not certified.
    assert robust_accuracy(kernel_clf, X[others], y[others], **kwargs) < 0.9


@pytest.mark.parametrize("attack", ["box", "deepfool"])
def test_minimal_attacks_on_a_linear_model_give_the_exact_curve(linear_3class, attack):
    _needs_art(attack)
    model, X, y = linear_3class
    dist = np.sort(model.distance(X))
    eps = (dist[[5, 15, 25, 35]] + dist[[6, 16, 26, 36]]) / 2  # between samples
    assert np.abs(dist[:, None] - eps).min() > 1e-4
    curve = robust_accuracy(model, X, y, attack=attack, eps=eps)
    assert_allclose(curve, certified_accuracy(y, y, dist, eps))


def test_linf_pgd_respects_l2_certificates(kernel_clf, digits):
    pytest.importorskip("art")
    _, X, _, y = digits
    eps = 0.02  # the l_inf ball of radius eps lies in the l2 ball of eps sqrt(d)
    safe = (kernel_clf.predict(X) == y) & (kernel_clf.certify(X) > eps * 8)
    assert safe.sum() >= 5
    score = robust_accuracy(kernel_clf, X[safe], y[safe], eps=eps, norm=np.inf)
    assert score == 1.0
    assert robust_accuracy(kernel_clf, X, y, eps=0.1, norm="inf") < 0.9


def test_pipeline_robust_accuracy_respects_raw_radii(raw_pipe):
    pipe, X = raw_pipe
    y = pipe.predict(X)  # attack the predictions: every sample is correct
    radii = certified_radii(pipe, X)
    eps = float(np.median(radii))
    for attack in ("box", "pgd"):
        _needs_art(attack)
        kwargs = {"attack": attack, "eps": eps, "clip_values": (0.0, 16.0)}
        safe = radii > eps
        assert robust_accuracy(pipe, X[safe], y[safe], **kwargs) == 1.0
        assert robust_accuracy(pipe, X, y, **{**kwargs, "eps": 8.0}) < 0.9


# --------------------------------------------------------------------------
# Relative robustness
# --------------------------------------------------------------------------


@pytest.mark.parametrize("attack, rtol", [("box", 1e-4), ("deepfool", 0.03)])
def test_relative_robustness_of_a_linear_model_is_exact(linear_3class, attack, rtol):
    _needs_art(attack)
    model, X, _ = linear_3class
    expected = np.mean(model.distance(X) / np.linalg.norm(X, axis=1))
    assert_allclose(relative_robustness(model, X, attack=attack), expected, rtol=rtol)


class Ramp:
    """Binary ``f(x) = clip(x_0 - 0.5, -0.1, 0.1)``: flat, so unattackable, far out."""

    classes_ = np.array([0, 1])

    def decision_function(self, X):
        return np.clip(np.asarray(X)[:, 0] - 0.5, -0.1, 0.1)

    def input_jacobian(self, X):
        X = np.asarray(X)
        return np.where(np.abs(X[:, :1] - 0.5) < 0.1, [[1.0, 0.0]], 0.0)

    def predict(self, X):
        return self.classes_[(self.decision_function(X) > 0).astype(int)]


def test_relative_robustness_failed_attacks():
    X = np.array([[0.45, 0.0], [0.9, 0.0]])  # the second point is in a flat region
    kwargs = {"attack": "box", "clip_values": (0.0, 1.0)}
    with pytest.warns(UserWarning, match="1 of 2 samples unchanged"):
        rho = relative_robustness(Ramp(), X, **kwargs)
    assert_allclose(rho, 0.05 / 0.45, rtol=1e-4)
    assert relative_robustness(Ramp(), X, failed="inf", **kwargs) == np.inf
    with pytest.raises(ValueError, match="1 of 2 samples unchanged"):
        relative_robustness(Ramp(), X, failed="raise", **kwargs)
    with pytest.warns(UserWarning, match="1 of 1 samples unchanged"):
        assert np.isnan(relative_robustness(Ramp(), X[1:], **kwargs))


def test_relative_robustness_errors(kernel_clf, digits):
    _, X, _, _ = digits
    with pytest.raises(ValueError, match="minimal perturbation"):
        relative_robustness(kernel_clf, X, attack="pgd")
    with pytest.raises(ValueError, match="rows of norm 0"):
        relative_robustness(kernel_clf, np.zeros((2, 64)), attack="box")
    with pytest.raises(ValueError, match="failed must be"):
        relative_robustness(kernel_clf, X, failed="skip")


# --------------------------------------------------------------------------
# Scorers
# --------------------------------------------------------------------------


def test_scorers_compute_their_metric_and_pickle(kernel_clf, raw_pipe, digits):
    _, X, _, y = digits
    y_pred, radii = kernel_clf.predict(X), kernel_clf.certify(X)
    weights = np.linspace(0.5, 2.0, len(y))
    cert = make_certified_accuracy_scorer(eps=0.1)
    assert repr(cert) == "make_certified_accuracy_scorer(eps=0.1)"
    assert cert(kernel_clf, X, y) == certified_accuracy(y, y_pred, radii, 0.1)
    assert_allclose(
        cert(kernel_clf, X, y, sample_weight=weights),
        certified_accuracy(y, y_pred, radii, 0.1, sample_weight=weights),
    )
    avg = pickle.loads(
        pickle.dumps(make_average_margin_scorer(method="local_triangle"))
    )
    assert repr(avg) == (
        "make_average_margin_scorer(misclassified='distance', method='local_triangle')"
    )
    radii_t = kernel_clf.certify(X, method="local_triangle")
    assert avg(kernel_clf, X, y) == average_margin(y, y_pred, radii_t)
    pipe, X_raw = raw_pipe
    y_raw = pipe.predict(X_raw)
    expected = certified_accuracy(y_raw, y_raw, certified_radii(pipe, X_raw), 1.0)
    assert make_certified_accuracy_scorer(1.0)(pipe, X_raw, y_raw) == expected
    rob = make_robust_accuracy_scorer(attack="box", eps=0.2, max_iter=10)
    assert repr(rob) == (
        "make_robust_accuracy_scorer(attack='box', eps=0.2, norm=2, "
        "clip_values=None, max_iter=10)"
    )
    assert rob(kernel_clf, X, y) == robust_accuracy(
        kernel_clf, X, y, attack="box", eps=0.2, max_iter=10
    )
    with pytest.raises(ValueError, match="eps must be a non-negative number"):
        make_certified_accuracy_scorer(eps=[0.1, 0.2])


@pytest.mark.slow
def test_grid_search_multimetric_refit_in_parallel(digits):
    X, _, y, _ = digits
    cv = KFold(2, shuffle=True, random_state=0)
    scoring = {
        "acc": "accuracy",
        "cert@0.2": make_certified_accuracy_scorer(eps=0.2),
        "avg_margin": make_average_margin_scorer(),
    }
    search = GridSearchCV(
        MarginKernelLogReg(n_centers=100, random_state=0),
        {"lam": [1e-3, 1.0]},
        scoring=scoring,
        refit="cert@0.2",
        cv=cv,
        n_jobs=2,
    ).fit(X, y)
    res = search.cv_results_
    assert search.best_index_ == np.argmax(res["mean_test_cert@0.2"])
    assert np.all(res["mean_test_cert@0.2"] <= res["mean_test_acc"])
    assert len(set(res["mean_test_cert@0.2"])) == 2  # lam matters
    # A cross-validated value is the metric on that fold, computed by hand.
    train, test = next(cv.split(X))
    clf = MarginKernelLogReg(lam=search.best_params_["lam"], n_centers=100)
    clf.set_params(random_state=0).fit(X[train], y[train])
    expected = certified_accuracy(
        y[test], clf.predict(X[test]), clf.certify(X[test]), 0.2
    )
    assert_allclose(res["split0_test_cert@0.2"][search.best_index_], expected)


def test_cross_val_score_of_a_pipeline():
    X, y = load_digits(return_X_y=True)
    X, y = X[:200], y[:200]
    pipe = make_pipeline(
        MinMaxScaler(), MarginKernelLogReg(n_centers=50, random_state=0)
    )
    cv = KFold(2)
    scores = cross_val_score(
        pipe, X, y, cv=cv, scoring=make_certified_accuracy_scorer(eps=1.0)
    )
    train, test = list(cv.split(X))[1]
    fitted = clone(pipe).fit(X[train], y[train])
    radii = certified_radii(fitted, X[test])
    expected = certified_accuracy(y[test], fitted.predict(X[test]), radii, 1.0)
    assert_allclose(scores[1], expected)


@pytest.mark.slow
def test_scorers_with_a_margin_net_in_parallel(digits):
    pytest.importorskip("art")
    from sk_margin.nets import MarginNetClassifier

    X, _, y, _ = digits
    net = MarginNetClassifier(
        criterion="lc_lmt",
        criterion__eps=0.1,
        module__hidden_sizes=(16,),
        max_epochs=2,
        verbose=0,
        random_state=0,
    )
    scoring = {
        "acc": "accuracy",
        "cert": make_certified_accuracy_scorer(eps=0.05),
        "rob": make_robust_accuracy_scorer(attack="pgd", eps=0.05, max_iter=10),
    }
    search = GridSearchCV(
        net, {"lr": [1e-3, 1e-2]}, scoring=scoring, refit="rob", cv=2, n_jobs=2
    ).fit(X, y)
    res = search.cv_results_
    for split in range(2):
        cert, rob = res[f"split{split}_test_cert"], res[f"split{split}_test_rob"]
        assert np.all(cert <= rob) and np.all(rob <= res[f"split{split}_test_acc"])
    assert search.best_index_ == np.argmax(res["mean_test_rob"])
