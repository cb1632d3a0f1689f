import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from scipy.optimize import check_grad, minimize
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler

from sk_margin import MarginKernelLogReg, box_constrained_attack
from sk_margin.kernel import cross_lipschitz_gram
from sk_margin.kernel._objective import logreg_objective

METHODS = ["local_quadratic", "local_triangle", "second_order", "third_order", "auto"]


@pytest.fixture(scope="module")
def small_digits(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:400], X_test[:40], y_train[:400], y_test[:40]


@pytest.fixture(scope="module")
def fitted_digits(small_digits):
    X_train, _, y_train, _ = small_digits
    return MarginKernelLogReg(lam=1e-2, n_centers=150, random_state=0).fit(
        X_train, y_train
    )


@pytest.fixture(scope="module")
def fitted_blobs(blobs_2d):
    X, y = blobs_2d
    return MarginKernelLogReg(lam=1e-2, gamma_scale=0.5, random_state=0).fit(X, y)


def _explicit_gradients(X, centers, alpha, gamma):
    """grad f_l(x_i) for every i and l, summing kernel gradients one by one."""
    grads = np.zeros((len(X), len(alpha), X.shape[1]))
    for i, x in enumerate(X):
        for r, c in enumerate(centers):
            kgrad = -2 * gamma * np.exp(-gamma * np.sum((x - c) ** 2)) * (x - c)
            grads[i] += alpha[:, r, None] * kgrad[None, :]
    return grads


# ---------------------------------------------------------------- objective
@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("with_penalty", [False, True])
def test_objective_gradient_passes_check_grad(center, with_penalty):
    rng = np.random.default_rng(0)
    Phi, y = rng.random((30, 6)), rng.integers(0, 3, 30)
    penalty = rng.random(6) if with_penalty else None
    theta = rng.normal(size=3 * 7)

    def f(t):
        return logreg_objective(t, Phi, y, 3, penalty, center)[0]

    def g(t):
        return logreg_objective(t, Phi, y, 3, penalty, center)[1]

    assert check_grad(f, g, theta) < 1e-6 * max(1.0, np.linalg.norm(g(theta)))


@pytest.mark.parametrize("block_entries", [None, 7 * 4])
def test_cross_lipschitz_gram_matches_explicit_gradients(block_entries, monkeypatch):
    if block_entries is not None:  # blocks of 4 rows: the sum over blocks
        import sk_margin.kernel._expansion

        monkeypatch.setattr(
            sk_margin.kernel._expansion, "_GRAM_BLOCK_ENTRIES", block_entries
        )
    rng = np.random.default_rng(1)
    X, C = rng.random((25, 3)), rng.random((7, 3))
    gamma = 2.0
    alpha = rng.normal(size=(4, 7))
    Q = cross_lipschitz_gram(X, C, rbf_kernel(X, C, gamma=gamma), gamma)
    grads = _explicit_gradients(X, C, alpha, gamma)
    assert_allclose(
        np.einsum("lr,rs,ls->l", alpha, Q, alpha), np.sum(grads**2, axis=(0, 2))
    )


def test_features_are_computed_in_place_block_by_block(monkeypatch):
    import sk_margin.kernel._estimator as estimator

    rng = np.random.default_rng(0)
    K, W = rng.random((23, 9)), rng.normal(size=(9, 5))
    expected = K @ W
    monkeypatch.setattr(estimator, "_FIT_BLOCK_ENTRIES", 9 * 4)  # 4-row blocks
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 1e-6)):
        buffer = K.copy()
        Phi = estimator._transform_in_place(buffer, W, dtype=dtype)
        assert np.shares_memory(Phi, buffer) and Phi.flags.c_contiguous
        assert Phi.dtype == dtype
        assert_allclose(Phi, expected, rtol=rtol)


def test_fit_in_small_blocks_gives_the_same_model(small_digits, monkeypatch):
    import sk_margin.kernel._estimator as estimator
    import sk_margin.kernel._expansion as expansion

    X, _, y, _ = small_digits
    # float64 features, so that only the blocks differ between the two fits.
    monkeypatch.setattr(estimator, "_FEATURE_DTYPE", np.float64)
    est = MarginKernelLogReg(lam=1e-2, n_centers=60, random_state=0)
    whole = clone(est).fit(X, y)
    monkeypatch.setattr(estimator, "_FIT_BLOCK_ENTRIES", 60 * 7)
    monkeypatch.setattr(expansion, "_GRAM_BLOCK_ENTRIES", 60 * 11)
    blocks = clone(est).fit(X, y)
    # The same problem, solved to L-BFGS's tolerance from rounding-level
    # differences in its data.
    scale = np.abs(whole.dual_coef_).max()
    assert_allclose(blocks.dual_coef_, whole.dual_coef_, atol=1e-4 * scale)
    assert_array_equal(blocks.predict(X), whole.predict(X))


