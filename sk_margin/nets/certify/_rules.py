"""Per-layer l2 Lipschitz rules of torch layers: one table, one place.

Shared by the sound bounds of whole networks
(:mod:`sk_margin.nets.certify._lipschitz`) and the training-time estimate of
the Lipschitz-margin losses (:mod:`sk_margin.nets.certify._power_iteration`).
Each supported layer class maps to a rule
``bound(layer, in_shape) -> float``, ``in_shape`` being the shape of the
layer's input; every rule returns a proven *upper* bound for the layer as it
runs in eval mode:

- ``nn.Linear``: the spectral norm of the weight, from a float64 SVD;
- ``nn.Conv2d``: :func:`conv2d_spectral_norm_bound` (Fourier method of Sedghi,
  Gupta & Long, 2019, on a grid large enough for the zero padding);
- ``nn.BatchNorm1d/2d``: ``max_c |gamma_c| / sqrt(running_var_c + eps)``;
- average and max pooling in 1, 2 and 3 dimensions: closed forms checked
  against the layer itself; l2-norm pooling (``nn.LPPool1d/2d`` with
  ``norm_type=2``) as max pooling;
- pixel shuffles, a permutation of the entries: 1;
- activations by their largest slope, shape layers and dropout by 1.

The power-iteration estimate replaces only the first three rows (an iterate
for ``nn.Linear`` and convolutions, a differentiable value for batch norms,
see :func:`batchnorm_scale`) and looks up every other layer here.
"""

import functools
import math

import numpy as np
import torch
from torch import nn
from torch.nn.modules import batchnorm, pooling

from sk_margin.nets.certify._conv import conv2d_spectral_norm_bound
from sk_margin.nets.certify._layers import base_class, type_name, upper
from sk_margin.nets.certify._peers import peer_layer
from sk_margin.nets.certify._sorting import group_sort
from sk_margin.nets.layers._lipschitz_modules import MaxMin

__all__ = [
    "DROPOUTS",
    "POOLS",
    "RULES",
    "SUPPORTED",
    "batchnorm_scale",
    "config_error",
    "head_index",
    "layer_rule",
]

DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
# Pooling layers, whose bounds depend on the input's spatial size.
POOLS = (
    pooling._AvgPoolNd,
    pooling._AdaptiveAvgPoolNd,
    pooling._MaxPoolNd,
    pooling._AdaptiveMaxPoolNd,
)


def head_index(layers):
    """Index of the last layer of a chain that is no identity or dropout.

    The chain's head when that layer is an ``nn.Linear`` (callers check);
    -1 for a chain of identities and dropouts only.
    """
    last = len(layers) - 1
    while last >= 0 and isinstance(layers[last], (nn.Identity, *DROPOUTS)):
        last -= 1
    return last


def _spectral_norm(matrix):
    matrix = matrix.detach().to("cpu", torch.float64)
    return upper(torch.linalg.matrix_norm(matrix, ord=2).item())


# ----------------------------------------------------------- batch norm ---
def batchnorm_scale(layer, *, exact=False):
    """Per-channel slopes of an eval-mode batch-norm layer.

    Parameters
    ----------
    layer : torch.nn.modules.batchnorm._BatchNorm
        A batch-norm layer with running statistics.
    exact : bool, default=False
        If True, compute on detached float64 copies of the parameters (for a
        sound bound); else in the layer's dtype, differentiable w.r.t. its
        weight.

    Returns
    -------
    scale : torch.Tensor of shape (n_channels,)
        ``|gamma_c| / sqrt(running_var_c + eps)``: in eval mode the layer is
        ``x_c -> scale_c x_c + shift_c`` per channel, so its l2 Lipschitz
        constant is ``max_c scale_c``, exactly.
    """
    var, weight = layer.running_var, layer.weight
    if exact:
        var = var.detach().to("cpu", torch.float64)
        weight = None if weight is None else weight.detach().to("cpu", torch.float64)
    scale = 1.0 / torch.sqrt(var + layer.eps)
    if weight is not None:
        scale = scale * weight.abs()
    return scale


def _batchnorm_bound(layer, in_shape):
    return upper(batchnorm_scale(layer, exact=True).max().item())


# -------------------------------------------------------------- pooling ---
def _spatial(value, dims):
    """A pooling argument as a ``dims``-tuple."""
    return (value,) * dims if isinstance(value, int) else tuple(value)


def _out_shape(layer, in_shape, dims):
    x = torch.zeros((1, 1, *in_shape[-dims:]), dtype=torch.float64)
    return tuple(layer(x).shape[-dims:])


