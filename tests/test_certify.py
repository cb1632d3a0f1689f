import numpy as np
import pytest
from numpy.testing import assert_allclose

from sk_margin.certify import (
    bisect_radius,
    cross_lipschitz_radius,
    linf_lipschitz_radius,
    lipschitz_margin_radius,
    local_lipschitz_radius,
    proved_radius_search,
    search_radius,
    second_order_radius,
)
from sk_margin.margins import logit_margin, score_gaps


def _linear_boundary_distance(W, b, X):
    """Distance to the nearest hyperplane f_c = f_j, by explicit projection."""
    scores = X @ W.T + b
    c = scores.argmax(1)
    out = np.empty(len(X))
    for i, x in enumerate(X):
        best = np.inf
        for j in range(len(W)):
            if j != c[i]:
                w, off = W[c[i]] - W[j], b[c[i]] - b[j]
                best = min(best, np.linalg.norm((w @ x + off) / (w @ w) * w))
        out[i] = best
    return out


def test_global_l2_and_linf_radii_are_exact_for_antisymmetric_linear_model():
    # f(x) = (w.x, -w.x): ||f||_{2->2} = sqrt(2)|w|, ||f||_{2->inf} = |w|,
    # margin 2|w.x|, distance to the boundary |w.x| / |w|.
    rng = np.random.default_rng(1)
    w = rng.normal(size=5)
    W, b = np.stack([w, -w]), np.zeros(2)
    X = rng.normal(size=(30, 5))
    mu = logit_margin(X @ W.T)
    dist = _linear_boundary_distance(W, b, X)
    assert_allclose(lipschitz_margin_radius(mu, np.sqrt(2) * np.linalg.norm(w)), dist)
    assert_allclose(linf_lipschitz_radius(mu, np.linalg.norm(w)), dist)


def test_global_radii_are_sound_for_random_linear_models():
    rng = np.random.default_rng(2)
    W, b = rng.normal(size=(5, 8)), rng.normal(size=5)
    X = rng.normal(size=(50, 8))
    scores = X @ W.T + b
    dist = _linear_boundary_distance(W, b, X)
    mu = logit_margin(scores)
    L2 = np.linalg.norm(W, 2)
    Linf = np.linalg.norm(W, axis=1).max()
    assert np.all(lipschitz_margin_radius(mu, L2) <= dist + 1e-12)
    assert np.all(linf_lipschitz_radius(mu, Linf) <= dist + 1e-12)


def test_cross_lipschitz_radius_is_exact_for_linear_models():
    rng = np.random.default_rng(3)
    W, b = rng.normal(size=(4, 6)), rng.normal(size=4)
    X = rng.normal(size=(40, 6))
    pair = np.linalg.norm(W[:, None, :] - W[None, :, :], axis=2)
    scores = X @ W.T + b
    assert_allclose(
        cross_lipschitz_radius(scores, pair), _linear_boundary_distance(W, b, X)
    )
    # One matrix per sample gives the same.
    per_sample = np.broadcast_to(pair, (40, 4, 4))
    assert_allclose(
        cross_lipschitz_radius(scores, per_sample), cross_lipschitz_radius(scores, pair)
    )


def test_radii_are_zero_for_tied_scores():
    scores = np.array([[1.0, 1.0, 0.0]])
    assert cross_lipschitz_radius(scores, np.ones((3, 3)))[0] == 0.0
    assert lipschitz_margin_radius(logit_margin(scores), 1.0)[0] == 0.0


def test_bisect_radius_returns_only_certified_radii():
    thresholds = np.array([0.0, 0.3, 1.7, 5.0])

    def certified(R, idx):
        return R <= thresholds[idx]

    upper = np.array([1.0, 1.0, 2.0, np.inf])
    r = bisect_radius(certified, upper, n_steps=40)
    assert np.all(r <= thresholds)
    assert_allclose(r, thresholds, atol=1e-9)


def test_bisect_radius_is_sound_for_non_monotone_certificates():
    # Certified on [0, 0.2] and again on [0.6, 0.7]: whatever is returned
    # must be a radius at which the test said yes.
    def certified(R, idx):
        return (R <= 0.2) | ((R >= 0.6) & (R <= 0.7))

    r = bisect_radius(certified, np.array([1.0]), n_steps=30)
    assert certified(r, np.array([0]))[0]


