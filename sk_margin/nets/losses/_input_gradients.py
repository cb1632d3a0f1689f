"""Input gradients of a network, for the losses that penalise them.

The Cross-Lipschitz regulariser (Hein & Andriushchenko, eq. 6) and the
gradient-difference penalty of Matyasko & Chau need ``grad_x f_k(x)`` for every
class ``k``. For any network :func:`input_gradients` takes them from autograd:
one backward pass per class, with ``create_graph=True`` so that the penalty
can be differentiated again (double back-propagation), which costs about ``K``
times a training step.

For one-hidden-layer networks ``f(x) = W s(U x + b) + c`` the gradients are
``grad_x f_k(x) = U^T diag(s'(z)) w_k`` (``z = U x + b``), so the penalties
have closed forms that avoid the ``K`` backward passes. They only need the
hidden activations ``a = s(z)`` (the input of the last ``nn.Linear``, which
the network hands to losses as ``features``) because each supported
activation's derivative is a function of its output
(:func:`activation_derivative`). Autograd through these forms gives the same
gradients as double back-propagation.
"""

import torch
from torch import nn

from sk_margin.nets.certify._local import hidden_layers

__all__ = [
    "activation_derivative",
    "centred_gradient_spread",
    "closed_form_layers",
    "max_gradient_difference",
    "input_gradients",
]


def input_gradients(logits, X, name="The loss", *, create_graph=None):
    """``G[i, k] = grad_x f_k(x_i)`` by autograd, flattened to shape (n, K, d).

    One backward pass per class on ``logits[:, k].sum()``: this is the
    per-sample gradient as long as samples do not interact in the forward pass
    (true for eval-mode networks; BatchNorm in training mode couples them).

    Parameters
    ----------
    logits : torch.Tensor of shape (n, K)
        Output of the network on ``X``.
    X : torch.Tensor
        The input batch, with ``requires_grad`` set before the forward pass.
    name : str, default="The loss"
        Named in the error messages.
    create_graph : bool, default=None
        Keep the graph of the gradients (for double back-propagation); None
        keeps it when gradients are enabled.

    Returns
    -------
    G : torch.Tensor of shape (n, K, d)
        Input gradients, ``d`` the number of input entries per sample.
    """
    if not isinstance(X, torch.Tensor) or not X.requires_grad:
        raise ValueError(
            f"{name} differentiates the logits w.r.t. the input: pass X, call "
            "X.requires_grad_(True) before the forward pass and keep gradients "
            "enabled (needs_input_grad is True)."
        )
    if not logits.requires_grad:
        raise ValueError(
            f"{name}: the logits do not depend on X through autograd; run the "
            "forward pass with gradients enabled."
        )
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    n = logits.shape[0]
    grads = []
    for k in range(logits.shape[1]):
        (g,) = torch.autograd.grad(
            logits[:, k].sum(),
            X,
            create_graph=create_graph,
            retain_graph=True,
            materialize_grads=True,
        )
        grads.append(g.reshape(n, -1))
    return torch.stack(grads, 1)


def closed_form_layers(module):
    """``(first Linear, activation, last Linear)`` when the closed forms apply.

    Parameters
    ----------
    module : nn.Module
        The network.

    Returns
    -------
    layers : tuple or None
        The three layers of a one-hidden-layer network (see
        :func:`sk_margin.nets.one_hidden_layer`), or None for other networks
        and for a network with an active ``nn.Dropout`` (training mode,
        ``p > 0``), whose random mask the closed forms do not see.
    """
    layers = hidden_layers(module)
    if layers is None:
        return None
    if any(
        isinstance(m, nn.Dropout) and m.training and m.p > 0 for m in module.modules()
    ):
        return None
    return layers


def activation_derivative(activation, a):
    """``s'(z)`` expressed through the activation's output ``a = s(z)``.

    ReLU: ``1[a > 0]``; LeakyReLU (slope ``m`` in [0, 1]): ``1`` if ``a > 0``
    else ``m``; Softplus (``beta``): ``sigmoid(beta z) = 1 - exp(-beta a)``;
    tanh: ``1 - a^2``; sigmoid: ``a (1 - a)``.

    Parameters
    ----------
    activation : nn.Module
        ``nn.ReLU``, ``nn.LeakyReLU``, ``nn.Softplus``, ``nn.Tanh`` or
        ``nn.Sigmoid``.
    a : torch.Tensor
        Outputs of the activation.

    Returns
    -------
    derivative : torch.Tensor
        Same shape as ``a``; differentiable in ``a`` where ``s'`` is.

    Notes
    -----
    Differentiating ``g(a) = s'(s^{-1}(a))`` gives ``g'(a) s'(z) = s''(z)``,
    so autograd through this form yields the second derivatives that double
    back-propagation would. Above torch's Softplus ``threshold`` (where it
    returns ``z``) the derivative is 1 while ``1 - exp(-beta a)`` differs from
    1 by less than ``exp(-threshold)`` (about 2e-9 at the default 20).
    """
    if isinstance(activation, nn.ReLU):
        return (a > 0).to(a)
    if isinstance(activation, nn.LeakyReLU):
        slope = activation.negative_slope
        return (a > 0).to(a) * (1.0 - slope) + slope
    if isinstance(activation, nn.Softplus):
        return -torch.expm1(-activation.beta * a)
    if isinstance(activation, nn.Tanh):
        return 1.0 - a * a
    if isinstance(activation, nn.Sigmoid):
        return a * (1.0 - a)
    raise TypeError(f"No closed-form derivative for {type(activation).__name__}.")


