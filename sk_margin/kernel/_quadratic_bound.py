"""The local quadratic gradient bound of Gaussian-kernel expansions.

Proposition 2.1 of Hein & Andriushchenko (2017).

A sound upper bound of ``max_{y in B(x, R)} ||grad g(y)||_2`` for
``g(y) = sum_r beta_r exp(-gamma ||y - c_r||^2)``, with the index sets of the
proposition corrected (see :func:`quadratic_gradient_bound`). Used by
:func:`sk_margin.kernel.certify_gaussian_expansion`
(``method="local_quadratic"``).
"""

import numpy as np
from scipy.spatial.distance import cdist

__all__ = ["QuadraticGradientBound", "quadratic_gradient_bound"]


def quadratic_gradient_bound(x, centers, gamma):
    """Hein & Andriushchenko (2017), Proposition 2.1, for one point ``x``.

    Returns a callable ``bound(R, beta)`` giving, for a radius ``R`` and a
    coefficient matrix ``beta`` of shape (n_pairs, n_centers), upper bounds of
    ``max_{y in B(x, R)} ||grad g(y)||_2`` for each row of ``beta``. The
    quantities that depend only on ``x`` are computed once; each call costs
    ``O(m^2)`` elementwise work plus three matrix products. To certify many
    points, build one :class:`QuadraticGradientBound` and call its ``at(x)``.

    Parameters
    ----------
    x : ndarray of shape (n_features,)
        The point to certify.
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    gamma : float
        Kernel width parameter.

    Returns
    -------
    bound : QuadraticGradientBound
        Callable as ``bound(R, beta) -> ndarray of shape (n_pairs,)``.

    Notes
    -----
    With ``y = x + delta``, ``||delta|| = t <= R`` (paper eq. 3 and the
    Gaussian kernel),

    ``||grad g(y)||^2 = 4 gamma^2 sum_{r,s} beta_r beta_s P_rs(y) E_rs(y)``,
    ``P_rs(y) = <y - c_r, y - c_s>``, ``E_rs(y) = exp(-gamma (||y - c_r||^2 +
    ||y - c_s||^2))``.

    Write ``p = <x - c_r, x - c_s>``, ``e = ||x - c_r||^2 + ||x - c_s||^2``,
    ``S = ||2x - c_r - c_s||``. Then ``P_rs = p + <delta, 2x - c_r - c_s> +
    t^2`` and the exponent is ``e + 2 <delta, 2x - c_r - c_s> + 2 t^2``; by
    Cauchy-Schwarz, over the ball,

    * ``P_rs <= p + R S + R^2 =: P+`` and ``P_rs >= min_{t <= R} p - t S + t^2
      = p - M S + M^2 =: P-`` with ``M = min(S / 2, R)``;
    * ``E_rs <= exp(-gamma (e - 2 M S + 2 M^2)) =: E+`` and
      ``E_rs >= exp(-gamma (e + 2 R S + 2 R^2)) =: E-``.

    For a pair with ``beta_r beta_s >= 0`` the term is at most
    ``beta_r beta_s max_y P E <= beta_r beta_s (max(P+, 0) E+ + min(P+, 0) E-)``
    (if ``P+ < 0`` then ``P E <= P+ E-``). For a pair with
    ``beta_r beta_s < 0`` we need a *lower* bound of ``P E``:
    ``P E >= max(P-, 0) E- + min(P-, 0) E+``. This is the paper's
    Proposition 2.1 with its two sums read as running over the pairs with
    ``beta_r beta_s >= 0`` and ``beta_r beta_s < 0`` respectively. The text we
    have indexes them by "``beta_r, beta_s >= 0``" and "``beta_r, beta_s <
    0``", which would drop the mixed-sign pairs and is not a valid bound. With
    ``beta = beta+ - beta-`` the same-sign pairs give
    ``beta+^T U beta+ + beta-^T U beta-`` and the mixed pairs
    ``-2 beta+^T L beta-``, where ``U`` and ``L`` are the bracket matrices;
    they do not depend on the class pair, so all pairs are evaluated with the
    same two matrices.
    """
    return QuadraticGradientBound(centers, gamma).at(x)


