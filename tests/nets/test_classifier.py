import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import minimize
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils._param_validation import InvalidParameterError
from skorch.callbacks import Callback

from sk_margin import box_constrained_attack
from sk_margin.nets import MarginNetClassifier, MarginStatistics
from sk_margin.nets.losses import LOSSES

METHODS = ["global_pairwise", "global_l2", "global_linf", "local_quadratic", "auto"]


@pytest.fixture(scope="module")
def digits(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:600], X_test[:60], y_train[:600], y_test[:60]


@pytest.fixture(scope="module")
def fitted_net(digits):
    X, _, y, _ = digits
    return MarginNetClassifier(
        module__hidden_sizes=(64,), max_epochs=15, lr=3e-3, random_state=0
    ).fit(X, y)


def test_fit_predict_on_plain_arrays(fitted_net, digits):
    _, X_test, _, y_test = digits
    assert fitted_net.score(X_test, y_test) > 0.85
    proba = fitted_net.predict_proba(X_test)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    scores = fitted_net.decision_function(X_test)
    assert scores.shape == (len(X_test), 10)
    assert np.array_equal(
        fitted_net.classes_[scores.argmax(1)], fitted_net.predict(X_test)
    )


def test_string_labels_dataframes_and_float64(digits):
    X, X_test, y, _ = digits
    names = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )
    cols = [f"p{i}" for i in range(64)]
    net = MarginNetClassifier(max_epochs=3, random_state=0).fit(
        pd.DataFrame(X.astype(np.float64), columns=cols), names[y]
    )
    pred = net.predict(pd.DataFrame(X_test, columns=cols))
    assert set(pred) <= set(names)
    assert list(net.feature_names_in_) == cols


@pytest.fixture(scope="module")
def separable():
    """Three well-separated, standardised 4-D blobs: every loss can fit them."""
    X, y = make_blobs(n_samples=90, centers=3, n_features=4, random_state=0)
    return ((X - X.mean(0)) / X.std(0)).astype(np.float32), y


# Hyperparameters in the units of the blobs below, where the defaults would
# ask for more than the data allow (a certified radius of 2 in 4-D blobs that
# overlap at that distance).
_ON_BLOBS = {"certified_margin": {"criterion__margin": 0.5}}


def _train_with_loss(name, X, y, max_epochs):
    return MarginNetClassifier(
        **_ON_BLOBS.get(name, {}),
        criterion=name,
        module__hidden_sizes=(32,),
        lr=3e-2,
        batch_size=64,
        max_epochs=max_epochs,
        max_reweight_rounds=0,
        callbacks=[("margins", MarginStatistics())],
        random_state=0,
    ).fit(X, y)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_trains(name, separable):
    X, y = separable
    after_one = _train_with_loss(name, X, y, max_epochs=1)
    net = _train_with_loss(name, X, y, max_epochs=10)
    history = net.history
    # Same seed: the one-epoch net is the trained net after its first epoch.
    assert_allclose(after_one.history[0, "train_loss"], history[0, "train_loss"])

    # The loss's own objective falls clearly (some losses go below 0, so the
    # drop is measured against the first epoch, not against 0).
    objective = np.array(history[:, "train_loss"])
    assert np.all(np.isfinite(objective))
    assert objective[0] - objective[-1] > 0.5 * abs(objective[0])

    # The mean signed logit margin f_y - max_{i != y} f_i at least doubles and
    # grows by more than one logit.
    before = after_one.margins(X, y).mean()
    after = net.margins(X, y).mean()
    assert after > max(2 * before, before + 1.0)

    # Lipschitz-normalised worst-case margin (a lower bound of the l2 distance
    # to the boundary): some sample is on the wrong side after one epoch, none
    # after training.
    assert history[0, "train_min_margin"] < 0 < history[-1, "train_min_margin"]
    if name in ("lmt", "lc_lmt"):
        # The share of samples meeting the margin sqrt(2) L eps of LMT.
        share = history[:, "required_margin_share"]
        assert share[0] < 0.2
        assert share[-1] > 0.6