def _penalty_value(regularizer, lam, X, C, y, gamma, K, rng):
    """lam * Omega at random coefficients, from the objective; and alpha."""
    K_xc = rbf_kernel(X, C, gamma=gamma)
    est = MarginKernelLogReg(lam=lam, regularizer=regularizer)
    Phi, T, penalty, center = est._basis(
        X, C, K_xc, rbf_kernel(C, gamma=gamma), gamma, K
    )
    theta = rng.normal(size=K * (Phi.shape[1] + 1))
    reg = (
        logreg_objective(theta, Phi, y, K, penalty, center)[0]
        - logreg_objective(theta, Phi, y, K)[0]
    )
    return reg, theta[: K * Phi.shape[1]].reshape(K, -1) @ T.T


def test_cross_lipschitz_penalty_is_eq6_of_the_paper():
    # lam * Omega(f) with Omega = 1/(n K^2) sum_i sum_{l,m} ||grad f_l - grad f_m||^2
    rng = np.random.default_rng(2)
    n, K, lam, gamma = 20, 3, 0.7, 1.2
    X, C = rng.random((n, 3)), rng.random((6, 3))
    y = rng.integers(0, K, n)
    reg, alpha = _penalty_value("cross_lipschitz", lam, X, C, y, gamma, K, rng)
    grads = _explicit_gradients(X, C, alpha, gamma)
    diffs = grads[:, :, None, :] - grads[:, None, :, :]
    assert_allclose(reg, lam * np.sum(diffs**2) / (n * K**2))


def test_rkhs_penalty_is_the_squared_rkhs_norm():
    rng = np.random.default_rng(3)
    X, C = rng.random((20, 3)), rng.random((6, 3))
    y = rng.integers(0, 3, 20)
    reg, alpha = _penalty_value("rkhs", 0.2, X, C, y, 1.1, 3, rng)
    norm2 = np.einsum("lr,rs,ls->", alpha, rbf_kernel(C, gamma=1.1), alpha)
    assert_allclose(reg, 0.2 * norm2)


def test_rkhs_model_matches_nystroem_logistic_regression():
    X, y = load_digits(return_X_y=True)
    X, y = X[:120] / 16.0, y[:120]
    C_lr = 10.0
    lam = 1.0 / (2 * C_lr * len(X))  # mean CE + lam |f|^2  <=>  C sum CE + |w|^2/2
    ours = MarginKernelLogReg(
        lam=lam, regularizer="rkhs", gamma=0.05, tol=1e-10, max_iter=5000
    ).fit(X, y)
    ref = Pipeline(
        [
            ("ny", Nystroem(gamma=0.05, n_components=len(X), random_state=0)),
            ("lr", LogisticRegression(C=C_lr, tol=1e-10, max_iter=5000)),
        ]
    ).fit(X, y)
    X_new = load_digits().data[200:260] / 16.0
    assert_allclose(ours.predict_proba(X_new), ref.predict_proba(X_new), atol=1e-4)


# ---------------------------------------------------------------- fit basics
def test_fit_predict_accuracy_and_attributes(small_digits, fitted_digits):
    _, X_test, _, y_test = small_digits
    clf = fitted_digits
    assert clf.score(X_test, y_test) >= 0.9
    assert clf.centers_.shape == (150, 64)
    assert clf.dual_coef_.shape == (10, 150)
    assert clf.intercept_.shape == (10,)
    proba = clf.predict_proba(X_test)
    assert_allclose(proba.sum(axis=1), 1.0)
    assert_allclose(np.log(proba), clf.predict_log_proba(X_test), atol=1e-10)
    assert np.array_equal(
        clf.classes_[clf.decision_function(X_test).argmax(1)], clf.predict(X_test)
    )


