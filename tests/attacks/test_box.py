import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import linprog, minimize

from sk_margin.attacks import box_constrained_attack, minimal_box_perturbation

NORMS = [1, 2, np.inf]


# --------------------------------------------------------------------------
# Reference solvers of problem (8) with scipy.optimize
# --------------------------------------------------------------------------


def _reference(v, c, lower, upper, p):
    """Optimal value of min ||delta||_p, <v, delta> <= -c, lower <= delta <= upper."""
    d = v.size
    eye = np.eye(d)
    box = list(zip(lower, upper, strict=True))
    if p == 2:
        x0 = np.clip(-c * v / (v @ v), lower, upper)
        res = minimize(
            lambda z: z @ z,
            x0,
            jac=lambda z: 2 * z,
            method="SLSQP",
            bounds=box,
            constraints=[
                {"type": "ineq", "fun": lambda z: -c - v @ z, "jac": lambda z: -v}
            ],
            options={"ftol": 1e-14, "maxiter": 500},
        )
        assert res.success
        return np.sqrt(res.fun)
    if p == 1:  # variables (delta, s), |delta_i| <= s_i
        cost = np.r_[np.zeros(d), np.ones(d)]
        A = np.block([[eye, -eye], [-eye, -eye], [v[None, :], np.zeros((1, d))]])
        bounds = box + [(0, None)] * d
    else:  # variables (delta, t), |delta_i| <= t
        cost = np.r_[np.zeros(d), 1.0]
        ones = np.ones((d, 1))
        A = np.block([[eye, -ones], [-eye, -ones], [v[None, :], np.zeros((1, 1))]])
        bounds = box + [(0, None)]
    b = np.r_[np.zeros(2 * d), -c]
    res = linprog(cost, A_ub=A, b_ub=b, bounds=bounds, method="highs")
    return res.fun if res.status == 0 else np.inf


def _random_problem(seed, binding):
    rng = np.random.default_rng(seed)
    d = rng.integers(5, 21)
    x = rng.uniform(0, 1, d)
    v = rng.normal(size=d)
    v[rng.uniform(size=d) < 0.15] = 0.0  # some irrelevant coordinates
    lower, upper = -x, 1 - x
    room = np.where(v > 0, x, np.where(v < 0, 1 - x, 0.0))
    top = np.abs(v) @ room  # largest decrease the box allows
    c = rng.uniform(0.4, 0.95) * top if binding else 0.02 * top
    return v, c, lower, upper


@pytest.mark.parametrize("p", NORMS)
@pytest.mark.parametrize("binding", [True, False])
@pytest.mark.parametrize("seed", range(8))
def test_solver_matches_scipy(p, binding, seed):
    v, c, lower, upper = _random_problem(seed, binding)
    delta, norm = minimal_box_perturbation(v, c, lower, upper, p=p)
    assert np.all(delta >= lower - 1e-12)
    assert np.all(delta <= upper + 1e-12)
    assert v @ delta <= -c + 1e-9 * (1 + c)
    assert_allclose(norm, np.linalg.norm(delta, ord=p))
    assert_allclose(norm, _reference(v, c, lower, upper, p), rtol=1e-6)


@pytest.mark.parametrize("p", NORMS)
def test_solver_batched_equals_rowwise(p):
    rng = np.random.default_rng(0)
    v = rng.normal(size=(3, 4, 7))
    x = rng.uniform(size=(3, 1, 7))
    c = rng.uniform(0.0, 1.5, size=(3, 4))
    delta, norm = minimal_box_perturbation(v, c, -x, 1 - x, p=p)
    assert delta.shape == v.shape
    assert norm.shape == c.shape
    for i in range(3):
        for j in range(4):
            dij, nij = minimal_box_perturbation(
                v[i, j], c[i, j], -x[i, 0], 1 - x[i, 0], p=p
            )
            assert_allclose(delta[i, j], dij, equal_nan=True)
            assert_allclose(norm[i, j], nij)


@pytest.mark.parametrize("p", [*NORMS, "inf"])
def test_solver_infeasible_and_trivial(p):
    v, c, lower, upper = _random_problem(0, binding=True)
    room = np.where(v > 0, -lower, np.where(v < 0, upper, 0.0))
    c_bad = 1.01 * np.abs(v) @ room
    delta, norm = minimal_box_perturbation(v, c_bad, lower, upper, p=p)
    assert norm == np.inf
    assert np.all(np.isnan(delta))
    assert _reference(v, c_bad, lower, upper, 1) == np.inf
    # v = 0 cannot decrease anything; c <= 0 needs no change
    assert minimal_box_perturbation(np.zeros(5), 1.0, -1.0, 1.0, p=p)[1] == np.inf
    delta, norm = minimal_box_perturbation(v, -0.5, lower, upper, p=p)
    assert_array_equal(delta, 0.0)
    assert norm == 0.0