def test_skorch_validation_split_and_its_accuracy_work(digits):
    from skorch.dataset import ValidSplit

    X, _, y, _ = digits
    names = np.array(list("abcdefghij"))[y]
    net = MarginNetClassifier(
        train_split=ValidSplit(5, stratified=True), max_epochs=3, random_state=0
    ).fit(X, names)
    assert net.history[-1, "valid_acc"] > 0.5  # labels compared consistently
    assert set(net.predict(X[:5])) <= set(names)


def test_random_state_gives_identical_results(digits):
    X, X_test, y, _ = digits
    a = MarginNetClassifier(max_epochs=2, random_state=3).fit(X, y)
    b = MarginNetClassifier(max_epochs=2, random_state=3).fit(X, y)
    assert_allclose(a.predict_proba(X_test), b.predict_proba(X_test))
    assert_allclose(a.certify(X_test), b.certify(X_test))


def test_clone_and_pickle_round_trip(fitted_net, digits):
    _, X_test, _, _ = digits
    params = clone(fitted_net).get_params()
    assert params["module__hidden_sizes"] == (64,)
    restored = pickle.loads(pickle.dumps(fitted_net))
    assert_allclose(restored.predict_proba(X_test), fitted_net.predict_proba(X_test))
    assert_allclose(restored.certify(X_test), fitted_net.certify(X_test))


def test_pipeline_and_grid_search_in_parallel(digits):
    X, _, y, _ = digits
    pipe = Pipeline(
        [
            ("scale", MinMaxScaler()),
            (
                "net",
                MarginNetClassifier(
                    criterion="lc_lmt",
                    max_epochs=2,
                    module__hidden_sizes=(32,),
                    random_state=0,
                ),
            ),
        ]
    )
    search = GridSearchCV(pipe, {"net__criterion__eps": [0.05, 0.2]}, cv=2, n_jobs=2)
    search.fit(X[:300], y[:300])
    assert search.best_params_["net__criterion__eps"] in (0.05, 0.2)


def test_grid_search_over_every_loss_hyperparameter(digits):
    X, _, y, _ = digits
    net = MarginNetClassifier(
        module__hidden_sizes=(16,), max_epochs=1, random_state=0, max_reweight_rounds=0
    )
    grid = [
        {"criterion": ["amr"], "criterion__lam": [0.1, 0.2], "criterion__tau": [1.0]},
        {"criterion": ["margin_hinge"], "criterion__mu": [0.5, 1.0]},
        {"criterion": ["cross_lipschitz"], "criterion__lam": [1e-3]},
    ]
    search = GridSearchCV(net, grid, cv=2, n_jobs=2).fit(X[:200], y[:200])
    tried = search.cv_results_["params"]
    assert len(tried) == 5
    assert {"criterion": "margin_hinge", "criterion__mu": 1.0} in tried
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))


# ---------------------------------------------------------------- certificates
def _attack_distances(net, X):
    """Box attack (a wide box, so it does not bind) refined by SLSQP."""
    X_adv, success = box_constrained_attack(net, X, p=2, bounds=(-10.0, 11.0))
    assert success.all()
    dists = []
    for x, a in zip(X, X_adv, strict=True):
        c = net.predict(x[None])[0]
        ci = np.searchsorted(net.classes_, c)
        j = np.searchsorted(net.classes_, net.predict(a[None])[0])

        def g(z, ci=ci, j=j):
            s = net.decision_function(z[None])[0]
            return s[j] - s[ci] - 1e-7

        res = minimize(
            lambda z, x=x: np.sum((z - x) ** 2),
            a,
            method="SLSQP",
            constraints=[{"type": "ineq", "fun": g}],
            options={"maxiter": 100},
        )
        z = res.x if net.predict(res.x[None])[0] != c else a
        dists.append(np.linalg.norm(z - x))
    return np.array(dists)


def test_certificates_never_exceed_attack_distances(fitted_net, digits):
    _, X_test, _, _ = digits
    X = X_test[:15]
    attack = _attack_distances(fitted_net, X)
    radii = {m: fitted_net.certify(X, method=m) for m in METHODS}
    for m, r in radii.items():
        assert np.all(r <= attack), m
    for m in ("global_pairwise", "global_l2", "global_linf", "local_quadratic"):
        assert np.all(radii["auto"] >= radii[m])


