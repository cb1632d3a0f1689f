"""Local cross-Lipschitz certificates of one-hidden-layer networks.

Hein & Andriushchenko (2017), Theorem 2.1 with the local bound of
Proposition 2.2, for networks ``f(x) = W s(U x + b) + c`` (``nn.Linear``,
activation, ``nn.Linear``; ``nn.Flatten``, ``nn.Identity`` and ``nn.Dropout``
are allowed around them). Unlike the global bounds of :mod:`sk_margin.nets`,
the bound adapts to the ball around each input: hidden units that cannot
switch on inside the ball do not count.
"""

import numpy as np
import torch
from torch import nn

from sk_margin.certify import BISECTION_STEPS, ROUNDING_SLACK, local_lipschitz_radius
from sk_margin.margins import score_gaps
from sk_margin.nets.certify._layers import sequential_layers

__all__ = [
    "derivative_range",
    "hidden_layers",
    "local_quadratic_radius",
    "one_hidden_layer",
]

_PASSTHROUGH = (nn.Flatten, nn.Identity, nn.Dropout)
_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Softplus, nn.Tanh, nn.Sigmoid)


def hidden_layers(module):
    """The layers ``(first Linear, activation, last Linear)`` of a one-hidden-layer net.

    Parameters
    ----------
    module : nn.Module
        ``[Flatten] -> Linear -> activation -> [Dropout] -> Linear`` as an
        ``nn.Sequential``, with any of ``nn.Flatten``, ``nn.Identity`` and
        ``nn.Dropout`` in between; the activation is ``nn.ReLU``,
        ``nn.LeakyReLU`` (slope in [0, 1]), ``nn.Softplus``, ``nn.Tanh`` or
        ``nn.Sigmoid``.

    Returns
    -------
    layers : tuple or None
        The three layers, or None when the network has another form.
    """
    walked = sequential_layers(module, check_hooks=False)
    layers = [m for _, m in walked if not isinstance(m, _PASSTHROUGH)]
    if not (
        len(layers) == 3
        and isinstance(layers[0], nn.Linear)
        and isinstance(layers[1], _ACTIVATIONS)
        and isinstance(layers[2], nn.Linear)
    ):
        return None
    if isinstance(layers[1], nn.LeakyReLU) and not 0 <= layers[1].negative_slope <= 1:
        return None
    return tuple(layers)


def one_hidden_layer(module):
    """The parts ``(U, b, activation, W, c)`` of a one-hidden-layer network.

    Parameters
    ----------
    module : nn.Sequential
        ``[Flatten] -> Linear -> activation -> [Dropout] -> Linear``, with any
        of ``nn.Flatten``, ``nn.Identity`` and ``nn.Dropout`` in between (see
        :func:`hidden_layers`).

    Returns
    -------
    parts : tuple or None
        ``(U, b, activation, W, c)`` as float64 numpy arrays (and the
        activation layer), or None when the network has another form.
    """
    layers = hidden_layers(module)
    if layers is None:
        return None
    first, act, last = layers

    def arrays(layer):
        W = layer.weight.detach().double().cpu().numpy()
        b = layer.bias
        b = np.zeros(W.shape[0]) if b is None else b.detach().double().cpu().numpy()
        return W, b

    U, b = arrays(first)
    W, c = arrays(last)
    return U, b, act, W, c


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def derivative_range(activation, lo, hi):
    """Exact range of the activation's derivative over ``[lo, hi]``.

    Every supported activation has a non-negative derivative, so the products
    in Proposition 2.2 are bounded by the products of these ranges. ReLU and
    LeakyReLU take both one-sided derivatives at 0 into account.

    Parameters
    ----------
    activation : nn.Module
        ``nn.ReLU``, ``nn.LeakyReLU`` (slope in [0, 1]), ``nn.Softplus``,
        ``nn.Tanh`` or ``nn.Sigmoid``.
    lo, hi : ndarray
        Interval ends of the pre-activations, ``lo <= hi``.

    Returns
    -------
    smallest, largest : ndarray
        Bounds of the derivative on the interval, elementwise.
    """
    if isinstance(activation, nn.ReLU | nn.LeakyReLU):
        slope = getattr(activation, "negative_slope", 0.0)
        return np.where(lo > 0, 1.0, slope), np.where(hi >= 0, 1.0, slope)
    if isinstance(activation, nn.Softplus):
        # d/dz log(1 + exp(beta z)) / beta = sigmoid(beta z), increasing; torch
        # switches to the identity (derivative 1) above the threshold.
        beta, threshold = activation.beta, activation.threshold
        largest = np.where(beta * hi > threshold, 1.0, _sigmoid(beta * hi))
        return _sigmoid(beta * lo), largest
    if isinstance(activation, nn.Tanh | nn.Sigmoid):
        if isinstance(activation, nn.Tanh):

            def deriv(z):
                return 1.0 - np.tanh(z) ** 2
        else:

            def deriv(z):
                return _sigmoid(z) * (1.0 - _sigmoid(z))

        # Both derivatives are even and decrease in |z|.
        largest = deriv(np.clip(0.0, lo, hi))
        return np.minimum(deriv(lo), deriv(hi)), largest
    raise TypeError(f"No derivative range for {type(activation).__name__}.")