def _flat_weight(layer):
    return layer.weight.reshape(layer.weight.shape[0], -1)


def centred_gradient_spread(layers, features):
    """``sum_k ||grad f_k(x) - mean_l grad f_l(x)||^2`` per sample, in closed form.

    For ``f(x) = W s(U x + b) + c`` and ``t = s'(U x + b)``:
    ``sum_k ||g_k - g_mean||^2 = ||P W diag(t) U||_F^2 = t^T Q t`` with
    ``P = I - 11^T / K`` and ``Q = (U U^T) o (W^T P W)`` (``o`` the
    elementwise product): the one-hidden-layer form of Hein & Andriushchenko's
    regulariser (Section 3), at a cost of ``h^2 d`` per batch instead of
    ``K`` backward passes.

    Parameters
    ----------
    layers : tuple
        ``(first Linear, activation, last Linear)`` from
        :func:`closed_form_layers`.
    features : torch.Tensor of shape (n, h)
        The hidden activations ``s(U x + b)``.

    Returns
    -------
    spread : torch.Tensor of shape (n,)
        The centred squared spread of the class gradients.
    """
    first, act, last = layers
    U, W = _flat_weight(first), last.weight
    t = activation_derivative(act, features)
    W_c = W - W.mean(0, keepdim=True)  # P W
    Q = (U @ U.T) * (W_c.T @ W_c)
    return ((t @ Q) * t).sum(1)


def _masked_argmax(scores, target):
    return scores.scatter(1, target[:, None], -torch.inf).argmax(1)


def max_gradient_difference(
    logits, target, q=2.0, *, X=None, layers=None, features=None, name="The loss"
):
    """``max_{j != y} ||grad_x f_y(x) - grad_x f_j(x)||_q`` per sample.

    The maximising class ``j*`` is found without building a graph; the value is
    then recomputed for ``j*`` alone with autograd, which gives the same value
    and the same (sub)gradient as differentiating the maximum over all
    classes, at the cost of one gradient instead of ``K``. Two ways:

    - one-hidden-layer networks (``layers`` and ``features`` given): in closed
      form, ``grad f_y - grad f_j = U^T (t o (w_y - w_j))`` with
      ``t = s'(U x + b)`` (:func:`activation_derivative`); for ``q = 2`` the
      norms of all classes come from ``v^T (U U^T) v``, ``v = t o (w_y - w_j)``,
      when that is cheaper than forming the gradients;
    - any network (``X`` given, requiring grad): ``K`` backward passes without
      a graph, then one double-backprop pass on ``f_y - f_{j*}``.

    Parameters
    ----------
    logits : torch.Tensor of shape (n, K)
        Output of the network.
    target : torch.Tensor of shape (n,)
        The class ``y`` of every sample (long).
    q : float, default=2.0
        The norm, ``q >= 1``.
    X : torch.Tensor, default=None
        The input batch, requiring grad; used when ``layers`` is None.
    layers : tuple, default=None
        ``(first Linear, activation, last Linear)`` from
        :func:`closed_form_layers`.
    features : torch.Tensor of shape (n, h), default=None
        The hidden activations ``s(U x + b)``, with ``layers``.
    name : str, default="The loss"
        Named in the error messages.

    Returns
    -------
    penalty : torch.Tensor of shape (n,)
        The largest gradient-difference norm over ``j != y``.
    """
    rows = torch.arange(len(target), device=target.device)
    if layers is None:
        G = input_gradients(logits, X, name, create_graph=False)
        with torch.no_grad():
            norms = torch.linalg.vector_norm(G[rows, target][:, None] - G, q, dim=2)
            j = _masked_argmax(norms, target)
        gap = logits[rows, target] - logits[rows, j]
        diff = input_gradients(gap[:, None], X, name)[:, 0]
        return torch.linalg.vector_norm(diff, q, dim=1)
    first, act, last = layers
    U, W = _flat_weight(first), last.weight
    t = activation_derivative(act, features)
    with torch.no_grad():
        V = t[:, None, :] * (W[target][:, None, :] - W[None])  # (n, K, h)
        n, K, h = V.shape
        d = U.shape[1]
        if q == 2.0 and h * h * d + n * K * h * h < n * K * h * d:
            norms = ((V @ (U @ U.T)) * V).sum(2)  # squared: same argmax
        else:
            norms = torch.linalg.vector_norm(V @ U, q, dim=2)
        j = _masked_argmax(norms, target)
    v = t * (W[target] - W[j])
    return torch.linalg.vector_norm(v @ U, q, dim=1)