def test_local_certificate_beats_the_global_one(fitted_net, digits):
    # Hein & Andriushchenko, Table 1: global / local = 0.21-0.69 on MNIST.
    _, X_test, _, _ = digits
    local = fitted_net.certify(X_test, method="local_quadratic")
    pairwise = fitted_net.certify(X_test, method="global_pairwise")
    assert np.mean(pairwise / local) < 0.9
    assert np.mean(local > pairwise) > 0.9


def test_linear_network_pairwise_certificate_is_the_exact_distance(digits):
    X, X_test, y, _ = digits
    net = MarginNetClassifier(
        module__hidden_sizes=(), max_epochs=3, random_state=0
    ).fit(X, y)
    layer = net.module_[-1]
    W = layer.weight.detach().double().numpy()
    b = layer.bias.detach().double().numpy()
    scores = X_test @ W.T + b
    c = scores.argmax(1)
    exact = []
    for i, _x in enumerate(X_test):
        d = [
            (scores[i, c[i]] - scores[i, j]) / np.linalg.norm(W[c[i]] - W[j])
            for j in range(10)
            if j != c[i]
        ]
        exact.append(min(d))
    assert_allclose(net.certify(X_test, method="global_pairwise"), exact, rtol=1e-6)
    for m in ("global_l2", "global_linf"):
        assert np.all(net.certify(X_test, method=m) <= np.array(exact) * (1 + 1e-9))
    with pytest.raises(ValueError, match="one-hidden-layer network"):
        net.certify(X_test, method="local_quadratic")


@pytest.mark.parametrize("activation", ["tanh", "relu", "softplus"])
def test_certificates_hold_on_a_dense_grid_in_2d(activation):
    X, y = make_blobs(
        n_samples=150,
        centers=[[0.2, 0.2], [0.8, 0.3], [0.5, 0.8]],
        cluster_std=0.1,
        random_state=0,
    )
    net = MarginNetClassifier(
        module__hidden_sizes=(16,),
        module__activation=activation,
        max_epochs=60,
        lr=1e-2,
        random_state=0,
    ).fit(X, y)
    pts = np.random.default_rng(0).random((20, 2))
    t = np.linspace(0, 2 * np.pi, 360, endpoint=False)
    for m in METHODS:
        for x, r in zip(pts, net.certify(pts, method=m), strict=True):
            ring = np.linspace(0, r, 25)[:, None, None] * np.stack(
                [np.cos(t), np.sin(t)], -1
            )
            disc = x + ring.reshape(-1, 2)
            assert np.all(net.predict(disc) == net.predict(x[None])[0]), (m, x, r)


def test_lipschitz_constant_bounds_the_network(fitted_net, digits):
    _, X_test, _, _ = digits
    L = fitted_net.lipschitz_constant()
    a, b = X_test[:30], X_test[30:60]
    fa, fb = fitted_net.decision_function(a), fitted_net.decision_function(b)
    ratios = np.linalg.norm(fa - fb, axis=1) / np.linalg.norm(a - b, axis=1)
    assert L >= ratios.max()


def test_margins_and_input_jacobian(fitted_net, digits):
    _, X_test, _, y_test = digits
    scores = fitted_net.decision_function(X_test)
    top2 = np.sort(scores, axis=1)[:, -2:]
    assert_allclose(fitted_net.margins(X_test), top2[:, 1] - top2[:, 0])
    signed = fitted_net.margins(X_test, y_test)
    assert np.all((signed > 0) == (fitted_net.predict(X_test) == y_test))
    J = fitted_net.input_jacobian(X_test[:2])
    h = 1e-6
    e = np.zeros(64)
    e[5] = h
    fd = (
        fitted_net.decision_function(X_test[:2] + e)
        - fitted_net.decision_function(X_test[:2] - e)
    ) / (2 * h)
    assert_allclose(J[:, :, 5], fd, atol=1e-5)


# ---------------------------------------------------------------- reweighting
def test_kesidis_reweighting_rounds_multiply_violated_weights(digits):
    X, _, y, _ = digits
    net = MarginNetClassifier(
        criterion="margin_hinge",
        criterion__mu=5.0,
        max_epochs=6,  # the whole budget: 2 epochs per round
        reweight_epochs=2,
        reweight_delta=3.0,
        max_reweight_rounds=2,
        random_state=0,
    ).fit(X[:200], y[:200])
    rounds = [h.get("reweight_round") for h in net.history if "reweight_round" in h]
    violations = [h["margin_violations"] for h in net.history if "reweight_round" in h]
    assert rounds[0] == 0 and len(rounds) >= 1
    assert violations[0] > 0  # a margin of 5 logits is not met after 2 epochs
    w = net.sample_weight_
    assert set(np.unique(w)) <= {1.0, 3.0, 9.0}
    assert np.any(w > 1)
    assert len(net.history) == 2 * len(rounds)