def test_solver_errors():
    with pytest.raises(ValueError, match="p must be one of"):
        minimal_box_perturbation([1.0], 1.0, -1.0, 1.0, p=3)
    with pytest.raises(ValueError, match="must contain delta = 0"):
        minimal_box_perturbation([1.0, 1.0], 1.0, 0.5, 1.0)
    with pytest.raises(ValueError, match="must broadcast"):
        minimal_box_perturbation([1.0, 1.0], [1.0, 2.0], -1.0, 1.0)


# --------------------------------------------------------------------------
# Duck-typed models
# --------------------------------------------------------------------------


class LinearModel:
    """f(x) = W x + b; binary (1-D scores) when W has a single row."""

    def __init__(self, W, b, classes=None):
        self.W, self.b = np.atleast_2d(W), np.atleast_1d(b)
        if classes is not None:
            self.classes_ = np.asarray(classes)

    def decision_function(self, X):
        s = X @ self.W.T + self.b
        return s[:, 0] if self.W.shape[0] == 1 else s

    def input_jacobian(self, X):
        if self.W.shape[0] == 1:
            return np.tile(self.W[0], (len(X), 1))
        return np.broadcast_to(self.W, (len(X), *self.W.shape)).copy()


class TanhNet:
    """Two-layer network f(x) = A tanh(U x + a) + b, with its analytic Jacobian."""

    def __init__(self, n_features, n_classes, n_hidden=16, seed=0):
        rng = np.random.default_rng(seed)
        self.U = rng.normal(scale=3.0, size=(n_hidden, n_features))
        self.a = rng.normal(size=n_hidden) - self.U.sum(axis=1) / 2
        self.A = rng.normal(size=(n_classes, n_hidden))
        self.b = rng.normal(scale=0.1, size=n_classes)

    def decision_function(self, X):
        return np.tanh(X @ self.U.T + self.a) @ self.A.T + self.b

    def input_jacobian(self, X):
        slope = 1 - np.tanh(X @ self.U.T + self.a) ** 2  # (n, h)
        return np.einsum("kh,nh,hd->nkd", self.A, slope, self.U)


def _linear_setting(seed=0, n=30, d=6, K=4):
    rng = np.random.default_rng(seed)
    model = LinearModel(rng.normal(size=(K, d)), rng.normal(scale=0.3, size=K))
    return model, rng.uniform(0, 1, (n, d))