def test_local_lipschitz_radius_with_constant_lipschitz_is_gap_over_l():
    gaps, _ = score_gaps(np.array([[2.0, 0.5, 1.0], [0.0, 3.0, -1.0]]))
    lips = np.array([[0.0, 2.0, 4.0], [1.0, 0.0, 8.0]])

    def local(R, idx):
        return lips[idx]

    r = local_lipschitz_radius(gaps, local, np.array([10.0, 10.0]), n_steps=50)
    assert_allclose(r, [min(1.5 / 2.0, 1.0 / 4.0), min(3.0 / 1.0, 4.0 / 8.0)])


def test_second_order_radius_solves_the_quadratic():
    gaps, _ = score_gaps(np.array([[1.0, 0.0], [2.0, 0.0]]))
    grad = np.array([[0.0, 2.0], [0.0, 0.0]])
    curv = np.array([[0.0, 0.0], [0.0, 4.0]])

    def curvature(R, idx):
        return curv[idx]

    r = second_order_radius(gaps, grad, curvature, np.array([5.0, 5.0]), n_steps=50)
    # gap - a R = 0 -> R = 1/2 ;  gap - M R^2 / 2 = 0 -> R = 1
    assert_allclose(r, [0.5, 1.0], rtol=1e-9)
    assert np.all(r <= [0.5, 1.0])


@pytest.mark.parametrize("n_steps", [1, 5])
def test_few_bisection_steps_shrink_but_stay_sound(n_steps):
    thresholds = np.array([0.37])
    r = bisect_radius(
        lambda R, idx: R <= thresholds[idx], np.array([1.0]), n_steps=n_steps
    )
    assert 0 <= r[0] <= thresholds[0]


def test_bisect_radius_starts_from_a_known_lower_radius():
    thresholds = np.array([0.5, 0.2, 0.8])
    calls = []

    def certified(R, idx):
        calls.append(idx.copy())
        return R <= thresholds[idx]

    lower = np.array([0.3, 0.4, 0.0])  # row 1: known by other means, not by ours
    r = bisect_radius(certified, np.ones(3), lower=lower, n_steps=40)
    assert_allclose(r, [0.5, 0.4, 0.8], atol=1e-9)
    # Row 1 is settled by a single check at its lower radius.
    assert sum(1 in c for c in calls) == 1


# ------------------------------------------------------------ search_radius
def _quadratic_certificate(gaps, grads, curv0, slope, counter):
    """Certified iff gap - G R - (M0 + s R) R^2 / 2 > 0; psi its root at M(R)."""

    def evaluate(R, idx):
        counter.append(len(idx))
        M = curv0[idx] + slope[idx] * R
        value = gaps[idx] - grads[idx] * R - 0.5 * M * R**2
        psi = (
            2 * gaps[idx] / (grads[idx] + np.sqrt(grads[idx] ** 2 + 2 * M * gaps[idx]))
        )
        return value > 0, psi

    return evaluate


def _exact_roots(gaps, grads, curv0, slope):
    # gap - G R - M0 R^2 / 2 - s R^3 / 2 = 0, the only positive root.
    return np.array(
        [
            min(
                r.real
                for r in np.roots([-s / 2, -m / 2, -g, gap])
                if abs(r.imag) < 1e-12 and r.real > 0
            )
            for gap, g, m, s in zip(gaps, grads, curv0, slope, strict=True)
        ]
    )


def test_search_radius_finds_the_root_in_few_evaluations():
    rng = np.random.default_rng(0)
    n = 200
    gaps, grads = rng.random(n) + 0.1, rng.random(n) * 3
    curv0, slope = rng.random(n) * 5, rng.random(n) * 2
    calls = []
    evaluate = _quadratic_certificate(gaps, grads, curv0, slope, calls)
    upper = gaps / np.maximum(grads, 1e-3)
    r = search_radius(evaluate, upper, n_steps=20)
    exact = _exact_roots(gaps, grads, curv0, slope)
    assert np.all(r <= exact * (1 + 1e-12))  # only certified radii
    assert np.all(r >= exact * (1 - 2.0**-19))  # as precise as 20 bisections
    assert sum(calls) / n < 8  # bisection needs 21 evaluations per row
    bisect_calls = []
    bisect_evaluate = _quadratic_certificate(gaps, grads, curv0, slope, bisect_calls)
    bisect_radius(lambda R, idx: bisect_evaluate(R, idx)[0], upper, n_steps=20)
    assert sum(bisect_calls) > 2.5 * sum(calls)