def test_reweighting_rounds_share_the_max_epochs_budget(digits):
    X, _, y, _ = digits
    kesidis = {"criterion": "margin_hinge", "criterion__mu": 50.0}  # never met
    net = MarginNetClassifier(
        max_epochs=12, max_reweight_rounds=3, random_state=0, **kesidis
    ).fit(X[:100], y[:100])
    # "auto": 12 // 6 = 2 epochs per re-weighting round, 12 - 3 * 2 = 6 first.
    ends = [i for i, h in enumerate(net.history) if "reweight_round" in h]
    assert len(net.history) == 12
    assert ends == [5, 7, 9, 11]
    with pytest.raises(ValueError, match="max_epochs=6 leaves no epoch"):
        MarginNetClassifier(
            max_epochs=6, max_reweight_rounds=3, reweight_epochs=2, **kesidis
        ).fit(X[:100], y[:100])
    with pytest.raises(InvalidParameterError, match="reweight_epochs"):
        MarginNetClassifier(reweight_epochs=0, **kesidis).fit(X[:100], y[:100])
    # Without a mu, max_epochs is plain skorch's.
    plain = MarginNetClassifier(max_epochs=5, reweight_epochs=4, random_state=0)
    assert len(plain.fit(X[:100], y[:100]).history) == 5


def test_reweighting_is_off_for_losses_without_mu(digits):
    X, _, y, _ = digits
    net = MarginNetClassifier(max_epochs=1, random_state=0).fit(X[:100], y[:100])
    assert not any("reweight_round" in h for h in net.history)
    assert np.all(net.sample_weight_ == 1)


def test_reweighting_multiplies_the_users_weights(digits):
    X, _, y, _ = digits
    user = np.where(np.arange(200) % 2, 2.0, 0.5)
    net = MarginNetClassifier(
        criterion="margin_hinge",
        criterion__mu=5.0,
        max_epochs=2,
        reweight_delta=3.0,
        max_reweight_rounds=2,
        random_state=0,
    ).fit(X[:200], y[:200], sample_weight=user)
    ratio = net.sample_weight_ / user
    assert set(np.unique(np.round(ratio, 6))) <= {1.0, 3.0, 9.0}
    assert np.any(ratio > 1)


# ------------------------------------------------------------ sample weights
def _weighted_and_repeated(**params):
    """Nets fitted with integer weights (some 0) and on repeated samples."""
    rng = np.random.RandomState(0)
    X, y = rng.rand(15, 30), rng.randint(0, 3, 15)
    weights = rng.randint(0, 4, 15)
    weights[:3] = [0, 2, 3]
    order = rng.permutation(15)
    params = {"max_epochs": 5, "lr": 1e-2, "random_state": 0, **params}
    repeated = MarginNetClassifier(**params).fit(
        X.repeat(weights, axis=0), y.repeat(weights)
    )
    weighted = MarginNetClassifier(**params).fit(
        X[order], y[order], sample_weight=weights[order]
    )
    return X, weighted, repeated


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_integer_weights_equal_repeated_samples_in_float64(name):
    # One batch, float64 training: weighting by k and repeating k times give
    # the same loss up to summation order, so the same network. The Kesidis
    # losses also re-weight (a sample of weight 0 must not keep rounds going).
    params = {"criterion": name, "dtype": np.float64}
    if name in ("margin_hinge", "margin_softmax", "margin_ratio", "normalized_margin"):
        params["criterion__mu"] = 3.0
    X, weighted, repeated = _weighted_and_repeated(**params)
    assert weighted.module_[1].weight.dtype == torch.float64
    assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-9)
    assert_allclose(weighted.certify(X), repeated.certify(X), rtol=1e-9, atol=1e-12)
    rounds = [h for h in repeated.history if "reweight_round" in h]
    assert len(rounds) == len([h for h in weighted.history if "reweight_round" in h])


