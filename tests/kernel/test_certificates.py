"""The kernel certificates: never below the radii recorded before the RKHS
bounds, sound on a dense grid for Cross-Lipschitz models, cached safely."""

import copy

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_moons

from sk_margin import MarginKernelLogReg
from sk_margin.kernel import certify_gaussian_expansion
from sk_margin.kernel._certify import _cubic_root
from tests.kernel import auto_radii


@pytest.fixture(scope="module")
def recorded_cases():
    with np.load(auto_radii.PATH) as data:
        recorded = {k: data[k] for k in data.files}
    return auto_radii.cases(), recorded


def test_auto_radii_are_never_below_those_recorded_before(recorded_cases):
    cases, recorded = recorded_cases
    assert {name for name, _, _ in cases} == set(recorded)
    for name, clf, X in cases:
        radii = clf.certify(X, method="auto")
        before = recorded[name]
        # The recorded radii came from 20 bisection steps (2**-19 relative),
        # of models fitted on the machine that recorded them. A refit here
        # stops elsewhere within L-BFGS's tol=1e-4 (its float32 products and
        # BLAS round differently): its radii move by up to 1.6e-7 relative
        # between one and two threads and from the recording (measured);
        # tol itself bounds that, where neither bound moved.
        assert np.all(radii >= before * (1 - 2.0**-19 - 1e-4)), name
        if name.endswith("cross_lipschitz"):
            # The RKHS bounds see the Cross-Lipschitz model's cancellations.
            assert np.mean(radii / before) > 1.3, name


@pytest.fixture(scope="module")
def moons_models():
    X, y = make_moons(300, noise=0.15, random_state=0)
    models = {
        reg: MarginKernelLogReg(lam=lam, regularizer=reg, random_state=0).fit(X, y)
        for reg, lam in (("cross_lipschitz", 1e-2), ("rkhs", 1e-3))
    }
    X_test, _ = make_moons(60, noise=0.15, random_state=1)
    return models, X_test


def _grid_distances(clf, X, h=0.005):
    g1, g2 = np.arange(-2.0, 3.0, h), np.arange(-1.5, 2.0, h)
    grid = np.stack(np.meshgrid(g1, g2), -1).reshape(-1, 2)
    pred = clf.predict(grid)
    # Each distance is at least the true distance to the boundary minus h.
    return np.array(
        [
            np.min(np.linalg.norm(grid[pred != c] - x, axis=1))
            for x, c in zip(X, clf.predict(X), strict=True)
        ]
    ), h


@pytest.mark.parametrize("method", ["second_order", "third_order", "auto"])
def test_moons_certificates_hold_on_a_dense_grid(moons_models, method):
    models, X = moons_models
    for reg, clf in models.items():
        dist, h = _grid_distances(clf, X)
        radii = clf.certify(X, method=method)
        # A certified ball contains no grid point of another class, whose
        # nearest one is within h / sqrt(2) of the true boundary point.
        assert np.all(radii <= dist + h), (reg, method)


def test_cross_lipschitz_moons_are_certified_at_a_third_of_the_distance(moons_models):
    models, X = moons_models
    clf = models["cross_lipschitz"]
    assert np.abs(clf.dual_coef_).max() > 100  # large, cancelling coefficients
    dist, _ = _grid_distances(clf, X)
    ratio = {
        m: np.mean(clf.certify(X, method=m) / dist)
        for m in ("local_triangle", "second_order", "third_order", "auto")
    }
    # Sums of |alpha_r| alone: about 0.02 of the distance. The RKHS bounds
    # and the exact Hessian (in "auto" for 2-D inputs) reach past 0.3.
    assert ratio["local_triangle"] < 0.05
    assert ratio["second_order"] > 0.15
    assert ratio["third_order"] > 0.3
    # "auto" runs the same third-order search, started from a radius already
    # certified: row by row it ends where "third_order" ends (the searches
    # stop at a relative 1e-12).
    auto, third = (clf.certify(X, method=m) for m in ("auto", "third_order"))
    assert np.all(auto >= third * (1 - 1e-11))


def test_the_third_order_search_is_steered_by_its_root():
    # gap - G t - a t^2 - b t^3 with a = -0.5 * lambda = -0.0 (a Hessian
    # with no negative eigenvalue): the root, not inf (which left the
    # search to bisect and stop 1e-3 short of the radius).
    gap, G, b = np.array([[3.6]]), np.array([[0.87]]), np.array([[950.0]])
    root = _cubic_root(gap, G, -0.5 * np.zeros((1, 1)), b)
    assert np.isfinite(root).all()
    assert_allclose(gap - G * root - b * root**3, 0.0, atol=1e-12)
    # Each coefficient alone: the roots of the linear, quadratic and cubic.
    zero = np.zeros((1, 1))
    assert_allclose(_cubic_root(gap, G, zero, zero), gap / G)
    assert_allclose(_cubic_root(gap, zero, b, zero), np.sqrt(gap / b))
    assert_allclose(_cubic_root(gap, zero, zero, b), np.cbrt(gap / b))
    assert np.isinf(_cubic_root(gap, zero, zero, zero)).all()


def test_a_model_changed_after_fit_is_certified_from_its_new_coefficients(
    moons_models,
):
    models, X = moons_models
    clf = copy.deepcopy(models["rkhs"])
    before = clf.certify(X[:10])
    clf.dual_coef_ *= 3.0  # in place: the cached RKHS norms must not be used
    fresh = certify_gaussian_expansion(
        X[:10], clf.centers_, clf.dual_coef_, clf.intercept_, clf.gamma_
    )
    assert_allclose(clf.certify(X[:10]), fresh, rtol=1e-12)
    assert not np.allclose(fresh, before)


def test_an_in_place_edit_keeping_norms_and_sums_is_seen(moons_models):
    # Rows a, b hold (x, y) and (y, x): swapping them keeps every row norm
    # and column sum, yet changes the model; the cache must notice.
    models, X = moons_models
    clf = copy.deepcopy(models["cross_lipschitz"])
    clf.centers_[0], clf.centers_[1] = (0.3, -0.2), (-0.2, 0.3)
    clf.certify(X[:5])  # caches the Gram matrix of this model
    clf.centers_[[0, 1]] = clf.centers_[[1, 0]]
    fresh = certify_gaussian_expansion(
        X[:10], clf.centers_, clf.dual_coef_, clf.intercept_, clf.gamma_
    )
    assert_allclose(clf.certify(X[:10]), fresh, rtol=1e-12)


def test_rkhs_gram_cache_survives_pickling(moons_models):
    import pickle

    models, X = moons_models
    clf = pickle.loads(pickle.dumps(models["cross_lipschitz"]))
    assert clf._certificate_rkhs_gram() is clf._rkhs_gram[1]  # no recomputation
    assert_array_equal(clf.certify(X[:5]), models["cross_lipschitz"].certify(X[:5]))
