"""Certified l2 radii of torch networks: global and local bounds combined.

The radius formulas are in :mod:`sk_margin.certify`, the sound Lipschitz
bounds in :mod:`sk_margin.lipschitz` and the local bound of one-hidden-layer
networks in :mod:`sk_margin.local`; :func:`certify_network` puts them together
for a network in eval mode and float64.
"""

import numpy as np
import torch

from sk_margin.certify import (
    cross_lipschitz_radius,
    kesidis_radius,
    lipschitz_margin_radius,
)
from sk_margin.lipschitz import lipschitz_bound, network_lipschitz_bounds
from sk_margin.local import local_radius, one_hidden_layer
from sk_margin.margins import logit_margin

__all__ = ["NET_CERTIFY_METHODS", "certify_network"]

NET_CERTIFY_METHODS = ("auto", "pairwise", "tsuzuku", "kesidis", "local")


def certify_network(module, X, input_shape, method="auto"):
    """Certified l2 radius per sample of a network's arg-max decision.

    * ``"pairwise"``: ``min_{j != c} (f_c - f_j) / L_cj`` with the
      per-class-pair bound ``L_cj <= ||w_c - w_j|| prod_{l<L} ||W_l||``
      (Hein & Andriushchenko 2017, Theorem 2.1 and Section 5);
    * ``"tsuzuku"``: ``mu / (sqrt(2) L)`` (Tsuzuku et al. 2018);
    * ``"kesidis"``: ``mu / (2 L_inf)`` (Kesidis et al., Theorem 2.1);
    * ``"local"``: for one-hidden-layer networks only, Theorem 2.1 with the
      local bound of Proposition 2.2 (bias included), maximised over the ball
      radius by bisection (:func:`sk_margin.local.local_radius`);
    * ``"auto"``: per row, the largest of those available (each is sound, so
      their maximum is).

    Parameters
    ----------
    module : torch.nn.Module
        The network, float64 and in eval mode; it outputs logits.
    X : ndarray of shape (n_samples, ...)
        Points to certify, float64, each of shape ``input_shape``.
    input_shape : tuple of int
        Shape of one input sample (for the convolution bounds).
    method : {"auto", "pairwise", "tsuzuku", "kesidis", "local"}, \
            default="auto"
        Which certificate.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        0 where the two top logits tie.
    """
    if method not in NET_CERTIFY_METHODS:
        raise ValueError(
            f"method must be one of {NET_CERTIFY_METHODS}, got {method!r}."
        )
    with torch.no_grad():
        scores = module(torch.from_numpy(np.array(X, dtype=np.float64))).numpy()
    margin = logit_margin(scores)
    radii = {}
    if method in ("pairwise", "kesidis", "auto"):
        # One pass over the layers gives all three global bounds.
        L2, Linf, pair = network_lipschitz_bounds(module, input_shape)
    elif method == "tsuzuku":  # needs no final nn.Linear
        L2 = lipschitz_bound(module, input_shape)
    if method in ("pairwise", "auto"):
        radii["pairwise"] = cross_lipschitz_radius(scores, pair)
    if method in ("tsuzuku", "auto"):
        radii["tsuzuku"] = lipschitz_margin_radius(margin, L2)
    if method in ("kesidis", "auto"):
        radii["kesidis"] = kesidis_radius(margin, Linf)
    if method == "local" or (method == "auto" and one_hidden_layer(module)):
        radii["local"] = local_radius(module, X)
    return np.max(np.stack(list(radii.values())), axis=0)