def test_integer_weights_equal_repeated_samples_up_to_float32_rounding():
    X, weighted, repeated = _weighted_and_repeated()
    assert weighted.module_[1].weight.dtype == torch.float32
    assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), atol=1e-5)
    assert_array_equal(weighted.predict(X), repeated.predict(X))


def test_float64_training_starts_from_the_float32_initialisation(digits):
    X, _, y, _ = digits
    nets = [
        MarginNetClassifier(max_epochs=1, lr=1e-9, random_state=0, dtype=dtype)
        for dtype in (np.float32, "float64")
    ]
    for net in nets:
        net.fit(X[:50], y[:50])
    w32, w64 = (net.module_[1].weight.detach() for net in nets)
    assert w64.dtype == torch.float64
    assert_allclose(w64.numpy(), w32.double().numpy(), atol=1e-6)
    assert nets[1].predict_proba(X[:5]).dtype == np.float64


# ---------------------------------------------------------------- bad input
def test_bad_input_gets_clear_errors(fitted_net, digits):
    X, _, y, _ = digits
    with pytest.raises(ValueError, match="at least 2 classes"):
        MarginNetClassifier(max_epochs=1).fit(X[:10], np.zeros(10))
    bad = X[:20].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MarginNetClassifier(max_epochs=1).fit(bad, y[:20])
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted_net.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="method must be one of"):
        fitted_net.certify(X[:2], method="exact")
    with pytest.raises(ValueError, match="Unknown criterion|unknown|valid"):
        MarginNetClassifier(criterion="hinge", max_epochs=1).fit(X[:20], y[:20])


def test_default_cnn_for_image_inputs():
    rng = np.random.default_rng(0)
    X = rng.random((60, 1, 8, 8)).astype(np.float32)
    y = (X[:, 0, :4].mean(axis=(1, 2)) > X[:, 0, 4:].mean(axis=(1, 2))).astype(int)
    net = MarginNetClassifier(max_epochs=2, random_state=0).fit(X, y)
    assert any(isinstance(m, torch.nn.Conv2d) for m in net.module_.modules())
    radii = net.certify(X[:5])
    assert radii.shape == (5,) and np.all(radii >= 0)


def test_certify_in_batches_with_a_progress_bar(fitted_net, digits, capsys):
    X = digits[1][:50]
    expected = fitted_net.certify(X)
    capsys.readouterr()
    net = pickle.loads(pickle.dumps(fitted_net))
    net.set_params(verbose=1, batch_size=16)
    assert_allclose(net.certify(X), expected, rtol=1e-12)  # 4 batches
    err = capsys.readouterr().err
    assert "certify" in err and "50/50" in err


@pytest.mark.parametrize(
    "former, name",
    [
        ("pairwise", "global_pairwise"),
        ("tsuzuku", "global_l2"),
        ("kesidis", "global_linf"),
        ("local", "local_quadratic"),
    ],
)
def test_former_method_names_warn_and_give_the_same_radii(
    former, name, fitted_net, digits
):
    _, X_test, _, _ = digits
    expected = fitted_net.certify(X_test[:5], method=name)
    with pytest.warns(FutureWarning, match=f"method='{former}' is now called '{name}'"):
        radii = fitted_net.certify(X_test[:5], method=former)
    assert_allclose(radii, expected)
    with pytest.raises(ValueError, match="method must be one of 'auto', 'global_p"):
        fitted_net.certify(X_test[:5], method="second_order")