def _separable_pool_bound(layer, in_shape, factors, scale):
    """Exact norm of ``x -> scale * (A_1 (x) ... (x) A_d) x``, checked on ``layer``.

    The operator is a Kronecker product of one averaging matrix per spatial
    axis, whose norm is ``scale * prod_i ||A_i||_2``; a seeded float64 probe
    confirms that it is the operator ``layer`` computes.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, *in_shape[-len(factors) :]))
    out = layer(torch.from_numpy(x)).numpy()[0, 0]
    expected = x[0, 0]
    for axis, a in enumerate(factors):
        expected = np.moveaxis(np.tensordot(a, expected, axes=(1, axis)), 0, axis)
    if not np.allclose(out, scale * expected, rtol=1e-9, atol=1e-12):
        raise RuntimeError(  # pragma: no cover - would be a bug in the factors
            f"Internal error: the averaging operator of {layer} does not match "
            "the layer; please report this."
        )
    norm = scale
    for a in factors:
        norm = norm * np.linalg.norm(a, 2)
    return upper(norm)


def _avg_pool_bound(layer, in_shape, dims):
    # The window and divisor of PyTorch's avg_pool, one axis at a time.
    out_shape = _out_shape(layer, in_shape, dims)
    kernel, pad = _spatial(layer.kernel_size, dims), _spatial(layer.padding, dims)
    stride = _spatial(layer.stride or layer.kernel_size, dims)
    override = getattr(layer, "divisor_override", None)  # not in AvgPool1d
    factors = []
    for n, n_out, k, s, p in zip(
        in_shape[-dims:], out_shape, kernel, stride, pad, strict=True
    ):
        a = np.zeros((n_out, n))
        for o in range(n_out):
            start = o * s - p
            end = min(start + k, n + p)
            lo, hi = max(start, 0), min(end, n)
            if hi > lo:
                if override:
                    a[o, lo:hi] = 1.0
                else:
                    a[o, lo:hi] = 1.0 / (
                        end - start if layer.count_include_pad else hi - lo
                    )
        factors.append(a)
    return _separable_pool_bound(
        layer, in_shape, factors, 1.0 / override if override else 1.0
    )


def _adaptive_avg_pool_bound(layer, in_shape, dims):
    factors = []
    for n, n_out in zip(
        in_shape[-dims:], _out_shape(layer, in_shape, dims), strict=True
    ):
        a = np.zeros((n_out, n))
        for o in range(n_out):
            lo, hi = (o * n) // n_out, -((-(o + 1) * n) // n_out)
            a[o, lo:hi] = 1.0 / (hi - lo)
        factors.append(a)
    return _separable_pool_bound(layer, in_shape, factors, 1.0)


def _lp_pool_bound(layer, in_shape, dims):
    """``sqrt(m)`` for l2-norm pooling, ``m`` as for max pooling.

    Each output is the l2 norm of a window, and ``| ||u|| - ||v|| | <=
    ||u - v||``, so the squared output change is at most ``sum_w ||d_w||^2
    <= m ||d||^2``; ``m`` is measured on the max pooling with the same
    windows (LPPool has no padding).
    """
    twin = getattr(nn, f"MaxPool{dims}d")(
        layer.kernel_size, layer.stride, ceil_mode=layer.ceil_mode
    )
    return _max_pool_bound(twin, in_shape, dims)


def _max_pool_bound(layer, in_shape, dims):
    """``sqrt(m)``, ``m`` the most windows any input entry belongs to.

    ``|max_w x - max_w y| <= max_{i in w} |x_i - y_i|``, so the squared
    output change is at most ``sum_w sum_{i in w} d_i^2 <= m ||d||^2``.
    Windows are products of one index set per axis, so ``m = prod_i m_i``,
    with ``m_i`` the most windows an input slice ``x[..., r, ...]`` (index
    ``r`` along axis ``i``) meets: measured on the layer by setting that
    slice to 1 and the rest to -1.
    """
    shape = in_shape[-dims:]
    most = 1.0
    for axis, n in enumerate(shape):
        x = -np.ones((n, 1, *shape))
        for r in range(n):
            index = [r, 0, *(slice(None),) * dims]
            index[2 + axis] = r
            x[tuple(index)] = 1.0
        hit = layer(torch.from_numpy(x)).numpy()[:, 0] == 1.0
        others = tuple(1 + i for i in range(dims) if i != axis)
        most *= hit.any(axis=others).sum(axis=1).max()
    return upper(math.sqrt(most))


# ---------------------------------------------------------- the table ---
def _one(layer, in_shape):
    return 1.0


def _pool_rules():
    classes = {
        _avg_pool_bound: ("AvgPool{}d",),
        _adaptive_avg_pool_bound: ("AdaptiveAvgPool{}d",),
        _max_pool_bound: ("MaxPool{}d", "AdaptiveMaxPool{}d"),
    }
    return [
        (getattr(nn, name.format(dims)), functools.partial(rule, dims=dims))
        for rule, names in classes.items()
        for name in names
        for dims in (1, 2, 3)
    ] + [
        (nn.LPPool1d, functools.partial(_lp_pool_bound, dims=1)),
        (nn.LPPool2d, functools.partial(_lp_pool_bound, dims=2)),
    ]


# Supported classes and their bounds ``bound(layer, in_shape)``.
RULES = [
    (nn.Linear, lambda layer, in_shape: _spectral_norm(layer.weight)),
    (
        nn.Conv2d,
        lambda layer, in_shape: conv2d_spectral_norm_bound(layer, in_shape[-2:]),
    ),
    (nn.BatchNorm1d, _batchnorm_bound),
    (nn.BatchNorm2d, _batchnorm_bound),
    *_pool_rules(),
    (nn.ReLU, _one),
    (nn.ReLU6, _one),
    (nn.Hardtanh, _one),  # a clamp
    (nn.LeakyReLU, lambda layer, in_shape: max(1.0, abs(layer.negative_slope))),
    (nn.ELU, lambda layer, in_shape: max(1.0, abs(layer.alpha))),
    (nn.Softplus, _one),  # derivative sigmoid(beta x) in (0, 1)
    (nn.Tanh, _one),
    (nn.Sigmoid, lambda layer, in_shape: 0.25),
    (MaxMin, _one),  # a permutation of each pair
    (nn.Flatten, _one),
    (nn.Unflatten, _one),
    (nn.PixelUnshuffle, _one),  # a permutation of the entries
    (nn.PixelShuffle, _one),
    (nn.Identity, _one),
    *((cls, _one) for cls in DROPOUTS),  # identity in eval mode
]
_RULE_OF = dict(RULES)
SUPPORTED = (
    ", ".join(type_name(cls) for cls, _ in RULES)
    + ", deel-torchlip's GroupSort, GroupSort2 and FullSort, SpectralConv2d, "
    "FrobeniusConv2d, ScaledL2NormPool2d and ScaledAvgPool2d"
)


def _group_sort_rule(layer, in_shape):
    return upper(group_sort(layer).scale)  # a permutation of each group, scaled


def layer_rule(layer, *, subclasses=False):
    """The rule of ``layer``'s class (see :func:`base_class`), or None.

    With ``subclasses``, the rule of its closest listed base class (for the
    training-time estimate, which need not be sound). Sorting layers of other
    libraries are recognised by :func:`group_sort`, their convolutions and
    scaled poolings by :func:`peer_layer`.
    """
    rule = _RULE_OF.get(base_class(layer))
    if rule is None and subclasses:
        mro = type(layer).__mro__
        rule = next((_RULE_OF[c] for c in mro if c in _RULE_OF), None)
    if rule is None and group_sort(layer) is not None:
        rule = _group_sort_rule
    if rule is None:
        spec = peer_layer(layer)
        if spec is not None and spec.base in _RULE_OF:
            rule = functools.partial(_peer_rule, rule=_RULE_OF[spec.base])
    return rule


def _peer_rule(layer, in_shape, rule):
    # A recognised layer: its torch base class's bound, times its scale.
    scale = peer_layer(layer).scale
    bound = rule(layer, in_shape)
    return bound if scale == 1.0 else upper(scale * bound)


def config_error(layer):
    """Why a supported layer type cannot be bounded in this configuration."""
    if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
        return f'padding_mode must be "zeros", got {layer.padding_mode!r}'
    max_pools = (pooling._MaxPoolNd, pooling._AdaptiveMaxPoolNd)
    if isinstance(layer, max_pools) and layer.return_indices:
        return "return_indices=True returns a tuple, which no next layer accepts"
    lp_pools = (nn.LPPool1d, nn.LPPool2d)
    if isinstance(layer, lp_pools) and float(layer.norm_type) != 2.0:
        return (
            f"norm_type must be 2 (an l2-norm pooling), got {layer.norm_type!r}; "
            "torch's other LPPools raise signed sums to powers"
        )
    if isinstance(layer, batchnorm._BatchNorm) and layer.running_var is None:
        return (
            "without running statistics (track_running_stats=False) it "
            "normalises by batch statistics, so no per-sample bound exists"
        )
    return None
