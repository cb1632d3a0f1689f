"""Sound upper bounds on the l2 Lipschitz constants of torch networks.

Every number returned here is an *upper* bound, so that a radius computed from
it (see :mod:`sk_margin.certify`) never exceeds the distance to the decision
boundary. Nothing comes from power iteration, which under-estimates a spectral
norm: dense layers use a float64 SVD, convolutions the Fourier method of
Sedghi, Gupta & Long (2019) on a grid large enough for the zero padding, and
pooling layers closed forms checked against the layer itself (the per-layer
rules live in :mod:`sk_margin.nets`; this module walks networks and
combines them). For the cheap, differentiable estimate used during training,
see :class:`sk_margin.nets.PowerIterationLipschitz`.

Networks are ``nn.Sequential`` containers (possibly nested) and are bounded as
they run in eval mode. The bounds hold for exact arithmetic with the module's
parameters; evaluating the network in floating point adds relative errors of
the order of its working precision (about 1e-7 in float32).
"""

import math

import numpy as np
import torch
from torch import nn

from sk_margin.nets.certify._conv import conv2d_spectral_norm_bound
from sk_margin.nets.certify._layers import (
    describe,
    eval_mode,
    sequential_layers,
    trace_input_shapes,
    upper,
)
from sk_margin.nets.certify._rules import (
    RULES,
    SUPPORTED,
    config_error,
    head_index,
    layer_rule,
)

__all__ = [
    "conv2d_spectral_norm_bound",
    "layer_lipschitz_bounds",
    "linf_lipschitz_bound",
    "lipschitz_bound",
    "network_lipschitz_bounds",
    "pairwise_lipschitz_bounds",
]


def _layers(module):
    """``[(desc, layer, rule)]`` of the walk; raises for unsupported layers."""
    out = []
    for position, (name, layer) in enumerate(sequential_layers(module)):
        desc = describe(position, name, layer)
        rule = layer_rule(layer)
        if rule is None:
            hint = ""
            if isinstance(layer, nn.Sequential):
                hint = " (it overrides how nn.Sequential runs its layers)"
            elif any(isinstance(layer, cls) for cls, _ in RULES):
                hint = " (subclasses may compute something else)"
            elif isinstance(layer, nn.Module) and list(layer.children()):
                hint = " (its forward is unknown: use nn.Sequential containers)"
            raise TypeError(
                f"Cannot bound the Lipschitz constant of {desc}{hint}: supported "
                f"layers are {SUPPORTED}, in nn.Sequential containers."
            )
        reason = config_error(layer)
        if reason is not None:
            raise ValueError(
                f"Cannot bound the Lipschitz constant of {desc}: {reason}."
            )
        out.append((desc, layer, rule))
    return out


def _analyse(module, input_shape):
    """``[(desc, layer, in_shape, bound)]``; call inside :func:`eval_mode`."""
    layers = _layers(module)
    try:
        input_shape = tuple(int(v) for v in input_shape)
    except TypeError:
        input_shape = ()
    if not input_shape or min(input_shape) < 1:
        raise ValueError(
            "input_shape must be the shape of one sample, a tuple of positive "
            f"ints such as (1, 28, 28) or (64,); got {input_shape!r}."
        )
    ref = next((t for t in module.parameters() if t.is_floating_point()), None)
    dtype = ref.dtype if ref is not None else torch.float32
    device = ref.device if ref is not None else "cpu"
    x = torch.zeros((1, *input_shape), dtype=dtype, device=device)
    shapes = trace_input_shapes(
        [layer for _, layer, _ in layers],
        x,
        what=f"input_shape={input_shape}",
        describe_as=[desc for desc, _, _ in layers],
    )
    return [
        (desc, layer, in_shape, rule(layer, in_shape))
        for (desc, layer, rule), in_shape in zip(layers, shapes, strict=True)
    ]