def test_centres_are_training_rows_and_random_state_is_honoured(small_digits):
    X, _, y, _ = small_digits
    a = MarginKernelLogReg(n_centers=50, random_state=3).fit(X, y)
    b = MarginKernelLogReg(n_centers=50, random_state=3).fit(X, y)
    assert_allclose(a.dual_coef_, b.dual_coef_)
    rows = {tuple(r) for r in X}
    assert all(tuple(c) in rows for c in a.centers_)
    full = MarginKernelLogReg(n_centers=None).fit(X[:60], y[:60])
    assert_allclose(full.centers_, X[:60])


def test_knn_gamma_follows_its_definition(small_digits):
    X, _, y, _ = small_digits
    clf = MarginKernelLogReg(gamma_scale=2.0, n_neighbors=5, max_iter=5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    D = np.sqrt(((X[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    rho = np.sort(D, axis=1)[:, 5].mean()  # column 0 is the point itself
    assert_allclose(clf.gamma_, 2.0 / rho**2, rtol=1e-10)
    assert MarginKernelLogReg(gamma=0.3).fit(X[:60], y[:60]).gamma_ == 0.3


def test_input_jacobian_matches_finite_differences(fitted_digits, small_digits):
    _, X_test, _, _ = small_digits
    x = X_test[:2]
    J = fitted_digits.input_jacobian(x)
    h = 1e-6
    for k in range(0, 64, 7):
        e = np.zeros(64)
        e[k] = h
        fd = (
            fitted_digits.decision_function(x + e)
            - fitted_digits.decision_function(x - e)
        ) / (2 * h)
        assert_allclose(J[:, :, k], fd, atol=1e-6)


def test_margins_follow_the_scores(fitted_digits, small_digits):
    _, X_test, _, y_test = small_digits
    clf = fitted_digits
    scores = clf.decision_function(X_test)
    top2 = np.sort(scores, axis=1)[:, -2:]
    assert_allclose(clf.margins(X_test), top2[:, 1] - top2[:, 0])
    signed = clf.margins(X_test, y_test)
    wrong = clf.predict(X_test) != y_test
    assert np.all(signed[~wrong] > 0) and np.all(signed[wrong] < 0)
    assert_allclose(signed[~wrong], clf.margins(X_test)[~wrong])
    with pytest.raises(ValueError, match="labels not seen in fit"):
        clf.margins(X_test[:2], [0, 42])


def test_binary_problem_has_1d_decision_and_jacobian(digits_split):
    X, _, y, _ = digits_split
    mask = y < 2
    X, y = X[mask][:150], np.where(y[mask][:150] == 1, "one", "zero")
    clf = MarginKernelLogReg().fit(X, y)
    dec = clf.decision_function(X[:10])
    assert dec.shape == (10,)
    assert np.array_equal(clf.predict(X[:10]), clf.classes_[(dec > 0).astype(int)])
    assert clf.input_jacobian(X[:3]).shape == (3, 64)
    radii = clf.certify(X[:10])
    assert radii.shape == (10,) and np.all(radii > 0)


def test_float32_and_dataframe_input(small_digits):
    X, X_test, y, _ = small_digits
    a = MarginKernelLogReg(n_centers=60, random_state=0).fit(X, y)
    b = MarginKernelLogReg(n_centers=60, random_state=0).fit(X.astype(np.float32), y)
    assert_allclose(a.decision_function(X_test), b.decision_function(X_test), atol=1e-5)
    cols = [f"px{i}" for i in range(64)]
    c = MarginKernelLogReg(n_centers=60, random_state=0).fit(
        pd.DataFrame(X, columns=cols), y
    )
    assert list(c.feature_names_in_) == cols
    assert_allclose(
        c.decision_function(pd.DataFrame(X_test, columns=cols)),
        a.decision_function(X_test),
        atol=1e-5,
    )


def test_max_iter_reached_warns_and_sets_n_iter(small_digits):
    X, _, y, _ = small_digits
    with pytest.warns(ConvergenceWarning, match="did not converge in 2 iterations"):
        clf = MarginKernelLogReg(max_iter=2, n_centers=30, random_state=0).fit(X, y)
    assert clf.n_iter_ == 2


def test_verbose_prints_progress(small_digits, capsys):
    X, _, y, _ = small_digits
    MarginKernelLogReg(verbose=50, n_centers=30, random_state=0).fit(X, y)
    assert "objective" in capsys.readouterr().out


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, X_change, y_change, match",
    [
        ({}, "nan", None, "Input X contains NaN"),
        ({}, "inf", None, "Input X contains infinity"),
        ({}, None, "one_class", "at least 2 classes"),
        ({"lam": -1.0}, None, None, "'lam' parameter of MarginKernelLogReg"),
        ({"regularizer": "l2"}, None, None, "'regularizer' parameter"),
        ({"gamma": "auto"}, None, None, "'gamma' parameter"),
        ({}, None, "continuous", "Unknown label type"),
    ],
)
def test_fit_rejects_bad_input_with_clear_errors(
    small_digits, params, X_change, y_change, match
):
    X, _, y, _ = small_digits
    X, y = X[:50].copy(), y[:50].copy()
    if X_change == "nan":
        X[3, 5] = np.nan
    if X_change == "inf":
        X[3, 5] = np.inf
    if y_change == "one_class":
        y[:] = 4
    if y_change == "continuous":
        y = np.linspace(0, 1, 50)
    with pytest.raises(ValueError, match=match):
        MarginKernelLogReg(**params).fit(X, y)


def test_predict_and_certify_reject_wrong_feature_count(fitted_digits):
    with pytest.raises(ValueError, match="X has 3 features, but MarginKernelLogReg"):
        fitted_digits.predict(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="X has 3 features"):
        fitted_digits.certify(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="method must be one of"):
        fitted_digits.certify(np.zeros((2, 64)), method="exact")


def test_unfitted_estimator_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MarginKernelLogReg().certify(np.zeros((1, 2)))


# ---------------------------------------------------------------- ecosystem
def test_pipeline_and_grid_search(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    X_train, y_train = X_train[:300] * 16, y_train[:300]
    pipe = Pipeline(
        [
            ("scale", MinMaxScaler()),
            ("clf", MarginKernelLogReg(n_centers=80, random_state=0)),
        ]
    )
    grid = {"clf__lam": [1e-2, 1e-1], "clf__gamma_scale": [0.5, 1.0]}
    search = GridSearchCV(pipe, grid, cv=2).fit(X_train, y_train)
    assert search.best_params_["clf__lam"] in grid["clf__lam"]
    assert search.score(X_test * 16, y_test) > 0.85
    radii = search.best_estimator_[-1].certify(
        search.best_estimator_[:-1].transform(X_test[:5] * 16)
    )
    assert radii.shape == (5,) and np.all(radii >= 0)


# ---------------------------------------------------------------- certificates
def _disc_is_constant(clf, x, radius, n_radii=40, n_angles=720):
    """Dense polar grid of the closed disc of the given radius around x."""
    t = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    r = np.linspace(0, radius, n_radii)
    pts = x + (r[:, None, None] * np.stack([np.cos(t), np.sin(t)], -1)).reshape(-1, 2)
    return np.all(clf.predict(pts) == clf.predict(x[None])[0])


@pytest.mark.parametrize("method", METHODS)
def test_certificates_hold_on_a_dense_grid_of_the_ball_in_2d(fitted_blobs, method):
    clf = fitted_blobs
    rng = np.random.default_rng(0)
    X = rng.random((25, 2))  # anywhere, including near the boundaries
    radii = clf.certify(X, method=method)
    assert np.all(radii >= 0)
    for x, r in zip(X, radii, strict=True):
        assert _disc_is_constant(clf, x, r), (x, r)


@settings(max_examples=12, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    gamma_scale=st.floats(0.3, 4.0),
    lam=st.sampled_from([1e-3, 1e-2, 1e-1]),
    regularizer=st.sampled_from(["cross_lipschitz", "rkhs"]),
)
def test_certificates_hold_for_random_2d_kernel_models(
    seed, gamma_scale, lam, regularizer
):
    rng = np.random.default_rng(seed)
    X = rng.random((60, 2))
    y = rng.integers(0, 3, 60)
    y[:3] = [0, 1, 2]
    clf = MarginKernelLogReg(
        lam=lam, regularizer=regularizer, gamma_scale=gamma_scale, random_state=0
    ).fit(X, y)
    X_new = rng.random((6, 2))
    radii = clf.certify(X_new, method="auto")
    for x, r in zip(X_new, radii, strict=True):
        assert _disc_is_constant(clf, x, r, n_radii=30, n_angles=360), (x, r)


def test_certificates_never_exceed_grid_distance_to_the_boundary_in_2d(fitted_blobs):
    clf = fitted_blobs
    h = 0.004
    g = np.arange(-0.5, 1.5, h)
    grid = np.stack(np.meshgrid(g, g), -1).reshape(-1, 2)
    pred = clf.predict(grid)
    X = np.random.default_rng(1).random((15, 2)) * 0.9 + 0.05
    radii = clf.certify(X, method="auto")
    for x, r, c in zip(X, radii, clf.predict(X), strict=True):
        other = grid[pred != c]
        upper = np.min(np.linalg.norm(other - x, axis=1))  # >= true distance
        assert r <= upper
    assert np.mean(radii) > 1e-3  # the certificate is not trivially zero


def _refine_attack(clf, x, x_adv):
    """Shorten an adversarial perturbation with SLSQP on f_c - f_j <= 0."""
    c = clf.predict(x[None])[0]
    ci = np.searchsorted(clf.classes_, c)
    j = np.searchsorted(clf.classes_, clf.predict(x_adv[None])[0])

    def g(z):
        s = clf.decision_function(z[None])[0]
        return s[j] - s[ci] - 1e-9

    def g_jac(z):
        J = clf.input_jacobian(z[None])[0]
        return J[j] - J[ci]

    res = minimize(
        lambda z: np.sum((z - x) ** 2),
        x_adv,
        jac=lambda z: 2 * (z - x),
        constraints=[{"type": "ineq", "fun": g, "jac": g_jac}],
        method="SLSQP",
        options={"maxiter": 200},
    )
    z = res.x
    if clf.predict(z[None])[0] != c:
        return np.linalg.norm(z - x)
    return np.linalg.norm(x_adv - x)


def test_certificates_never_exceed_attack_distances_on_digits(
    fitted_digits, small_digits
):
    _, X_test, _, y_test = small_digits
    clf = fitted_digits
    X = X_test[:20]
    # A box wide enough not to bind: the certificate holds on all of R^d.
    X_adv, success = box_constrained_attack(clf, X, p=2, bounds=(-5.0, 6.0))
    assert success.all()
    assert np.all(clf.predict(X_adv) != clf.predict(X))
    attack = np.array([_refine_attack(clf, x, a) for x, a in zip(X, X_adv, strict=1)])
    radii = {m: clf.certify(X, method=m) for m in METHODS}
    for m, r in radii.items():
        assert np.all(r <= attack), m
        assert np.all(r > 0), m
    # auto takes the largest of its radii for each row; it no longer runs
    # Proposition 2.1, which never beats it on these rows either.
    for m in ("local_quadratic", "local_triangle", "second_order"):
        assert np.all(radii["auto"] >= radii[m] * (1 - 1e-9))
    # With the RKHS bounds, the certificates reach half the attack distance
    # (a quarter before them), the exact Hessian of third_order more.
    assert np.mean(radii["auto"] / attack) > 0.4
    assert np.mean(radii["third_order"]) > np.mean(radii["second_order"])


def test_local_quadratic_is_refused_beyond_its_memory_limit(
    fitted_digits, small_digits, monkeypatch
):
    import sk_margin.kernel._certify

    _, X_test, _, _ = small_digits
    full = fitted_digits.certify(X_test[:4])
    monkeypatch.setattr(sk_margin.kernel._certify, "_QUADRATIC_MAX_CENTERS", 100)
    with pytest.raises(ValueError, match="at most 100 centres"):
        fitted_digits.certify(X_test[:4], method="local_quadratic")
    cheap = fitted_digits.certify(X_test[:4])  # auto without Prop. 2.1
    assert np.all(cheap <= full) and np.all(cheap > 0)


def test_tied_top_scores_get_radius_zero(fitted_digits, small_digits):
    import copy

    _, X_test, _, _ = small_digits
    clf = copy.deepcopy(fitted_digits)
    clf.dual_coef_[:] = clf.dual_coef_[0]
    clf.intercept_[:] = 0.0
    for m in METHODS:
        assert_allclose(clf.certify(X_test[:3], method=m), 0.0)


def test_certify_is_float64_and_independent_of_input_dtype(fitted_digits, small_digits):
    _, X_test, _, _ = small_digits
    r64 = fitted_digits.certify(X_test[:5])
    r32 = fitted_digits.certify(X_test[:5].astype(np.float32))
    assert r64.dtype == np.float64
    assert_allclose(r32, fitted_digits.certify(X_test[:5].astype(np.float32)))
    assert_allclose(r64, r32, rtol=1e-3)


def test_certify_shows_progress_when_verbose(fitted_digits, small_digits, capsys):
    X = small_digits[1][:20]
    expected = fitted_digits.certify(X, method="second_order")
    capsys.readouterr()
    clf = pickle.loads(pickle.dumps(fitted_digits)).set_params(verbose=1)
    assert_array_equal(clf.certify(X, method="second_order"), expected)
    assert "20/20" in capsys.readouterr().err


@pytest.mark.parametrize(
    "former, name", [("prop21", "local_quadratic"), ("triangle", "local_triangle")]
)
def test_former_method_names_warn_and_give_the_same_radii(
    former, name, fitted_digits, small_digits
):
    _, X_test, _, _ = small_digits
    expected = fitted_digits.certify(X_test[:5], method=name)
    with pytest.warns(FutureWarning, match=f"method='{former}' is now called '{name}'"):
        radii = fitted_digits.certify(X_test[:5], method=former)
    assert_allclose(radii, expected)
    with pytest.raises(ValueError, match="method must be one of 'auto', 'local_q"):
        fitted_digits.certify(X_test[:5], method="global_pairwise")


@pytest.mark.parametrize("tol, dtype", [(1e-4, np.float32), (1e-8, np.float64)])
def test_features_are_float32_unless_tol_needs_float64(
    tol, dtype, small_digits, monkeypatch
):
    import sk_margin.kernel._estimator as estimator

    seen = []
    original = estimator._transform_in_place

    def spy(K, W, dtype=np.float64):
        seen.append(dtype)
        return original(K, W, dtype=dtype)

    monkeypatch.setattr(estimator, "_transform_in_place", spy)
    X, _, y, _ = small_digits
    clf = MarginKernelLogReg(n_centers=40, tol=tol, random_state=0).fit(X, y)
    assert seen == [dtype]
    assert clf.dual_coef_.dtype == np.float64  # the model is float64 either way


# ------------------------------------------------------------ sample weights
def test_weighted_objective_is_the_mean_over_repeated_samples():
    rng = np.random.default_rng(1)
    Phi, y = rng.random((12, 5)), rng.integers(0, 3, 12)
    w = rng.integers(1, 4, 12)
    theta, penalty = rng.normal(size=3 * 6), rng.random(5)
    weighted = logreg_objective(theta, Phi, y, 3, penalty, True, w.astype(float))
    repeated = logreg_objective(
        theta, Phi.repeat(w, axis=0), y.repeat(w), 3, penalty, True
    )
    assert_allclose(weighted[0], repeated[0], rtol=1e-12)
    assert_allclose(weighted[1], repeated[1], rtol=1e-10, atol=1e-14)


def test_weighted_objective_gradient_passes_check_grad():
    rng = np.random.default_rng(2)
    Phi, y, w = rng.random((30, 6)), rng.integers(0, 3, 30), rng.random(30)
    theta, penalty = rng.normal(size=3 * 7), rng.random(6)

    def f(t):
        return logreg_objective(t, Phi, y, 3, penalty, True, w)[0]

    def g(t):
        return logreg_objective(t, Phi, y, 3, penalty, True, w)[1]

    assert check_grad(f, g, theta) < 1e-6 * max(1.0, np.linalg.norm(g(theta)))


def test_weighted_cross_lipschitz_gram_is_the_gram_of_repeated_rows():
    rng = np.random.default_rng(3)
    X, C = rng.random((9, 4)), rng.random((5, 4))
    w = rng.integers(1, 4, 9)
    Xr = X.repeat(w, axis=0)
    weighted = cross_lipschitz_gram(X, C, rbf_kernel(X, C, gamma=0.7), 0.7, w * 1.0)
    repeated = cross_lipschitz_gram(Xr, C, rbf_kernel(Xr, C, gamma=0.7), 0.7)
    assert_allclose(weighted, repeated, rtol=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        {"regularizer": "cross_lipschitz"},
        {"regularizer": "rkhs", "lam": 1e-3},
        {"regularizer": "cross_lipschitz", "gamma": 0.05, "n_neighbors": 3},
    ],
    ids=["cl-knn", "rkhs-knn", "cl-fixed-gamma"],
)
def test_integer_weights_equal_repeated_samples(params, small_digits):
    # Weight 0 removes a sample (a whole class here), weight k repeats it k
    # times: the same gamma, centres (as a set) and model, hence predictions
    # and certified radii. tol=1e-8: float64 products, a converged optimum.
    X, X_test, y, _ = small_digits
    X, y = X[:80], y[:80]
    w = np.random.default_rng(0).integers(0, 4, 80)
    w[y == 9] = 0
    params = {"n_neighbors": 7, "tol": 1e-8, "random_state": 0, **params}
    repeated = MarginKernelLogReg(**params).fit(X.repeat(w, axis=0), y.repeat(w))
    order = np.random.default_rng(1).permutation(80)
    weighted = MarginKernelLogReg(**params).fit(
        X[order], y[order], sample_weight=w[order]
    )
    assert 9 not in weighted.classes_
    assert_array_equal(weighted.classes_, repeated.classes_)
    assert_allclose(weighted.gamma_, repeated.gamma_, rtol=1e-12)
    assert len(weighted.centers_) == len(repeated.centers_) == np.count_nonzero(w)
    assert_allclose(
        weighted.predict_proba(X_test), repeated.predict_proba(X_test), atol=1e-5
    )
    assert_allclose(
        weighted.certify(X_test), repeated.certify(X_test), rtol=1e-4, atol=1e-6
    )


def test_weights_shift_the_decision_towards_the_heavy_class(small_digits):
    X, X_test, y, _ = small_digits
    X, y = X[:120], y[:120]
    params = {
        "n_centers": 60,
        "lam": 0.1,
        "gamma": 0.02,
        "tol": 1e-8,
        "random_state": 0,
    }
    plain = MarginKernelLogReg(**params).fit(X, y)
    heavy = np.where(y == 3, 20.0, 1.0)
    weighted = MarginKernelLogReg(**params).fit(X, y, sample_weight=heavy)
    col = list(plain.classes_).index(3)
    p_plain = plain.predict_proba(X_test)[:, col]
    p_weighted = weighted.predict_proba(X_test)[:, col]
    assert np.all(p_weighted >= p_plain - 1e-12) and np.mean(p_weighted > p_plain) > 0.9
    # With a fixed gamma only relative weights matter: the same objective,
    # rounded differently, so L-BFGS stops at another point within tol=1e-8
    # of its optimum: 1.7e-6 apart in these probabilities on one machine,
    # below 1e-6 on another. Unnormalised weights (lam / 2.5) move them by 0.2.
    uniform = MarginKernelLogReg(**params).fit(X, y, sample_weight=np.full(120, 2.5))
    assert_allclose(
        uniform.predict_proba(X_test), plain.predict_proba(X_test), atol=1e-5
    )
    # With gamma="knn", scaling the weights by 2 is repeating every sample.
    knn = {**params, "gamma": "knn", "n_neighbors": 9}
    doubled = MarginKernelLogReg(**knn).fit(X, y, sample_weight=np.full(120, 2.0))
    twice = MarginKernelLogReg(**knn).fit(np.vstack([X, X]), np.concatenate([y, y]))
    assert_allclose(doubled.gamma_, twice.gamma_, rtol=1e-12)


def test_duplicate_training_points_are_one_centre(small_digits):
    X, _, y, _ = small_digits
    Xd, yd = np.vstack([X[:30], X[:10]]), np.concatenate([y[:30], y[:10]])
    clf = MarginKernelLogReg(n_centers=None, random_state=0).fit(Xd, yd)
    assert_allclose(clf.centers_, X[:30])


@pytest.mark.parametrize(
    "sample_weight, match",
    [
        (-np.ones(40), "Negative values in data passed to `sample_weight`"),
        (np.zeros(40), "Sample weights must contain at least one non-zero"),
        (np.ones(39), r"sample_weight.shape == \(39,\), expected \(40,\)"),
    ],
    ids=["negative", "all-zero", "wrong-length"],
)
def test_bad_sample_weight_is_refused(sample_weight, match, small_digits):
    X, _, y, _ = small_digits
    with pytest.raises(ValueError, match=match):
        MarginKernelLogReg(n_centers=10).fit(
            X[:40], y[:40], sample_weight=sample_weight
        )


def test_representation_is_the_kernel_features_of_the_scores(
    fitted_digits, small_digits
):
    _, X_test, _, _ = small_digits
    model = fitted_digits
    Z = model.representation(X_test)
    assert Z.shape == (len(X_test), len(model.centers_))
    assert np.all((Z > 0) & (Z <= 1))
    scores = Z @ model.dual_coef_.T + model.intercept_
    np.testing.assert_allclose(scores, model.decision_function(X_test), atol=1e-12)
    with pytest.raises(ValueError, match="layer must be -1 or 0"):
        model.representation(X_test, layer=1)
