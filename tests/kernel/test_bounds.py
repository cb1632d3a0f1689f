import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist

from sk_margin.kernel._bounds import (
    gaussian_curvature_bound,
    gaussian_grad_norm_max,
    gaussian_hessian_norm_max,
    gaussian_rkhs_derivative_factor,
    gaussian_third_derivative_max,
    gaussian_triangle_bound,
)
from sk_margin.kernel._expansion import expansion_rkhs_gram, pair_rkhs_norms
from sk_margin.kernel._quadratic_bound import quadratic_gradient_bound

GAMMA = 0.7


def _grad_g(y, centers, beta, gamma):
    diff = y - centers
    k = np.exp(-gamma * np.sum(diff**2, axis=1))
    return -2 * gamma * (beta * k) @ diff


def _hess_g(y, centers, beta, gamma):
    d = len(y)
    H = np.zeros((d, d))
    for c, b in zip(centers, beta, strict=True):
        u = y - c
        k = np.exp(-gamma * u @ u)
        H += b * k * (4 * gamma**2 * np.outer(u, u) - 2 * gamma * np.eye(d))
    return H


def _ball_samples(x, R, rng, n=3000):
    """Points of B(x, R): the centre, the sphere, and the interior."""
    u = rng.normal(size=(n, len(x)))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    radii = R * np.concatenate([np.ones(n // 2), rng.random(n - n // 2) ** 0.5])
    return np.vstack([x, x + radii[:, None] * u])


def _problem(seed, d=3, m=6, signs=None):
    rng = np.random.default_rng(seed)
    centers = rng.random((m, d)) * 2
    beta = rng.normal(size=m) if signs is None else signs * rng.random(m) + signs
    x = rng.random(d) * 2
    return rng, centers, beta, x


def test_grad_norm_max_matches_dense_grid():
    rng = np.random.default_rng(0)
    for _ in range(50):
        lo, hi = np.sort(rng.random(2) * 3)
        t = np.linspace(lo, hi, 20001)
        grid = np.max(2 * GAMMA * t * np.exp(-GAMMA * t**2))
        assert_allclose(gaussian_grad_norm_max(lo, hi, GAMMA), grid, rtol=1e-6)
        assert gaussian_grad_norm_max(lo, hi, GAMMA) >= grid - 1e-15


def test_hessian_norm_max_matches_eigenvalues_on_dense_grid():
    rng = np.random.default_rng(1)
    c = np.zeros(2)
    for _ in range(30):
        lo, hi = np.sort(rng.random(2) * 4)
        norms = []
        for t in np.linspace(lo, hi, 801):
            H = _hess_g(np.array([t, 0.0]), c[None], np.ones(1), GAMMA)
            norms.append(np.abs(np.linalg.eigvalsh(H)).max())
        bound = gaussian_hessian_norm_max(lo, hi, GAMMA)
        assert bound >= max(norms) - 1e-12
        assert_allclose(bound, max(norms), rtol=1e-4)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("R", [0.05, 0.3, 1.0])
def test_local_bounds_dominate_the_gradient_and_hessian_on_the_ball(seed, R):
    rng, centers, beta, x = _problem(seed)
    Y = _ball_samples(x, R, rng)
    grad_max = max(np.linalg.norm(_grad_g(y, centers, beta, GAMMA)) for y in Y)
    hess_max = max(np.linalg.norm(_hess_g(y, centers, beta, GAMMA), 2) for y in Y[::10])
    dist = np.linalg.norm(x - centers, axis=1)[None]
    absb = np.abs(beta)[None, None]
    quadratic = quadratic_gradient_bound(x, centers, GAMMA)(R, beta[None])[0]
    tri = gaussian_triangle_bound(dist, absb, np.array([R]), GAMMA)[0, 0]
    curv = gaussian_curvature_bound(dist, absb, np.array([R]), GAMMA)[0, 0]
    assert quadratic >= grad_max * (1 - 1e-12)
    assert tri >= grad_max * (1 - 1e-12)
    assert curv >= hess_max * (1 - 1e-12)


def test_quadratic_is_exact_at_radius_zero():
    _, centers, beta, x = _problem(3)
    bound = quadratic_gradient_bound(x, centers, GAMMA)
    exact = np.linalg.norm(_grad_g(x, centers, beta, GAMMA))
    assert_allclose(bound(0.0, beta[None])[0], exact, rtol=1e-10)


def test_quadratic_evaluates_all_class_pairs_at_once():
    _, centers, _, x = _problem(4)
    rng = np.random.default_rng(4)
    betas = rng.normal(size=(5, len(centers)))
    bound = quadratic_gradient_bound(x, centers, GAMMA)
    together = bound(0.4, betas)
    one_by_one = [bound(0.4, b[None])[0] for b in betas]
    assert_allclose(together, one_by_one)


def _literal_quadratic(x, centers, beta, R, gamma):
    """Prop. 2.1 as printed: sums over beta_r, beta_s >= 0 and both < 0."""
    total = 0.0
    for r in range(len(centers)):
        for s in range(len(centers)):
            ur, us = x - centers[r], x - centers[s]
            p, e = ur @ us, ur @ ur + us @ us
            S = np.linalg.norm(ur + us)
            M = min(S / 2, R)
            e_hi = np.exp(-gamma * (e - 2 * M * S + 2 * M * M))
            e_lo = np.exp(-gamma * (e + 2 * R * S + 2 * R * R))
            if beta[r] >= 0 and beta[s] >= 0:
                q = p + R * S + R * R
                total += beta[r] * beta[s] * (max(q, 0) * e_hi + min(q, 0) * e_lo)
            elif beta[r] < 0 and beta[s] < 0:
                q = p - M * S + M * M
                total += beta[r] * beta[s] * (max(q, 0) * e_lo + min(q, 0) * e_hi)
    return 2 * gamma * np.sqrt(max(total, 0.0))


def test_printed_index_sets_of_quadratic_are_not_a_bound_but_ours_is():
    # All coefficients negative: the printed second sum bounds positive terms
    # from below, so it under-estimates the gradient norm on the ball.
    rng, centers, beta, x = _problem(5, signs=-np.ones(6))
    R = 0.5
    Y = _ball_samples(x, R, rng)
    grad_max = max(np.linalg.norm(_grad_g(y, centers, beta, GAMMA)) for y in Y)
    assert _literal_quadratic(x, centers, beta, R, GAMMA) < grad_max
    assert quadratic_gradient_bound(x, centers, GAMMA)(R, beta[None])[0] >= grad_max


def test_bounds_grow_with_the_radius():
    _, centers, beta, x = _problem(6)
    bound = quadratic_gradient_bound(x, centers, GAMMA)
    dist = np.linalg.norm(x - centers, axis=1)[None]
    absb = np.abs(beta)[None, None]
    radii = np.linspace(0, 2, 41)
    p = [bound(R, beta[None])[0] for R in radii]
    t = [gaussian_triangle_bound(dist, absb, np.array([R]), GAMMA)[0, 0] for R in radii]
    assert np.all(np.diff(p) >= -1e-12)
    assert np.all(np.diff(t) >= -1e-12)


# ------------------------------------------- third derivatives, RKHS bounds
def _third_g(y, centers, beta, gamma, h):
    """D^3 g(y)[h, h, h], term by term (unit h)."""
    u = y - centers
    s = u @ h
    k = np.exp(-gamma * np.sum(u**2, axis=1))
    return np.sum(beta * k * (12 * gamma**2 * s - 8 * gamma**3 * s**3))


def test_third_directional_derivative_matches_finite_differences():
    rng, centers, beta, x = _problem(11)
    h = rng.normal(size=3)
    h /= np.linalg.norm(h)

    def g(t):
        u = x + t * h - centers
        return np.sum(beta * np.exp(-GAMMA * np.sum(u**2, axis=1)))

    step = 1e-3  # central differences of order 3, error O(step^2)
    fd = (g(2 * step) - 2 * g(step) + 2 * g(-step) - g(-2 * step)) / (2 * step**3)
    assert_allclose(_third_g(x, centers, beta, GAMMA, h), fd, rtol=1e-4)


def test_third_derivative_max_matches_dense_grid():
    rng = np.random.default_rng(3)
    s_unit = np.linspace(-1, 1, 801)
    for _ in range(40):
        lo, hi = np.sort(rng.random(2) * 3.0)
        t = np.linspace(lo, hi, 801)[:, None]
        s = t * s_unit[None, :]  # <u, h> ranges over [-t, t]
        values = np.exp(-GAMMA * t**2) * np.abs(12 * GAMMA**2 * s - 8 * GAMMA**3 * s**3)
        grid_max = values.max()
        bound = gaussian_third_derivative_max(np.array(lo), np.array(hi), GAMMA)
        assert bound >= grid_max * (1 - 1e-12)
        assert bound <= grid_max * (1 + 1e-4)  # exact, not merely an upper bound


def _cancelling_problem(seed, d=3, m=12):
    """Near-duplicate centres with large coefficients of opposite signs."""
    rng = np.random.default_rng(seed)
    base = rng.random((m // 2, d))
    centers = np.vstack([base, base + 1e-2 * rng.normal(size=base.shape)])
    big = 200.0 * rng.normal(size=m // 2)
    beta = np.concatenate([big, -big]) + rng.normal(size=m)
    return rng, centers, beta


@pytest.mark.parametrize("seed", range(4))
def test_rkhs_factors_bound_every_derivative_everywhere(seed):
    rng, centers, beta = _cancelling_problem(seed)
    K = np.exp(-GAMMA * cdist(centers, centers, "sqeuclidean"))
    norm = np.sqrt(beta @ K @ beta)
    assert norm < 0.1 * np.abs(beta).sum()  # the cancellation the bounds see
    c1, c2, c3 = (gaussian_rkhs_derivative_factor(p, GAMMA) for p in (1, 2, 3))
    assert_allclose(
        [c1, c2, c3], [np.sqrt(2 * GAMMA), np.sqrt(12) * GAMMA, np.sqrt(120 * GAMMA**3)]
    )
    Y = rng.random((300, 3)) * 1.6 - 0.3
    H_dirs = rng.normal(size=(300, 3))
    H_dirs /= np.linalg.norm(H_dirs, axis=1, keepdims=True)
    for y, h in zip(Y, H_dirs, strict=True):
        assert np.linalg.norm(_grad_g(y, centers, beta, GAMMA)) <= c1 * norm
        assert np.linalg.norm(_hess_g(y, centers, beta, GAMMA), 2) <= c2 * norm
        assert abs(_third_g(y, centers, beta, GAMMA, h)) <= c3 * norm


def test_pair_rkhs_norms_bound_the_exact_norms_despite_cancellation():
    _, centers, beta = _cancelling_problem(7)
    A = np.stack([beta, np.zeros_like(beta), 0.5 * beta])
    gram = expansion_rkhs_gram(centers, A, GAMMA)
    # Blocked computation without K_cc equals the one-shot product.
    K = np.exp(-GAMMA * cdist(centers, centers, "sqeuclidean"))
    assert_allclose(gram, A @ K @ A.T, rtol=1e-10)
    norms = pair_rkhs_norms(gram, centers, A, GAMMA)
    exact = np.sqrt(beta @ K @ beta)
    assert norms[0, 1] >= exact and norms[1, 0] >= exact
    assert_allclose(norms[0, 1], exact, rtol=1e-6)  # the slack is tiny
    assert_allclose(norms[0, 2], 0.5 * exact, rtol=1e-6)
    assert np.all(np.diag(norms) == 0)
