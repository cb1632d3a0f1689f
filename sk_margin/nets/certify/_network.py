"""Certified l2 radii of torch networks: global and local bounds combined.

:func:`certify_network` puts together the radius formulas of
:mod:`sk_margin.certify`, the sound Lipschitz bounds of
:mod:`sk_margin.nets.certify._lipschitz` and the local bound of one-hidden-layer
networks (:mod:`sk_margin.nets.certify._local`), for a network in eval mode and
float64.
"""

import numpy as np
import torch
from sklearn.utils import gen_batches
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from sk_margin._validation import check_method
from sk_margin.certify import (
    cross_lipschitz_radius,
    linf_lipschitz_radius,
    lipschitz_margin_radius,
)
from sk_margin.margins import logit_margin
from sk_margin.nets.certify._bound_propagation import BoundPropagation
from sk_margin.nets.certify._lipschitz import lipschitz_bound, network_lipschitz_bounds
from sk_margin.nets.certify._local import local_quadratic_radius, one_hidden_layer
from sk_margin.nets.certify._propagation_rules import unsupported_layer

__all__ = ["CERTIFY_METHODS", "certify_network"]

#: The certify methods of networks.
CERTIFY_METHODS = (
    "auto",
    "global_pairwise",
    "global_l2",
    "global_linf",
    "local_quadratic",
    "bound_propagation",
)
# Former names, accepted with a FutureWarning.
_RENAMED = {
    "pairwise": "global_pairwise",
    "tsuzuku": "global_l2",
    "kesidis": "global_linf",
    "local": "local_quadratic",
}


def certify_network(
    module, X, input_shape, method="auto", *, batch_size=1024, progress=False
):
    """Certified l2 radius per sample of a network's arg-max decision.

    With ``c`` the predicted class, ``g_j = f_c - f_j``, ``mu`` the logit
    margin ``min_j g_j``, ``h`` the network before its last ``nn.Linear``
    layer and ``w_j`` the rows of that layer's weight:

    ``"global_pairwise"``
        ``min_j g_j / L_cj`` with ``L_cj = ||w_c - w_j|| Lip(h)``: Theorem
        2.1 of Hein & Andriushchenko (2017) with the global cross-Lipschitz
        constant of their Section 5. Needs a final ``nn.Linear``; exact for
        a linear network.
    ``"global_l2"``
        ``mu / (sqrt(2) L)`` with ``L`` the l2 Lipschitz bound of the whole
        network (Tsuzuku, Sato & Sugiyama 2018). Any supported network.
    ``"global_linf"``
        ``mu / (2 L_inf)`` with ``L_inf = max_j ||w_j|| Lip(h)``, an
        l2 -> l_inf Lipschitz bound (Kesidis, Miller & Xiang, Theorem 2.1).
        Needs a final ``nn.Linear``.
    ``"local_quadratic"``
        Theorem 2.1 with the local bound of Proposition 2.2 of Hein &
        Andriushchenko, a quadratic form in the slopes of the hidden units on
        the ball (biases included), maximised over the ball radius by
        bisection. One-hidden-layer networks only: ``Linear -> activation ->
        Linear`` (ReLU, LeakyReLU, Softplus, Tanh, Sigmoid).
    ``"bound_propagation"``
        Linear bound propagation from the l2 ball (CROWN, Zhang et al. 2018;
        Fast-Lin, Weng et al. 2018): every activation enclosed between two
        lines on the interval its inputs take over the ball (the tighter of
        the backward passes' and the global Lipschitz bounds' intervals), the margins'
        lower bounds carried back to the input, where a linear function's
        minimum over ``B(x, r)`` is ``a^T x + b - r ||a||_2``. Where those
        bounds fail, the same intervals give a local Lipschitz constant of
        every margin on the ball, each stable neuron's slope fixed (the deep
        form of Proposition 2.2; Fast-Lip, Weng et al. 2018), and Theorem
        2.1 of Hein & Andriushchenko. The radius is the largest ``r`` at
        which either proves the decision constant, to a relative precision
        of 0.5%: a propagation for the ball of radius ``R`` holds on every
        smaller ball and proves ``min(R, psi(R))``, and the search looks for
        the fixed point ``psi(R) = R``. The intervals of a ReLU layer are
        tightened only where a neuron can change state; those of a
        convolutional ReLU layer by backward rows shared by the neurons whose
        windows never overlap. Any network of ``nn.Linear``,
        ``nn.Conv2d``,
        batch norms, average pooling, ``nn.MaxPool2d`` without padding,
        shape and dropout layers, ReLU, LeakyReLU, Softplus, Tanh or
        Sigmoid activations, and pair sorts
        (:class:`~sk_margin.nets.MaxMin`, deel-torchlip's ``GroupSort2``).
        On networks that are 1-Lipschitz by construction it rarely beats
        ``"global_pairwise"``: their gradients have the same norm
        everywhere, so the global bound is exact up to curvature.
    ``"auto"``
        Per row, the largest of those available (each is sound, so their
        maximum is); bound propagation starts from the largest of the others
        and only ever raises it. It is left out of ``"auto"`` where the
        intervals of some layer would come from interval arithmetic (wide
        convolution layers before max pooling, pair sorts or smooth
        activations), which rarely beats the global bounds, and for rows
        where the distance to the linearised margins (what a propagation at
        radius 0 proves) does not exceed the radius already certified.

    Every Lipschitz constant is a sound upper bound (:func:`lipschitz_bound`,
    :func:`linf_lipschitz_bound`, :func:`pairwise_lipschitz_bounds`), never
    a power-iteration estimate.

    Parameters
    ----------
    module : torch.nn.Module
        The network, float64 and in eval mode; it outputs logits.
    X : ndarray of shape (n_samples, ...)
        Points to certify, float64, each of shape ``input_shape``.
    input_shape : tuple of int
        Shape of one input sample (for the convolution bounds).
    method : {"auto", "global_pairwise", "global_l2", "global_linf", \
            "local_quadratic", "bound_propagation"}, default="auto"
        Which certificate. The former names ``"pairwise"``, ``"tsuzuku"``,
        ``"kesidis"`` and ``"local"`` still work, with a FutureWarning.
    batch_size : int, default=1024
        Rows per batch; the network-wide bounds are computed once. Bound
        propagation takes at most the rows it bounds at once (tens, for
        networks that cost seconds per row), so the progress bar moves.
    progress : bool, default=False
        Show a progress bar (tqdm, on stderr) over the rows.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        0 where the two top logits tie.
    """
    method = check_method(method, CERTIFY_METHODS, _RENAMED, "certify")
    X = np.asarray(X, dtype=np.float64)
    # Parametrized weights (orthogonal, spectrally normalised) are computed
    # once for the whole call, not at every use.
    with parametrize.cached():
        return _certify(module, X, input_shape, method, batch_size, progress)


