"""Per-layer l2 Lipschitz rules of torch layers: one table, one place.

The helpers below :mod:`sk_margin.nets` (sound bounds of whole networks)
and :mod:`sk_margin.nets` (the training-time estimate of the
Lipschitz-margin losses). Each supported layer class maps to a rule
``bound(layer, in_shape) -> float``, ``in_shape`` being the shape of the
layer's input; every rule returns a proven *upper* bound for the layer as it
runs in eval mode:

- ``nn.Linear``: the spectral norm of the weight, from a float64 SVD;
- ``nn.Conv2d``: :func:`conv2d_spectral_norm_bound` (Fourier method of Sedghi,
  Gupta & Long, 2019, on a grid large enough for the zero padding);
- ``nn.BatchNorm1d/2d``: ``max_c |gamma_c| / sqrt(running_var_c + eps)``;
- average and max pooling in 1, 2 and 3 dimensions: closed forms checked
  against the layer itself;
- activations by their largest slope, shape layers and dropout by 1.

The power-iteration estimate replaces only the first three rows (an iterate
for ``nn.Linear`` and convolutions, a differentiable value for batch norms,
see :func:`batchnorm_scale`) and looks up every other layer here.
"""

import contextlib
import functools
import math

import numpy as np
import torch
from torch import nn
from torch.nn.modules import batchnorm, pooling

__all__ = ["conv2d_spectral_norm_bound"]

# Computed bounds are enlarged by this relative amount to absorb the float64
# rounding of the SVDs, DFTs and products behind them (each accurate to about
# 1e-13 relative for layers with fewer than ~1e6 rows or columns).
_ROUNDING_SLACK = 1e-9
# Complex entries per batch of frequency matrices in the convolution bound.
_CONV_BATCH_ENTRIES = 2**22
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)
# Pooling layers, whose bounds depend on the input's spatial size.
_POOLS = (
    pooling._AvgPoolNd,
    pooling._AdaptiveAvgPoolNd,
    pooling._MaxPoolNd,
    pooling._AdaptiveMaxPoolNd,
)


def _upper(value):
    return float(value) * (1.0 + _ROUNDING_SLACK)


def _spectral_norm(matrix):
    matrix = matrix.detach().to("cpu", torch.float64)
    return _upper(torch.linalg.matrix_norm(matrix, ord=2).item())


def _dft(n, taps, k):
    """``exp(-2 pi i k a / n)`` for frequencies ``k`` and taps ``a < taps``."""
    phase = torch.outer(k, torch.arange(taps, dtype=torch.int64)) % n
    angle = phase.to(torch.float64) * (-2.0 * math.pi / n)
    return torch.complex(torch.cos(angle), torch.sin(angle))