class QuadraticGradientBound:
    """Proposition 2.1 of Hein & Andriushchenko (2017), point after point.

    Holds what depends only on the centres (their pairwise squared distances)
    and the m-by-m work arrays, so that certifying many points allocates
    nothing per point. See :func:`quadratic_gradient_bound` for the bound and
    its derivation.

    Parameters
    ----------
    centers : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    gamma : float
        Kernel width parameter.
    """

    def __init__(self, centers, gamma):
        self.centers = np.asarray(centers, dtype=np.float64)
        self.gamma = float(gamma)
        self._center_sq_dist = cdist(self.centers, self.centers, "sqeuclidean")
        m = self.centers.shape[0]
        (
            self._ip,
            self._S,
            self._z,
            self._w,
            self._M,
            self._tmp,
            self._U,
            self._L,
            self._grow,
        ) = (np.empty((m, m)) for _ in range(9))
        self._mask = np.empty((m, m), dtype=bool)
        self._k = None

    def at(self, x):
        """Prepare the bound for the point ``x``.

        Parameters
        ----------
        x : ndarray of shape (n_features,)
            The point to certify.

        Returns
        -------
        self : QuadraticGradientBound
            Ready to be called.
        """
        sq = cdist(np.asarray(x, dtype=np.float64)[None], self.centers, "sqeuclidean")[
            0
        ]
        # <x - c_r, x - c_s> = (|x - c_r|^2 + |x - c_s|^2 - |c_r - c_s|^2) / 2
        # and S^2 = |2x - c_r - c_s|^2 = 2 |x - c_r|^2 + 2 |x - c_s|^2 - |c_r - c_s|^2.
        np.add(sq[:, None], sq[None, :], out=self._ip)
        np.multiply(self._ip, 2.0, out=self._S)
        np.subtract(self._S, self._center_sq_dist, out=self._S)
        np.maximum(self._S, 0.0, out=self._S)
        np.sqrt(self._S, out=self._S)
        np.subtract(self._ip, self._center_sq_dist, out=self._ip)
        np.multiply(self._ip, 0.5, out=self._ip)
        # exp(-gamma e) = k(c_r, x) k(c_s, x) is folded into the coefficients.
        self._k = np.exp(-self.gamma * sq)
        return self

    def __call__(self, R, beta):
        """Upper bounds of ``max_{y in B(x, R)} ||grad g(y)||_2``.

        Parameters
        ----------
        R : float
            Ball radius.
        beta : ndarray of shape (n_pairs, n_centers)
            Coefficients of ``g`` for each class pair.

        Returns
        -------
        ndarray of shape (n_pairs,)
            One bound per row of ``beta``.
        """
        if self._k is None:
            raise RuntimeError("Call at(x) before evaluating the bound.")
        R, gamma = float(R), self.gamma
        ip, S, z, w, M, tmp = self._ip, self._S, self._z, self._w, self._M, self._tmp
        U, L, grow, mask = self._U, self._L, self._grow, self._mask
        # On the ball: P+ = p + z, E- = exp(-gamma e) exp(-2 gamma z) with
        # z = R S + R^2 >= 0; P- = p + w, E+ = exp(-gamma e) exp(-2 gamma w)
        # with w = M^2 - M S <= 0 and M = min(S / 2, R).
        np.multiply(S, R, out=z)
        np.add(z, R * R, out=z)
        np.multiply(S, 0.5, out=M)
        np.minimum(M, R, out=M)
        np.subtract(M, S, out=w)
        np.multiply(w, M, out=w)
        np.multiply(w, -2.0 * gamma, out=grow)
        np.exp(grow, out=grow)  # E+ / exp(-gamma e)
        np.multiply(z, -2.0 * gamma, out=tmp)
        np.exp(tmp, out=tmp)  # E- / exp(-gamma e)
        np.add(ip, z, out=z)  # P+
        np.add(ip, w, out=w)  # P-
        np.greater_equal(z, 0.0, out=mask)
        np.copyto(U, tmp)
        np.copyto(U, grow, where=mask)
        np.multiply(U, z, out=U)  # max(P+, 0) E+ + min(P+, 0) E-
        np.greater_equal(w, 0.0, out=mask)
        np.copyto(L, grow)
        np.copyto(L, tmp, where=mask)
        np.multiply(L, w, out=L)  # max(P-, 0) E- + min(P-, 0) E+
        bk = np.asarray(beta, dtype=np.float64) * self._k
        bp, bn = np.maximum(bk, 0.0), np.maximum(-bk, 0.0)
        sq_norm = (
            np.einsum("km,km->k", bp @ U, bp)
            + np.einsum("km,km->k", bn @ U, bn)
            - 2.0 * np.einsum("km,km->k", bp @ L, bn)
        )
        return 2.0 * gamma * np.sqrt(np.maximum(sq_norm, 0.0))