def _certify(module, X, input_shape, method, batch_size, progress):
    L2 = Linf = pair = None
    if method in ("global_pairwise", "global_linf", "auto"):
        # One pass over the layers gives all three global bounds.
        L2, Linf, pair = network_lipschitz_bounds(module, input_shape)
    elif method == "global_l2":  # needs no final nn.Linear
        L2 = lipschitz_bound(module, input_shape)
    local = method == "local_quadratic" or (
        method == "auto" and one_hidden_layer(module) is not None
    )
    propagate = None
    if method == "bound_propagation":
        propagate = BoundPropagation(module, input_shape)
    elif method == "auto" and unsupported_layer(module) is None:
        propagate = BoundPropagation(module, input_shape)
        if not propagate.backward_everywhere:
            propagate = None  # interval arithmetic would rarely beat the rest
    if propagate is not None:
        # Bound propagation costs up to seconds per row: batches of the rows
        # it bounds at once, so that the progress bar moves.
        batch_size = min(batch_size, propagate.rows_per_call())
    radius = np.empty(len(X))
    with tqdm(total=len(X), desc="certify", unit="rows", disable=not progress) as bar:
        for batch in gen_batches(len(X), batch_size):
            radius[batch] = _certify_batch(
                module, X[batch], method, L2, Linf, pair, local, propagate
            )
            bar.update(batch.stop - batch.start)
    return radius


def _certify_batch(module, X, method, L2, Linf, pair, local, propagate):
    with torch.no_grad():
        scores = module(torch.from_numpy(np.array(X))).numpy()
    margin = logit_margin(scores)
    radii = []
    if method in ("global_pairwise", "auto"):
        radii.append(cross_lipschitz_radius(scores, pair))
    if method in ("global_l2", "auto"):
        radii.append(lipschitz_margin_radius(margin, L2))
    if method in ("global_linf", "auto"):
        radii.append(linf_lipschitz_radius(margin, Linf))
    if local:
        radii.append(local_quadratic_radius(module, X))
    known = np.max(np.stack(radii), axis=0) if radii else None
    if propagate is not None:
        return propagate.radius(X, lower=known)
    return known