class _EpochWatch(Callback):
    """Records every epoch that starts."""

    def __init__(self, started):
        self.started = started

    def on_epoch_begin(self, net, **kwargs):
        self.started.append(len(net.history))


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"criterion": "lmt", "criterion__eps": -1.0}, ValueError, "'eps' parameter"),
        ({"criterion": "margin_hinge", "criterion__mu": -1}, ValueError, "'mu' param"),
        (
            {"criterion": "lc_lmt", "criterion__mu": 1.0},
            ValueError,
            r"criterion__mu is not a parameter of LCLMTLoss \(criterion='lc_lmt'\); "
            "its parameters are: criterion__eps, criterion__clip.",
        ),
        (
            {"criterion": "lmt", "criterion__esp": 1.0},
            ValueError,
            "Did you mean criterion__eps?",
        ),
        ({"reweight_delta": 1.0}, ValueError, r"'reweight_delta' parameter"),
        ({"max_reweight_rounds": -1}, ValueError, "'max_reweight_rounds' parameter"),
        ({"module__hidden_sizes": (0,)}, ValueError, "hidden_sizes must be a seq"),
    ],
)
def test_bad_parameters_are_refused_before_any_training(params, error, match, digits):
    X, _, y, _ = digits
    net = MarginNetClassifier(max_epochs=1, random_state=0, **params)
    trained = []
    net.set_params(callbacks=[("watch", _EpochWatch(trained))])
    with pytest.raises(error, match=match):
        net.fit(X[:50], y[:50])
    assert trained == []  # the error came before the first epoch


def test_representation_is_what_the_last_layer_reads(fitted_net, digits):
    # The last Linear applied to the penultimate activations gives the logits.
    _, X_test, _, _ = digits
    Z = fitted_net.representation(X_test)
    last = fitted_net.module_[-1]
    W = last.weight.detach().double().numpy()
    b = last.bias.detach().double().numpy()
    assert Z.shape == (len(X_test), 64)
    assert np.all(Z >= 0)  # ReLU outputs
    assert_allclose(Z @ W.T + b, fitted_net.decision_function(X_test), atol=1e-9)
    assert_array_equal(fitted_net.representation(X_test, layer=0), Z)


def test_representation_of_every_layer_of_a_cnn(digits):
    from sk_margin.nets import SmallCNN

    X, X_test, y, _ = digits
    net = MarginNetClassifier(
        module=SmallCNN, module__input_shape=(1, 8, 8), max_epochs=1, random_state=0
    ).fit(X, y)
    shapes = [net.representation(X_test[:3], layer=k).shape for k in (0, 1, 2)]
    # Two convolutions (16 and 32 channels, 8x8 then 4x4), then 128 units.
    assert shapes == [(3, 16 * 8 * 8), (3, 32 * 4 * 4), (3, 128)]
    assert_array_equal(net.representation(X_test[:3], layer=-3),
                       net.representation(X_test[:3], layer=0))  # fmt: skip


def test_representation_errors_name_what_is_wrong(fitted_net, digits):
    _, X_test, _, _ = digits
    with pytest.raises(ValueError, match=r"layer=1 is out of range.*\[-1, 0\]"):
        fitted_net.representation(X_test, layer=1)
    with pytest.raises(TypeError, match="layer must be an int"):
        fitted_net.representation(X_test, layer="last")
    X, _, y, _ = digits
    linear = MarginNetClassifier(
        module=torch.nn.Linear, module__in_features=64, module__out_features=10,
        max_epochs=1, random_state=0,
    ).fit(X, y)  # fmt: skip
    with pytest.raises(ValueError, match="Linear has no hidden representation"):
        linear.representation(X_test)
    with pytest.raises(ValueError, match="expecting 64 features"):
        fitted_net.representation(X_test[:, :10])


def test_predict_log_proba_keeps_confident_predictions_apart(digits):
    X, X_test, y, _ = digits
    net = MarginNetClassifier(
        module__hidden_sizes=(32,), max_epochs=3, random_state=0
    ).fit(X, y)
    with torch.no_grad():  # margins of hundreds of logits: float32 saturates
        net.module_[-1].weight.mul_(200.0)
        net.module_[-1].bias.mul_(200.0)
    proba = net.predict_proba(X_test)
    log_proba = net.predict_log_proba(X_test)
    assert log_proba.dtype == proba.dtype == np.float64
    assert np.sum(proba.max(axis=1) == 1.0) > 3  # ties at exactly 1
    top = log_proba.max(axis=1)
    assert len(np.unique(top)) > 0.9 * len(top)
    logits = net.decision_function(X_test)
    expected = logits - np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1,
               keepdims=True)) - logits.max(1, keepdims=True)  # fmt: skip
    assert_allclose(log_proba, expected, rtol=1e-12, atol=1e-12)
    assert_array_equal(log_proba.argmax(1), np.searchsorted(net.classes_,
                       net.predict(X_test)))  # fmt: skip