def test_search_radius_stops_at_once_where_lower_is_not_improved():
    calls = []
    gaps, grads = np.array([1.0, 1.0]), np.array([1.0, 1.0])
    evaluate = _quadratic_certificate(gaps, grads, np.ones(2), np.zeros(2), calls)
    exact = _exact_roots(gaps, grads, np.ones(2), np.zeros(2))
    # Row 0 starts above what this certificate reaches: it keeps its lower
    # radius (certified by other means) after one evaluation.
    lower = np.array([exact[0] * 1.2, 0.1])
    r = search_radius(evaluate, np.array([5.0, 5.0]), lower=lower)
    assert r[0] == lower[0]
    assert exact[1] * (1 - 1e-6) <= r[1] <= exact[1]
    assert calls[0] == 2 and calls[1] == 1  # row 0 only in the first call


def test_search_radius_is_sound_whatever_psi_says():
    # A certificate that holds on [0, 0.2] and [0.6, 0.7], steered by a psi
    # that lies: every returned radius must be one the certificate accepted.
    def evaluate(R, idx):
        ok = (R <= 0.2) | ((R >= 0.6) & (R <= 0.7))
        return ok, np.full(len(idx), 0.9)

    r = search_radius(evaluate, np.array([1.0, np.inf]))
    ok, _ = evaluate(r, np.arange(2))
    assert np.all(ok)


def test_search_radius_grows_unbounded_rows_to_a_finite_cap():
    def evaluate(R, idx):
        return np.ones(len(idx), dtype=bool), np.full(len(idx), np.inf)

    r = search_radius(evaluate, np.array([np.inf, 0.0]), n_steps=10)
    assert r[0] == 2.0**10 and r[1] == 0.0


def _proving_certificate(roots, calls):
    """psi(R) = root - (R - root) * 2 above the root, proved up to min(R, psi).

    Decreasing in R, with its fixed point at ``root``, like the radii bound
    propagation proves at R.
    """

    def evaluate(R, idx):
        calls.append(len(idx))
        root = roots[idx]
        return np.where(R <= root, root + 0.5 * (root - R), root - 2.0 * (R - root))

    return evaluate


def test_proved_radius_search_ends_at_the_fixed_point_in_few_checks():
    rng = np.random.default_rng(0)
    roots = rng.random(100) + 0.05
    calls = []
    evaluate = _proving_certificate(roots, calls)
    upper = roots * rng.uniform(1.3, 3.0, 100)
    r = proved_radius_search(evaluate, upper, rtol=5e-3, check_lower=False)
    assert np.all(r <= roots)  # a proved radius never passes the root
    assert np.all(r >= roots * (1 - 5e-3))
    assert sum(calls) / len(roots) <= 5
    # Every radius returned was proved: min(R, psi(R)) of some check.
    bisect_calls = []
    bisect_radius(
        lambda R, idx: _proving_certificate(roots, bisect_calls)(R, idx) >= R,
        upper,
        n_steps=20,
        rtol=5e-3,
    )
    assert sum(bisect_calls) > 1.5 * sum(calls)


def test_proved_radius_search_keeps_lower_and_grows_unbounded_rows():
    roots = np.array([1.0, 1.0, 3.0])
    calls = []
    evaluate = _proving_certificate(roots, calls)
    # Row 0 starts above its root: one check fails at lower and it keeps it;
    # row 2 has no upper end: it doubles from 2 * lower until a check fails.
    lower = np.array([1.5, 0.2, 0.5])
    r = proved_radius_search(evaluate, np.array([4.0, 4.0, np.inf]), lower=lower)
    assert r[0] == lower[0]
    assert roots[1] * (1 - 5e-3) <= r[1] <= roots[1]
    assert roots[2] * (1 - 5e-3) <= r[2] <= roots[2]


def test_proved_radius_search_returns_only_what_checks_proved():
    # psi says "certified far beyond" on one side only: the search may
    # believe it, but never returns more than a check proved.
    def evaluate(R, idx):
        return np.where(R < 0.3, 10.0, 0.1)

    r = proved_radius_search(evaluate, np.array([1.0, 0.0]), check_lower=False)
    assert 0.0 < r[0] < 0.3 and r[1] == 0.0
