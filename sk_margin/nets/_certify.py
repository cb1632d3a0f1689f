"""Certified l2 radii of torch networks: global and local bounds combined.

The radius formulas are in :mod:`sk_margin.certify`, the sound Lipschitz
bounds in :mod:`sk_margin.nets` and the local bound of one-hidden-layer
networks in :mod:`sk_margin.nets`; :func:`certify_network` puts them together
for a network in eval mode and float64.
"""

import numpy as np
import torch
from sklearn.utils import gen_batches
from tqdm.auto import tqdm

from sk_margin.certify import (
    cross_lipschitz_radius,
    kesidis_radius,
    lipschitz_margin_radius,
)
from sk_margin.margins import logit_margin
from sk_margin.nets._lipschitz import lipschitz_bound, network_lipschitz_bounds
from sk_margin.nets._local import local_radius, one_hidden_layer

__all__ = ["NET_CERTIFY_METHODS", "certify_network"]

NET_CERTIFY_METHODS = ("auto", "pairwise", "tsuzuku", "kesidis", "local")


def certify_network(
    module, X, input_shape, method="auto", *, batch_size=1024, progress=False
):
    """Certified l2 radius per sample of a network's arg-max decision.

    * ``"pairwise"``: ``min_{j != c} (f_c - f_j) / L_cj`` with the
      per-class-pair bound ``L_cj <= ||w_c - w_j|| prod_{l<L} ||W_l||``
      (Hein & Andriushchenko 2017, Theorem 2.1 and Section 5);
    * ``"tsuzuku"``: ``mu / (sqrt(2) L)`` (Tsuzuku et al. 2018);
    * ``"kesidis"``: ``mu / (2 L_inf)`` (Kesidis et al., Theorem 2.1);
    * ``"local"``: for one-hidden-layer networks only, Theorem 2.1 with the
      local bound of Proposition 2.2 (bias included), maximised over the ball
      radius by bisection (:func:`sk_margin.nets.local_radius`);
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
    batch_size : int, default=1024
        Rows per batch; the network-wide bounds are computed once.
    progress : bool, default=False
        Show a progress bar (tqdm, on stderr) over the rows.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        0 where the two top logits tie.
    """
    if method not in NET_CERTIFY_METHODS:
        raise ValueError(
            f"method must be one of {NET_CERTIFY_METHODS}, got {method!r}."
        )
    X = np.asarray(X, dtype=np.float64)
    L2 = Linf = pair = None
    if method in ("pairwise", "kesidis", "auto"):
        # One pass over the layers gives all three global bounds.
        L2, Linf, pair = network_lipschitz_bounds(module, input_shape)
    elif method == "tsuzuku":  # needs no final nn.Linear
        L2 = lipschitz_bound(module, input_shape)
    local = method == "local" or (method == "auto" and one_hidden_layer(module))
    radius = np.empty(len(X))
    with tqdm(total=len(X), desc="certify", unit="rows", disable=not progress) as bar:
        for batch in gen_batches(len(X), batch_size):
            radius[batch] = _certify_batch(
                module, X[batch], method, L2, Linf, pair, local
            )
            bar.update(batch.stop - batch.start)
    return radius


def _certify_batch(module, X, method, L2, Linf, pair, local):
    with torch.no_grad():
        scores = module(torch.from_numpy(np.array(X))).numpy()
    margin = logit_margin(scores)
    radii = []
    if method in ("pairwise", "auto"):
        radii.append(cross_lipschitz_radius(scores, pair))
    if method in ("tsuzuku", "auto"):
        radii.append(lipschitz_margin_radius(margin, L2))
    if method in ("kesidis", "auto"):
        radii.append(kesidis_radius(margin, Linf))
    if local:
        radii.append(local_radius(module, X))
    return np.max(np.stack(radii), axis=0)