def layer_lipschitz_bounds(module, input_shape):
    """Sound l2 Lipschitz bound of every layer of a sequential network.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (possibly nested, or a subclass that runs its
        layers the same way) of supported layers, or a single supported
        layer. Layers must be instances of the listed classes, of their
        ``torch.nn.utils.parametrize`` versions, or of subclasses that
        override none of the methods computing the output (``forward``,
        ``_conv_forward``; e.g. deel-torchlip's ``SpectralLinear``), or
        sorting layers (:class:`~sk_margin.nets.MaxMin`, deel-torchlip's
        ``GroupSort`` family, recognised by a probe of what they compute).
        The network is bounded as it runs in eval mode; its parameters,
        buffers and training flags are left unchanged.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension, e.g.
        ``(1, 28, 28)`` or ``(64,)``. Convolution and pooling bounds depend on
        the spatial size.

    Returns
    -------
    bounds : list of tuple (int, torch.nn.Module, float)
        ``(position, layer, bound)`` in execution order; nested Sequentials
        are opened, and a layer used twice appears twice.

    Raises
    ------
    TypeError
        If a layer is not supported (the message names it and its position),
        or forward hooks could change what a layer computes.
    ValueError
        If a supported layer is configured in a way that cannot be bounded
        (e.g. ``padding_mode="reflect"``), or ``input_shape`` does not fit.

    Notes
    -----
    - ``nn.Linear``: the spectral norm of the weight, from a float64 SVD.
    - ``nn.Conv2d``: :func:`conv2d_spectral_norm_bound`.
    - ``nn.BatchNorm1d/2d`` (eval, running statistics):
      ``max_c |gamma_c| / sqrt(running_var_c + eps)``, exact.
    - ``nn.AvgPool1d/2d/3d``, ``nn.AdaptiveAvgPool1d/2d/3d``: per channel
      the operator is a Kronecker product ``A_h (x) A_w`` of 1-D averaging
      matrices (one per spatial axis); its norm ``||A_h||_2 ||A_w||_2`` is
      exact.
    - ``nn.MaxPool1d/2d/3d``, ``nn.AdaptiveMaxPool1d/2d/3d``: ``sqrt(m)``
      with ``m`` the largest number of windows containing one input pixel (at
      most ``ceil(k_h / s_h) ceil(k_w / s_w)`` in 2-D); attained at an input
      with one dominant pixel.
    - ``nn.ReLU``, ``nn.ReLU6``, ``nn.Hardtanh``, ``nn.Tanh``,
      ``nn.Softplus``: 1; ``nn.LeakyReLU``:
      ``max(1, |negative_slope|)``; ``nn.ELU``: ``max(1, |alpha|)``;
      ``nn.Sigmoid``: 1/4. ``nn.Softplus`` turns into the identity above
      ``beta x > threshold``; the jump ``log(1 + exp(-threshold)) / beta``
      this leaves (2e-9 for the defaults) is not covered.
    - ``nn.Flatten``, ``nn.Unflatten``, ``nn.Identity``, ``nn.Dropout*``: 1.

    Computed bounds are enlarged by a relative 1e-9 to absorb float64
    rounding.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import layer_lipschitz_bounds
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Sigmoid())
    >>> [
    ...     (pos, type(layer).__name__)
    ...     for pos, layer, _ in layer_lipschitz_bounds(net, (3,))
    ... ]
    [(0, 'Linear'), (1, 'Sigmoid')]
    """
    records = _records(module, input_shape)
    return [(pos, layer, bound) for pos, (_, layer, _, bound) in enumerate(records)]


def lipschitz_bound(module, input_shape):
    """Product bound on the l2 -> l2 Lipschitz constant of a network.

    Parameters
    ----------
    module : torch.nn.Module
        A sequential network (see :func:`layer_lipschitz_bounds`).
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.

    Returns
    -------
    bound : float
        ``prod_l L_l`` over the layer bounds, an upper bound on
        ``||f(x) - f(y)||_2 / ||x - y||_2`` for the eval-mode network.

    Notes
    -----
    The Lipschitz constant of a composition is at most the product of those
    of its parts (Szegedy et al., 2014; Tsuzuku, Sato & Sugiyama, 2018, who
    certify the radius ``margin / (sqrt(2) L)``, see
    :func:`sk_margin.certify.lipschitz_margin_radius`).

    References
    ----------
    .. [1] C. Szegedy et al. Intriguing properties of neural networks.
       ICLR 2014.
    .. [2] Y. Tsuzuku, I. Sato and M. Sugiyama. Lipschitz-margin training:
       scalable certification of perturbation invariance for deep neural
       networks. NeurIPS 2018.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import lipschitz_bound
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU())
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    >>> round(lipschitz_bound(net, (2,)), 6)
    4.0
    """
    bounds = [bound for _, _, bound in layer_lipschitz_bounds(module, input_shape)]
    return upper(math.prod(bounds))


def _records(module, input_shape):
    with eval_mode(module):
        return _analyse(module, input_shape)


def _head(records, caller):
    """Float64 weight of the last ``nn.Linear`` and the bound of what precedes it."""
    last = head_index([layer for _, layer, _, _ in records])
    if last < 0 or not isinstance(records[last][1], nn.Linear):
        got = "no layer" if last < 0 else records[last][0]
        raise ValueError(
            f"{caller} needs a network whose last layer is nn.Linear "
            f"(optionally followed by nn.Identity or nn.Dropout); got {got}."
        )
    desc, layer, in_shape, _ = records[last]
    if len(in_shape) != 2:
        raise ValueError(
            f"{caller} needs one score vector per sample, but {desc} gets an "
            f"input of shape {in_shape}; flatten its input first."
        )
    weight = layer.weight.detach().to("cpu", torch.float64).numpy()
    prefix = upper(math.prod(bound for _, _, _, bound in records[:last]))
    return weight, prefix


