"""The kernel certificates' rounding bounds against 50-digit arithmetic.

Every quantity a kernel certificate computes in float64 and then widens by a
bound of its rounding error (distances to the centres, score gaps, gradient
norms and Hessian eigenvalues of ``g_j = f_c - f_j``, RKHS norms of
``f_c - f_j``) is recomputed
with mpmath at 50 significant digits, on expansions built to make rounding
hurt: coefficients of a Cross-Lipschitz fit (large and cancelling), inputs
far from the origin (the squared distance ``|x|^2 + |c|^2 - 2 <x, c>``
cancels), and two classes whose coefficients differ by 1e-9 of their size
(the RKHS norm of the difference cancels).
"""

import mpmath
import numpy as np
import pytest
from sklearn.datasets import make_moons

from sk_margin import MarginKernelLogReg
from sk_margin.kernel._certify import _Expansion, _Rows
from sk_margin.kernel._expansion import expansion_rkhs_gram, pair_rkhs_norms

mpmath.mp.dps = 50


def _cross_lipschitz_moons():
    X, y = make_moons(200, noise=0.15, random_state=0)
    clf = MarginKernelLogReg(lam=1e-3, n_centers=60, random_state=0).fit(X, y)
    X_test, _ = make_moons(12, noise=0.15, random_state=1)
    assert np.abs(clf.dual_coef_).max() > 50  # large, cancelling coefficients
    return X_test, clf.centers_, clf.dual_coef_, clf.intercept_, clf.gamma_


def _far_from_the_origin():
    rng = np.random.default_rng(0)
    centers = 300.0 + 0.3 * rng.standard_normal((40, 5))
    A = 50.0 * rng.standard_normal((3, 40))
    X = 300.0 + 0.3 * rng.standard_normal((10, 5))
    return X, centers, A, rng.standard_normal(3), 4.0


def _nearly_equal_classes():
    rng = np.random.default_rng(1)
    centers = rng.standard_normal((30, 4))
    base = 1e3 * rng.standard_normal(30)
    A = np.vstack([base, base + 1e-6 * rng.standard_normal(30), -base])
    X = rng.standard_normal((10, 4))
    return X, centers, A, np.zeros(3), 0.7


CASES = {
    "cross-lipschitz moons": _cross_lipschitz_moons,
    "far from the origin": _far_from_the_origin,
    "nearly equal classes": _nearly_equal_classes,
}


def _mp(a):
    return [[mpmath.mpf(float(v)) for v in row] for row in np.atleast_2d(a)]


def _exact(X, centers, A, b, gamma):
    """Distances, scores and input gradients of the expansion, to 50 digits."""
    Xm, Cm, Am = _mp(X), _mp(centers), _mp(A)
    bm, g = [mpmath.mpf(float(v)) for v in b], mpmath.mpf(float(gamma))
    dist, scores, grads = [], [], []
    for x in Xm:
        sq = [
            mpmath.fsum((xi - ci) ** 2 for xi, ci in zip(x, c, strict=True)) for c in Cm
        ]
        k = [mpmath.exp(-g * s) for s in sq]
        dist.append([mpmath.sqrt(s) for s in sq])
        scores.append(
            [
                mpmath.fsum(a * kr for a, kr in zip(al, k, strict=True)) + bl
                for al, bl in zip(Am, bm, strict=True)
            ]
        )
        grads.append(
            [
                [
                    -2
                    * g
                    * mpmath.fsum(
                        a * kr * (xi - c[t]) for a, kr, c in zip(al, k, Cm, strict=True)
                    )
                    for t, xi in enumerate(x)
                ]
                for al in Am
            ]
        )
    return dist, scores, grads


@pytest.mark.parametrize("case", sorted(CASES))
def test_rounding_bounds_hold_in_50_digit_arithmetic(case):
    X, centers, A, b, gamma = CASES[case]()
    expansion = _Expansion(centers, A, b, gamma, None)
    rows = _Rows(expansion, np.asarray(X, dtype=np.float64))
    dist, scores, grads = _exact(X, centers, A, b, gamma)
    n_classes = A.shape[0]
    for i in range(len(X)):
        for r in range(len(centers)):
            assert rows.dist_lo[i, r] <= dist[i][r] <= rows.dist_hi[i, r]
        c = int(rows.c[i])
        for j in range(n_classes):
            if j == c:
                continue
            gap = scores[i][c] - scores[i][j]
            # A lowered gap never exceeds the exact one (so a positive gap
            # also means c is the exact top class against j).
            assert rows.gaps[i, j] <= 0 or rows.gaps[i, j] <= gap
            diff = [gc - gj for gc, gj in zip(grads[i][c], grads[i][j], strict=True)]
            assert rows.G[i, j] >= mpmath.sqrt(mpmath.fsum(v**2 for v in diff))


@pytest.mark.parametrize("case", sorted(CASES))
def test_rkhs_norm_bounds_hold_in_50_digit_arithmetic(case):
    _, centers, A, _, gamma = CASES[case]()
    norms = pair_rkhs_norms(expansion_rkhs_gram(centers, A, gamma), centers, A, gamma)
    Cm, Am, g = _mp(centers), _mp(A), mpmath.mpf(float(gamma))
    K = [
        [
            mpmath.exp(
                -g * mpmath.fsum((u - v) ** 2 for u, v in zip(ci, cj, strict=True))
            )
            for cj in Cm
        ]
        for ci in Cm
    ]
    for c in range(len(Am)):
        for j in range(len(Am)):
            if c == j:
                continue
            beta = [u - v for u, v in zip(Am[c], Am[j], strict=True)]
            sq = mpmath.fsum(
                beta[r] * K[r][s] * beta[s]
                for r in range(len(beta))
                for s in range(len(beta))
            )
            exact = mpmath.sqrt(max(sq, 0))
            assert norms[c, j] >= exact
            # and not vacuous: within a factor 1e3 of the exact norm, or of
            # the rounding floor when the norm itself is below it.
            floor = np.sqrt(64 * np.finfo(float).eps) * np.abs(A).sum()
            assert norms[c, j] <= 1e3 * max(float(exact), floor)


def _exact_hessian(x, centers, beta, gamma):
    """``Hess g(x) = sum_r beta_r k_r (4 gamma^2 u_r u_r^T - 2 gamma I)``."""
    g, d = mpmath.mpf(float(gamma)), len(x)
    H = mpmath.zeros(d, d)
    for c, b in zip(centers, beta, strict=True):
        u = [xi - ci for xi, ci in zip(x, c, strict=True)]
        k = mpmath.exp(-g * mpmath.fsum(v**2 for v in u))
        for p in range(d):
            for q in range(d):
                H[p, q] += b * k * (4 * g**2 * u[p] * u[q] - (2 * g if p == q else 0))
    return H


@pytest.mark.parametrize("case", sorted(CASES))
def test_hessian_eigenvalue_bounds_hold_in_50_digit_arithmetic(case):
    X, centers, A, b, gamma = CASES[case]()
    X = np.asarray(X, dtype=np.float64)[:4]
    rows = _Rows(_Expansion(centers, A, b, gamma, None), X)
    lower = rows.hessian_lower_bounds(np.arange(len(X)))
    Xm, Cm, Am = _mp(X), _mp(centers), _mp(A)
    for i, x in enumerate(Xm):
        c = int(rows.c[i])
        for j in range(len(Am)):
            if j == c:
                continue
            beta = [u - v for u, v in zip(Am[c], Am[j], strict=True)]
            eig = min(mpmath.eigsy(_exact_hessian(x, Cm, beta, gamma))[0])
            assert lower[i, j] <= min(eig, 0)