@pytest.mark.parametrize("p", NORMS)
def test_linear_model_exact_distance_wide_box(p):
    model, X = _linear_setting()
    X_adv, success = box_constrained_attack(
        model, X, p=p, bounds=(-50.0, 50.0), n_bisect=40
    )
    assert success.all()
    scores = model.decision_function(X)
    pred = scores.argmax(axis=1)
    assert np.all(model.decision_function(X_adv).argmax(axis=1) != pred)
    # distance to the boundary {f_c = f_j} in l_p is (f_c - f_j) / ||w_c - w_j||_q
    q = {1: np.inf, 2: 2, np.inf: 1}[p]
    W = model.W
    rows = np.arange(len(X))
    gaps = scores[rows, pred][:, None] - scores
    dual = np.linalg.norm(W[pred][:, None, :] - W[None, :, :], ord=q, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(gaps > 0, gaps / dual, np.inf)
    dist[rows, pred] = np.inf
    expected = dist.min(axis=1)
    assert_allclose(np.linalg.norm(X_adv - X, ord=p, axis=1), expected, rtol=1e-6)


@pytest.mark.parametrize("p", NORMS)
def test_linear_model_binding_box_matches_solver(p):
    model, X = _linear_setting(seed=1)
    X_adv, success = box_constrained_attack(model, X, p=p, n_bisect=40)
    assert np.all((X_adv >= 0) & (X_adv <= 1))
    scores, W = model.decision_function(X), model.W
    for i in range(len(X)):
        c = scores[i].argmax()
        others = [j for j in range(W.shape[0]) if j != c]
        _, norms = minimal_box_perturbation(
            W[c] - W[others], scores[i, c] - scores[i, others], -X[i], 1 - X[i], p=p
        )
        if np.isfinite(norms.min()):
            assert success[i]
            assert_allclose(
                np.linalg.norm(X_adv[i] - X[i], ord=p), norms.min(), rtol=1e-6
            )
        else:
            assert not success[i]
            assert_array_equal(X_adv[i], X[i])


@pytest.mark.parametrize("p", [*NORMS, "inf"])
def test_nonlinear_model_adversarial_points_change_decision(p):
    model = TanhNet(n_features=5, n_classes=4)
    X = np.random.default_rng(1).uniform(0, 1, (40, 5))
    X_adv, success = box_constrained_attack(model, X, p=p)
    assert X_adv.dtype == np.float64 and X_adv.shape == X.shape
    assert success.mean() > 0.5
    pred = model.decision_function(X).argmax(axis=1)
    adv_pred = model.decision_function(X_adv).argmax(axis=1)
    assert np.all(adv_pred[success] != pred[success])
    assert np.all((X_adv >= 0) & (X_adv <= 1))
    assert_array_equal(X_adv[~success], X[~success])
    # the bisection leaves the points close to the boundary: halfway back is not
    # adversarial for most of them
    half = (X + X_adv)[success] / 2
    assert np.mean(model.decision_function(half).argmax(axis=1) == pred[success]) > 0.9


def test_per_feature_bounds_and_callable_pair():
    model = TanhNet(n_features=4, n_classes=3, seed=2)
    X = np.random.default_rng(2).uniform(0.2, 0.6, (20, 4))
    lo, hi = np.full(4, 0.1), np.array([0.7, 0.8, 0.9, 1.0])
    pair = (model.decision_function, model.input_jacobian)
    X_adv, success = box_constrained_attack(pair, X, bounds=(lo, hi))
    X_adv2, success2 = box_constrained_attack(model, X, bounds=(lo, hi))
    assert_array_equal(X_adv, X_adv2)
    assert_array_equal(success, success2)
    assert success.any()
    assert np.all((X_adv >= lo) & (X_adv <= hi))


def test_misclassified_points_get_zero_perturbation():
    model, X = _linear_setting(n=20)
    pred = model.decision_function(X).argmax(axis=1)
    y = pred.copy()
    y[::2] = (pred[::2] + 1) % 4  # every other point is misclassified
    X_adv, success = box_constrained_attack(
        (model.decision_function, model.input_jacobian), X, y
    )
    assert success.all()
    assert_array_equal(X_adv[::2], X[::2])
    assert np.all(np.linalg.norm(X_adv[1::2] - X[1::2], axis=1) > 0)


def test_binary_model_with_string_classes():
    model = LinearModel([[1.0, -1.0]], [-0.1], classes=["neg", "pos"])
    X = np.array([[0.2, 0.6], [0.9, 0.1], [0.5, 0.5]])
    X_adv, success = box_constrained_attack(model, X, n_bisect=40)
    assert success.all()
    assert_allclose(X_adv[0], [0.45, 0.35], atol=1e-9)
    assert np.all(
        np.sign(model.decision_function(X_adv)) != np.sign(model.decision_function(X))
    )
    # with labels: the second point ("neg" truth, predicted "pos") is left as is
    X_adv, success = box_constrained_attack(model, X, ["neg", "neg", "neg"])
    assert success.all()
    assert_array_equal(X_adv[1], X[1])
    assert np.linalg.norm(X_adv[0] - X[0]) > 0


def test_unreachable_class_fails():
    model = LinearModel([[1.0, 1.0]], [-5.0])  # class 1 lies outside [0, 1]^2
    X = np.random.default_rng(0).uniform(0, 1, (5, 2))
    for p in NORMS:
        X_adv, success = box_constrained_attack(model, X, p=p)
        assert not success.any()
        assert_array_equal(X_adv, X)


def test_attack_errors():
    model, X = _linear_setting(n=5)
    with pytest.raises(ValueError, match="p must be one of 1, 2, np.inf or 'inf'"):
        box_constrained_attack(model, X, p=3)
    with pytest.raises(ValueError, match="p must be one of"):
        box_constrained_attack(model, X, p="two")
    with pytest.raises(ValueError, match="lo < hi"):
        box_constrained_attack(model, X, bounds=(1.0, 0.0))
    with pytest.raises(ValueError, match="bounds must be a pair"):
        box_constrained_attack(model, X, bounds=1.0)
    X_out = X.copy()
    X_out[3, 1] = 1.5
    with pytest.raises(
        ValueError, match=r"1 row\(s\) lie outside, e.g. rows \[3\], by up to 0.5"
    ):
        box_constrained_attack(model, X_out)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        box_constrained_attack(model, X_nan)

    class NoJacobian:
        def decision_function(self, X):
            return X

    with pytest.raises(TypeError, match="has no method input_jacobian"):
        box_constrained_attack(NoJacobian(), X)
    with pytest.raises(TypeError, match="pair of callables"):
        box_constrained_attack((model.decision_function, None), X)
    with pytest.raises(ValueError, match="labels not in estimator.classes_"):
        box_constrained_attack(
            LinearModel([[1.0] * 6], [0.0], ["a", "b"]), X, ["a"] * 4 + ["z"]
        )
    with pytest.raises(ValueError, match="column indices"):
        box_constrained_attack(model, X, [0, 1, 2, 3, 4])
    with pytest.raises(ValueError, match="input_jacobian must return"):
        box_constrained_attack((model.decision_function, lambda Z: Z), X)
    with pytest.raises(ValueError, match="max_iter"):
        box_constrained_attack(model, X, max_iter=0)