def _linf(weight, prefix):
    return upper(np.linalg.norm(weight, axis=1).max() * prefix)


def _pairwise(weight, prefix):
    # Row by row (not via Gram matrices, whose cancellation could round down).
    norms = np.stack([np.linalg.norm(w - weight, axis=1) for w in weight])
    bounds = norms * upper(prefix)
    np.fill_diagonal(bounds, 0.0)
    return bounds


def network_lipschitz_bounds(module, input_shape):
    """The product, l_inf and pairwise bounds from one pass over the layers.

    The same values as :func:`lipschitz_bound`, :func:`linf_lipschitz_bound`
    and :func:`pairwise_lipschitz_bounds`, for callers that need all three:
    the per-layer bounds (SVDs, convolution bounds) are computed once.

    Parameters
    ----------
    module : torch.nn.Module
        A sequential network whose last layer is ``nn.Linear``.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.

    Returns
    -------
    l2 : float
        :func:`lipschitz_bound`.
    linf : float
        :func:`linf_lipschitz_bound`.
    pairwise : ndarray of shape (n_classes, n_classes)
        :func:`pairwise_lipschitz_bounds`.
    """
    records = _records(module, input_shape)
    weight, prefix = _head(records, "network_lipschitz_bounds")
    l2 = upper(math.prod(bound for _, _, _, bound in records))
    return l2, _linf(weight, prefix), _pairwise(weight, prefix)


def linf_lipschitz_bound(module, input_shape):
    """Bound on the l2 -> l_inf Lipschitz constant of a network.

    Parameters
    ----------
    module : torch.nn.Module
        A sequential network (see :func:`layer_lipschitz_bounds`) whose last
        layer is ``nn.Linear``, optionally followed by ``nn.Identity`` or
        ``nn.Dropout``.
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.

    Returns
    -------
    bound : float
        ``max_i ||w_i||_2 * prod_{l < L} L_l``, with ``w_i`` the rows of the
        last linear layer's weight and ``L_l`` the bounds of the layers before
        it: every logit moves by at most this times ``||x - y||_2``.

    Notes
    -----
    ``|f_i(x) - f_i(y)| = |<w_i, h(x) - h(y)>| <= ||w_i||_2 ||h(x) - h(y)||_2``
    for the features ``h`` feeding the last layer. Used in the radius
    ``mu / (2 L_inf)`` of Kesidis, Miller & Xiang, Theorem 2.1 (see
    :func:`sk_margin.certify.linf_lipschitz_radius`).

    References
    ----------
    .. [1] G. Kesidis, D. J. Miller and Z. Xiang. Notes on Lipschitz margin,
       Lipschitz margin training, and Lipschitz margin p-values for deep
       neural network classifiers. Theorem 2.1.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import linf_lipschitz_bound
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
    >>> round(linf_lipschitz_bound(net, (2,)), 6)
    5.0
    """
    return _linf(*_head(_records(module, input_shape), "linf_lipschitz_bound"))


def pairwise_lipschitz_bounds(module, input_shape):
    """Global cross-Lipschitz bounds ``L[c, j]`` of ``f_c - f_j``.

    Parameters
    ----------
    module : torch.nn.Module
        A sequential network whose last layer is ``nn.Linear`` (see
        :func:`linf_lipschitz_bound`).
    input_shape : tuple of int
        Shape of one input sample, without the batch dimension.

    Returns
    -------
    bounds : ndarray of shape (n_classes, n_classes)
        ``L[c, j] = ||w_c - w_j||_2 * prod_{l < L} L_l``, symmetric with a
        zero diagonal, for use in
        :func:`sk_margin.certify.cross_lipschitz_radius`.

    Notes
    -----
    Hein & Andriushchenko (2017), Section 5, "global cross-Lipschitz
    constant": ``|g(x) - g(y)| = |<w_c - w_j, h(x) - h(y)>| <= ||w_c -
    w_j||_2 ||h(x) - h(y)||_2`` for ``g = f_c - f_j``. Exact for a single
    linear layer.

    References
    ----------
    .. [1] M. Hein and M. Andriushchenko. Formal guarantees on the robustness
       of a classifier against adversarial manipulation. NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import pairwise_lipschitz_bounds
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    >>> pairwise_lipschitz_bounds(net, (2,)).round(6)
    array([[0., 5.],
           [5., 0.]])
    """
    records = _records(module, input_shape)
    return _pairwise(*_head(records, "pairwise_lipschitz_bounds"))