def _circular_conv_norm(kernel, grid):
    """Exact norm of a stride-1 circular convolution on ``grid``.

    ``kernel`` has shape ``(groups, c_out, c_in, kh, kw)``. The 2-D DFT
    block-diagonalises the operator, whose norm is the largest singular value
    of the ``c_out x c_in`` DFT matrices over all frequencies (Sedghi et al.,
    Theorem 6). The kernel is real, so frequencies ``(k1, k2)`` with
    ``k2 <= n2 // 2`` give every singular value (the others are conjugates).
    """
    n1, n2 = grid
    groups, c_out, c_in, kh, kw = kernel.shape
    f1 = _dft(n1, kh, torch.arange(n1))
    f2 = _dft(n2, kw, torch.arange(n2 // 2 + 1))
    partial = torch.einsum("gocab,lb->gocal", kernel.to(torch.complex128), f2)
    rows = max(1, _CONV_BATCH_ENTRIES // (groups * c_out * c_in * f2.shape[0]))
    best = 0.0
    for start in range(0, n1, rows):
        mats = torch.einsum("gocal,ka->gkloc", partial, f1[start : start + rows])
        best = max(best, torch.linalg.svdvals(mats)[..., 0].max().item())
    return best


def _conv_padding(conv, dim, extent):
    """Total zero padding of ``conv`` along ``dim`` (both sides)."""
    if conv.padding == "valid":
        return 0
    if conv.padding == "same":  # PyTorch pads extent - 1 in total
        return extent - 1
    return 2 * conv.padding[dim]


def conv2d_spectral_norm_bound(conv, input_hw):
    """Upper bound on the l2 operator norm of an ``nn.Conv2d`` layer.

    Parameters
    ----------
    conv : torch.nn.Conv2d
        The layer; any kernel size, stride, integer or string padding,
        dilation and groups, with ``padding_mode="zeros"``. The bias does not
        change the Lipschitz constant.
    input_hw : tuple of int
        Height and width of the layer's input.

    Returns
    -------
    bound : float
        A proven upper bound on ``||conv(x) - conv(y)||_2 / ||x - y||_2``.

    Notes
    -----
    The smaller of two proven bounds:

    - Fourier. A stride-``s`` convolution is a stride-1 convolution on the
      ``s x s`` polyphase components of the zero-padded input (a permutation
      of its entries), with ``ceil(e / s)`` taps per dimension for a dilated
      kernel extent ``e``. Embedded (an isometry) in a zero grid large enough
      that nothing wraps around, every output the layer computes is an output
      of the *circular* convolution on that grid, so the layer's norm is at
      most the circular one, which is exact: the largest singular value, over
      all frequencies, of the ``c_out x c_in`` matrices of the kernel's 2-D
      DFT (Sedghi, Gupta & Long, 2019); groups give one block per group. For
      stride 1 and dilation ``d`` the positions of each residue mod ``d``
      form an undilated convolution of their own, on a grid ``d`` times
      smaller. Close to exact for stride 1 once the input is a few times
      larger than the kernel.
    - im2col. ``y[:, p] = W u_p(x)`` with ``W`` the ``c_out x (c_in k_h
      k_w)`` kernel matrix (one per group) and ``u_p(x)`` the patch at output
      position ``p``; ``sum_p ||u_p(x)||^2 <= m ||x||^2`` with ``m`` the most
      windows one input position belongs to, so the norm is at most
      ``sqrt(m) max_g ||W_g||_2``. Exact when windows do not overlap (1x1
      kernels, stride equal to the kernel size, a single output position).

    The result is enlarged by a relative 1e-9 to absorb float64 rounding.

    References
    ----------
    .. [1] H. Sedghi, V. Gupta and P. M. Long. The singular values of
       convolutional layers. ICLR 2019.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import conv2d_spectral_norm_bound
    >>> conv = torch.nn.Conv2d(1, 1, kernel_size=2, stride=2, bias=False)
    >>> with torch.no_grad():
    ...     _ = conv.weight.fill_(1.0)
    >>> round(conv2d_spectral_norm_bound(conv, (4, 4)), 6)
    2.0
    """
    if _base_class(conv) is not nn.Conv2d:
        raise TypeError(f"conv must be an nn.Conv2d, got {_type_name(conv)}.")
    if conv.padding_mode != "zeros":
        raise ValueError(
            f'padding_mode must be "zeros", got {conv.padding_mode!r}; other '
            "paddings copy input entries and may increase the norm."
        )
    size = tuple(int(v) for v in input_hw)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"input_hw must be two positive ints, got {input_hw!r}.")
    weight = conv.weight.detach().to("cpu", torch.float64)
    c_out, c_in, *kernel = weight.shape
    weight = weight.reshape(conv.groups, c_out // conv.groups, c_in, *kernel)
    stride, dilation, taps, grid, overlap = conv.stride, [], [], [], 1
    for dim, k in enumerate(kernel):
        d, s = conv.dilation[dim], stride[dim]
        extent = d * (k - 1) + 1
        padded = size[dim] + _conv_padding(conv, dim, extent)
        if padded < extent:
            raise ValueError(f"input_hw={size} is smaller than the kernel extent.")
        n_out = (padded - extent) // s + 1
        # Most windows any (padded) input position belongs to.
        count = np.zeros(padded, dtype=np.int64)
        for o in range(n_out):
            count[o * s + d * np.arange(k)] += 1
        overlap *= int(count.max())
        if s == 1 and d > 1:
            # The positions of each residue mod d form an undilated convolution
            # of their own, on at most ceil(padded / d) positions.
            d, extent, padded = 1, k, -(-padded // d)
            n_out = padded - k + 1
        dilation.append(d)
        taps.append(-(-extent // s))
        grid.append(max(-(-padded // s), n_out + taps[-1] - 1))
    # Dilate the kernel and zero-extend it to whole stride blocks.
    full = weight.new_zeros(*weight.shape[:3], stride[0] * taps[0], stride[1] * taps[1])
    full[..., :: dilation[0], :: dilation[1]][..., : kernel[0], : kernel[1]] = weight
    # Polyphase: tap s * q + r of the kernel becomes tap q of input phase r.
    full = full.reshape(*weight.shape[:3], taps[0], stride[0], taps[1], stride[1])
    full = full.permute(0, 1, 2, 4, 6, 3, 5).reshape(
        *weight.shape[:2], c_in * stride[0] * stride[1], *taps
    )
    fourier = _circular_conv_norm(full, grid)
    # im2col: y = W unfold(x), with ||unfold(x)||^2 <= overlap * ||x||^2.
    unfold = torch.linalg.matrix_norm(weight.flatten(2), ord=2).max().item()
    return _upper(min(fourier, unfold * math.sqrt(overlap)))


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
    return _upper(batchnorm_scale(layer, exact=True).max().item())


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
    return _upper(norm)


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
    return _upper(math.sqrt(most))


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
    ]


# Supported classes and their bounds ``bound(layer, in_shape)``.
_RULES = [
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
    (nn.Flatten, _one),
    (nn.Unflatten, _one),
    (nn.Identity, _one),
    *((cls, _one) for cls in _DROPOUTS),  # identity in eval mode
]
_RULE_OF = dict(_RULES)
_SUPPORTED = ", ".join(f"nn.{cls.__name__}" for cls, _ in _RULES)


def _type_name(layer):
    cls = type(layer)
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    return cls.__qualname__


def _base_class(layer):
    """``type(layer)``, seen through torch's parametrized copy of a class.

    Only exact classes are trusted: a subclass may override ``forward`` or a
    helper it calls (``Conv2d._conv_forward``) and compute something else.
    """
    cls = type(layer)
    if cls.__module__ == "torch.nn.utils.parametrize" and len(cls.__bases__) == 1:
        cls = cls.__bases__[0]  # adds only the parametrized attribute getters
    return cls


def _rule(layer, *, subclasses=False):
    """The rule of ``layer``'s exact class, or of its closest listed base."""
    if not subclasses:
        return _RULE_OF.get(_base_class(layer))
    return next((_RULE_OF[c] for c in type(layer).__mro__ if c in _RULE_OF), None)


def _config_error(layer):
    """Why a supported layer type cannot be bounded in this configuration."""
    if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
        return f'padding_mode must be "zeros", got {layer.padding_mode!r}'
    max_pools = (pooling._MaxPoolNd, pooling._AdaptiveMaxPoolNd)
    if isinstance(layer, max_pools) and layer.return_indices:
        return "return_indices=True returns a tuple, which no next layer accepts"
    if isinstance(layer, batchnorm._BatchNorm) and layer.running_var is None:
        return (
            "without running statistics (track_running_stats=False) it "
            "normalises by batch statistics, so no per-sample bound exists"
        )
    return None


@contextlib.contextmanager
def _eval_mode(module):
    """Eval mode and no autograd; restores every submodule's training flag."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode
