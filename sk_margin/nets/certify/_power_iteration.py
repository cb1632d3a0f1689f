"""Training-time estimate of the l2 Lipschitz constant of a torch network.

The Lipschitz-margin losses (:mod:`sk_margin.nets.losses`: LMT and
LC-LMT) need, at every training step, a value of ``L`` that is cheap and
differentiable w.r.t. the weights.
:class:`PowerIterationLipschitz` multiplies per-layer constants, taking the
spectral norms of dense and convolution layers from one persistent
power-iteration step per call (Tsuzuku, Sato & Sugiyama, 2018): over training
the estimate approaches their product from *below*. It walks the network
as the sound bounds do (:func:`sk_margin.nets.certify._layers.sequential_layers`: a
layer used twice counts twice) and every other layer uses their per-layer
rule (:mod:`sk_margin.nets.certify._rules`), batch norms as a differentiable torch
value.

Certificates need upper bounds: use :func:`sk_margin.nets.lipschitz_bound`
and the other sound bounds for them.
"""

import torch
from torch import nn
from torch.nn.modules import batchnorm

from sk_margin.nets.certify._layers import (
    eval_mode,
    sequential_layers,
    trace_input_shapes,
    type_name,
    upper,
)
from sk_margin.nets.certify._rules import (
    POOLS,
    RULES,
    batchnorm_scale,
    config_error,
    layer_rule,
)

__all__ = ["PowerIterationLipschitz"]

_TINY = 1e-12
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_SHAPED = (*_CONV, *POOLS)  # layers whose value depends on the input shape
_TABLE_ONLY = ", ".join(
    f"nn.{cls.__name__}"
    for cls, _ in RULES
    if not issubclass(cls, (nn.Linear, nn.Conv2d, batchnorm._BatchNorm))
)


def _cannot_bound(name, layer, reason):
    where = f"layer '{name}' ({type_name(layer)})" if name else type_name(layer)
    hint = ""
    if isinstance(layer, nn.Module) and next(layer.children(), None) is not None:
        hint = " (its forward is unknown: use nn.Sequential containers)"
    return TypeError(f"Cannot bound the Lipschitz constant of {where}{hint}{reason}")


def _dense_norm_bound(weight):
    """Sound bound of ``||W||_2``: the largest eigenvalue of the smaller Gram
    matrix, in float64, enlarged for rounding (as the certificates' SVD is)."""
    with torch.no_grad():
        W = weight.detach().to("cpu", torch.float64)
        G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
        top = torch.linalg.eigvalsh(G)[-1].clamp_min(0.0).sqrt().item()
    # eigvalsh is backward stable: its eigenvalues are exact for G + E with
    # ||E|| about n eps ||G||; 1e-9 of the value covers that and the products.
    return upper(top) * (1.0 + 1e-9 * G.shape[0])


def _straight_through(estimate, value):
    """``value`` (a sound float), with the gradient of the differentiable
    ``estimate``: the power-iteration gradient ``u v^T`` of the top singular
    pair, the gradient of the norm itself once the iteration has converged."""
    return estimate + (torch.as_tensor(value, dtype=estimate.dtype) - estimate.detach())


class PowerIterationLipschitz:
    """Persistent power-iteration estimate of a network's l2 Lipschitz constant.

    ``estimate(module, X)``, or calling the instance, returns the product
    over the layers of ``module`` of per-layer constants, a scalar
    tensor differentiable w.r.t. the weights. The power-iteration vectors
    persist from call to call, so that one step per call (one per training
    step, as in LMT) is enough for the estimate to converge.

    Parameters
    ----------
    bound : bool, default=False
        If True, the value of each dense and convolution layer is the sound
        bound the certificates use (dense: the largest eigenvalue of the
        smaller Gram matrix in float64, enlarged for rounding; convolutions:
        :func:`~sk_margin.nets.conv2d_spectral_norm_bound`), computed from the
        weights at every call, while the gradient stays that of the
        power-iteration estimate (the gradient ``u v^T`` of the norm once
        converged). The product is then an upper bound of the constant the
        certificate will use, at every step, at the cost of a Gram matrix and
        an eigenvalue problem per dense layer per call.

    Attributes
    ----------
    power_iterates_ : dict of str to torch.Tensor
        Power-iteration vector (input side) per layer name.
    input_shapes_ : dict of str to tuple of int
        Per-sample input shape of each convolution and pooling layer, found
        once from an eval-mode pass of ``X[:1]`` through the chain.
    lipschitz_ : torch.Tensor or None
        The estimate returned by the last call (detached).

    Notes
    -----
    ``L`` is an *estimate* (from below, at every step) of the product bound
    ``prod_l Lip(layer_l)`` of :func:`sk_margin.nets.lipschitz_bound`, over
    the same chain: the layers of an ``nn.Sequential``, nested ones opened, in
    execution order, a layer used twice counted twice. A container with its
    own ``forward`` is one layer, which no rule covers: a TypeError names it.
    Forward hooks are not checked here (the sound bounds refuse them).
    ``nn.Linear`` and ``nn.Conv1d/2d/3d`` layers contribute their spectral
    norm (bias excluded), estimated by *one* power-iteration step per call
    with vectors kept in ``power_iterates_`` across calls. Convolutions use
    the linear map on an input shaped like the layer's (found once from an
    eval forward of ``X[:1]``) and its adjoint through autograd. The estimate
    is ``u^T W v`` with ``u, v`` detached, so that it trains the weights.
    Batch norms (any ``_BatchNorm``) contribute ``max_c |gamma_c| /
    sqrt(running_var_c + eps)``, differentiable w.r.t. ``gamma`` (the LMT
    authors use the batch variance in training). Every other layer (its class
    or a subclass of it) uses the per-layer rule of the sound bounds in
    :mod:`sk_margin.nets`: activations their largest slope, shape
    layers, identity and dropout 1 (their eval-mode maps), pooling in 1, 2 or
    3 dimensions its exact bound for the layer's input size (computed once
    per layer and input shape). Other layers raise a TypeError naming the
    layer.

    References
    ----------
    .. [1] Y. Tsuzuku, I. Sato and M. Sugiyama. Lipschitz-margin training:
       scalable certification of perturbation invariance for deep neural
       networks. NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import PowerIterationLipschitz
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.Sigmoid())
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[4.0, 0.0], [0.0, 1.0]]))
    >>> estimator = PowerIterationLipschitz()
    >>> for _ in range(30):
    ...     L = estimator(net)
    >>> round(L.item(), 4)
    1.0
    """

    def __init__(self, *, bound=False):
        self.bound = bound
        self.power_iterates_ = {}
        self.input_shapes_ = {}
        self.lipschitz_ = None
        self._pool_bounds = {}

    def estimate(self, module, X=None):
        """One power-iteration step per layer, and the new estimate.

        Parameters
        ----------
        module : torch.nn.Module
            The network: an ``nn.Sequential`` of supported layers, possibly
            nested.
        X : torch.Tensor, default=None
            The input batch; needed once, to find the input shape of
            convolution and pooling layers.

        Returns
        -------
        lipschitz : torch.Tensor
            Scalar, differentiable w.r.t. the weights.
        """
        if not isinstance(module, nn.Module):
            raise TypeError(
                f"module must be a torch.nn.Module, got {type(module).__name__}."
            )
        layers = sequential_layers(module, check_hooks=False)
        if any(
            isinstance(layer, _SHAPED) and name not in self.input_shapes_
            for name, layer in layers
        ):
            self._find_input_shapes(module, X, layers)
        lipschitz = torch.ones((), dtype=torch.get_default_dtype())
        for name, layer in layers:
            lipschitz = lipschitz * self._layer_lipschitz(name, layer)
        self.lipschitz_ = lipschitz.detach()
        return lipschitz

    __call__ = estimate

    def _find_input_shapes(self, module, X, layers):
        """Per-sample input shapes of the layers, from a pass of ``X[:1]``."""
        if not isinstance(X, torch.Tensor):
            raise ValueError(
                f"{type(self).__name__} needs X, the input batch, to find the "
                "input shape of the convolution and pooling layers."
            )
        with eval_mode(module):  # no BatchNorm statistics update, no dropout
            shapes = trace_input_shapes([layer for _, layer in layers], X.detach()[:1])
        for (name, layer), shape in zip(layers, shapes, strict=True):
            if isinstance(layer, _SHAPED):
                self.input_shapes_[name] = shape[1:]

    def _power_step(self, name, apply, weight, shape):
        """One persistent power-iteration step; ``u^T A(W) v``, u, v detached."""
        v = self.power_iterates_.get(name)
        if v is None or tuple(v.shape) != tuple(shape):
            v = torch.randn(shape, dtype=weight.dtype, device=weight.device)
            v = v / v.norm().clamp_min(_TINY)
        v = v.to(weight)
        with torch.enable_grad():
            v_in = v.detach().requires_grad_(True)
            Av = apply(v_in, weight.detach())
            u = Av.detach() / Av.detach().norm().clamp_min(_TINY)
            (ATu,) = torch.autograd.grad(Av, v_in, grad_outputs=u)
        norm = ATu.norm()
        v = torch.where(norm > 0, ATu / norm.clamp_min(_TINY), v)
        self.power_iterates_[name] = v.detach()
        return (u * apply(v, weight)).sum()

    def _linear_power_step(self, name, weight):
        """:meth:`_power_step` for a dense layer: ``W^T u`` without autograd."""
        v = self.power_iterates_.get(name)
        if v is None or tuple(v.shape) != (weight.shape[1],):
            v = torch.randn(weight.shape[1], dtype=weight.dtype, device=weight.device)
            v = v / v.norm().clamp_min(_TINY)
        v = v.to(weight)
        with torch.no_grad():
            Av = weight @ v
            u = Av / Av.norm().clamp_min(_TINY)
            ATu = u @ weight
            norm = ATu.norm()
            v = torch.where(norm > 0, ATu / norm.clamp_min(_TINY), v)
        self.power_iterates_[name] = v
        return u @ (weight @ v)

    def _layer_lipschitz(self, name, layer):
        if isinstance(layer, nn.Linear):
            estimate = self._linear_power_step(name, layer.weight)
            if self.bound:
                return _straight_through(estimate, _dense_norm_bound(layer.weight))
            return estimate
        if isinstance(layer, _CONV):
            estimate = self._power_step(
                name,
                lambda v, w: layer._conv_forward(v, w, None),
                layer.weight,
                (1, *self.input_shapes_[name]),
            )
            if self.bound:
                rule = layer_rule(layer, subclasses=True)
                if rule is None:
                    raise _cannot_bound(name, layer, ": no sound bound for it.")
                value = rule(layer, self.input_shapes_[name])
                return _straight_through(estimate, value)
            return estimate
        rule = layer_rule(layer, subclasses=True)
        if rule is None and not isinstance(layer, batchnorm._BatchNorm):
            raise _cannot_bound(
                name,
                layer,
                ". Supported: nn.Linear, nn.Conv1d/2d/3d, batch norms, "
                f"{_TABLE_ONLY}, and their subclasses.",
            )
        reason = config_error(layer)
        if reason is not None:
            raise _cannot_bound(name, layer, f": {reason}.")
        if isinstance(layer, batchnorm._BatchNorm):
            return batchnorm_scale(layer).max()
        if not isinstance(layer, POOLS):
            return rule(layer, None)
        # Pooling: a constant for a given layer and input shape.
        in_shape = self.input_shapes_[name]
        cached = self._pool_bounds.get(name)
        if cached is None or cached[0] is not layer or cached[1] != in_shape:
            cached = (layer, in_shape, rule(layer, in_shape))
            self._pool_bounds[name] = cached
        return cached[2]