def local_quadratic_radius(module, X, *, n_steps=BISECTION_STEPS):
    """Certified radii of Hein & Andriushchenko: Theorem 2.1 with Proposition 2.2.

    For ``g = f_c - f_j`` with ``d = w_c - w_j`` (rows of the last layer),
    ``||grad g(y)||^2 = sum_{r,m} beta_rm s'(u_r.y + b_r) s'(u_m.y + b_m)``,
    ``beta_rm = d_r d_m <u_r, u_m>`` (the paper's eq. 4, with the biases
    ``b``). On the ball ``B(x, R)`` the pre-activation of unit ``r`` lies in
    ``[z_r - R ||u_r||, z_r + R ||u_r||]``, ``z_r = u_r.x + b_r``; with ``s'``
    non-negative and its range ``[lo_r, hi_r]`` there (:func:`derivative_range`),
    ``||grad g(y)||^2 <= sum_{r,m} max(beta_rm, 0) hi_r hi_m + min(beta_rm, 0)
    lo_r lo_m`` (Proposition 2.2, which states it for monotone ``s'``, where
    ``hi_r = s'(z_r + R||u_r||)`` and ``lo_r = s'(z_r - R||u_r||)``). The
    largest ``R`` with ``min_j g_j(x) / L_j(R) >= R`` is found by bisection.

    Parameters
    ----------
    module : nn.Sequential
        A one-hidden-layer network (see :func:`one_hidden_layer`), in eval
        mode.
    X : ndarray of shape (n_samples, n_features)
        Points to certify, float64.
    n_steps : int, default=BISECTION_STEPS
        Bisection steps over ``R``.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Certified radii; 0 where the two top logits tie.
    """
    parts = one_hidden_layer(module)
    if parts is None:
        raise ValueError(
            "The local certificate needs a one-hidden-layer network "
            "Linear -> activation (ReLU, LeakyReLU, Softplus, Tanh, Sigmoid) -> "
            "Linear; use method='global_pairwise' for other networks."
        )
    U, b, act, W, c = parts
    X = np.asarray(X, dtype=np.float64).reshape(len(X), -1)
    Z = X @ U.T + b  # pre-activations
    with torch.no_grad():
        scores = module(torch.from_numpy(np.array(X))).numpy()
    gaps, pred = score_gaps(scores)
    norms_u = np.linalg.norm(U, axis=1)
    gram = U @ U.T
    radius = np.zeros(len(X))
    for cls in np.unique(pred):
        rows = np.flatnonzero(pred == cls)
        D = W[cls] - W  # (K, U): d for every pair (cls, j)
        beta = D[:, :, None] * D[:, None, :] * gram  # (K, U, U)
        pos, neg = np.maximum(beta, 0.0), np.minimum(beta, 0.0)

        def local(R, idx, rows=rows, pos=pos, neg=neg):
            z = Z[rows[idx]]
            spread = R[:, None] * norms_u
            lo, hi = derivative_range(act, z - spread, z + spread)
            sq = np.einsum("kum,nu,nm->nk", pos, hi, hi, optimize=True)
            sq += np.einsum("kum,nu,nm->nk", neg, lo, lo, optimize=True)
            return np.sqrt(np.maximum(sq, 0.0))

        with np.errstate(divide="ignore", invalid="ignore"):
            grad0 = local(np.zeros(len(rows)), np.arange(len(rows)))
            upper = np.where(gaps[rows] > 0, gaps[rows] / grad0, 0.0).min(axis=1)
        radius[rows] = local_lipschitz_radius(gaps[rows], local, upper, n_steps=n_steps)
    return radius * (1.0 - ROUNDING_SLACK)
