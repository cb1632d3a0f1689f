"""Sound upper bounds on the l2 Lipschitz constants of torch networks.

Every number returned here is an *upper* bound, so that a radius computed from
it (see :mod:`sk_margin.certify`) never exceeds the distance to the decision
boundary. Nothing comes from power iteration, which under-estimates a spectral
norm: dense layers use a float64 SVD, convolutions the Fourier method of
Sedghi, Gupta & Long (2019) on a grid large enough for the zero padding, and
pooling layers closed forms checked against the layer itself.

Networks are ``nn.Sequential`` containers (possibly nested) and are bounded as
they run in eval mode. The bounds hold for exact arithmetic with the module's
parameters; evaluating the network in floating point adds relative errors of
the order of its working precision (about 1e-7 in float32).
"""

import contextlib
import math

import numpy as np
import torch
from torch import nn

__all__ = [
    "conv2d_spectral_norm_bound",
    "layer_lipschitz_bounds",
    "linf_lipschitz_bound",
    "lipschitz_bound",
    "pairwise_lipschitz_bounds",
]

# Computed bounds are enlarged by this relative amount to absorb the float64
# rounding of the SVDs, DFTs and products behind them (each accurate to about
# 1e-13 relative for layers with fewer than ~1e6 rows or columns).
_ROUNDING_SLACK = 1e-9
# Complex entries per batch of frequency matrices in the convolution bound.
_CONV_BATCH_ENTRIES = 2**22
_DROPOUTS = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


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
    >>> from sk_margin.lipschitz import conv2d_spectral_norm_bound
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


def _batchnorm_bound(layer, in_shape):
    scale = 1.0 / torch.sqrt(
        layer.running_var.detach().to("cpu", torch.float64) + layer.eps
    )
    if layer.weight is not None:
        scale = scale * layer.weight.detach().to("cpu", torch.float64).abs()
    return _upper(scale.max().item())


def _probe(layer, in_shape):
    """Run ``layer`` (without parameters) on a seeded float64 input."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 1, *in_shape[-2:]))
    return x[0, 0], layer(torch.from_numpy(x)).numpy()[0, 0]


def _separable_pool_bound(layer, in_shape, factors, scale):
    """Exact norm of ``X -> scale * A_h X A_w^T``, checked against ``layer``.

    The operator is the Kronecker product ``scale * A_h (x) A_w``, whose norm
    is ``scale * ||A_h||_2 ||A_w||_2``; a random probe confirms that it is the
    operator ``layer`` computes.
    """
    a_h, a_w = factors
    x, out = _probe(layer, in_shape)
    if not np.allclose(out, scale * a_h @ x @ a_w.T, rtol=1e-9, atol=1e-12):
        raise RuntimeError(  # pragma: no cover - would be a bug in the factors
            f"Internal error: the averaging operator of {layer} does not match "
            "the layer; please report this."
        )
    return _upper(scale * np.linalg.norm(a_h, 2) * np.linalg.norm(a_w, 2))


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def _avg_pool_bound(layer, in_shape):
    # The window and divisor of PyTorch's avg_pool2d, one dimension at a time.
    in_hw, out_hw = in_shape[-2:], _out_hw(layer, in_shape)
    kernel, pad = _pair(layer.kernel_size), _pair(layer.padding)
    stride = _pair(layer.stride or layer.kernel_size)
    override = layer.divisor_override
    factors = []
    for n, n_out, k, s, p in zip(in_hw, out_hw, kernel, stride, pad, strict=True):
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


def _adaptive_avg_pool_bound(layer, in_shape):
    factors = []
    for n, n_out in zip(in_shape[-2:], _out_hw(layer, in_shape), strict=True):
        a = np.zeros((n_out, n))
        for o in range(n_out):
            lo, hi = (o * n) // n_out, -((-(o + 1) * n) // n_out)
            a[o, lo:hi] = 1.0 / (hi - lo)
        factors.append(a)
    return _separable_pool_bound(layer, in_shape, factors, 1.0)


def _max_pool_bound(layer, in_shape):
    """``sqrt(m)``, ``m`` the most windows any input pixel belongs to.

    ``|max_w x - max_w y| <= max_{i in w} |x_i - y_i|``, so the squared
    output change is at most ``sum_w sum_{i in w} d_i^2 <= m ||d||^2``.
    Windows are rectangles, so ``m = m_h m_w``, with ``m_h`` the most windows
    an input row belongs to: measured on the layer by setting one row to 1
    and the rest to -1 (likewise for columns).
    """
    h, w = in_shape[-2:]
    most = 1.0
    for axis, n in ((0, h), (1, w)):
        x = -np.ones((n, 1, h, w))
        for r in range(n):
            x[(r, 0, r) if axis == 0 else (r, 0, slice(None), r)] = 1.0
        hit = layer(torch.from_numpy(x)).numpy()[:, 0] == 1.0
        most *= hit.any(axis=2 - axis).sum(axis=1).max()
    return _upper(math.sqrt(most))


def _out_hw(layer, in_shape):
    x = torch.zeros((1, 1, *in_shape[-2:]), dtype=torch.float64)
    return tuple(layer(x).shape[-2:])


def _one(layer, in_shape):
    return 1.0


# Supported classes and their bounds ``bound(layer, in_shape)``.
_RULES = [
    (nn.Linear, lambda layer, in_shape: _spectral_norm(layer.weight)),
    (
        nn.Conv2d,
        lambda layer, in_shape: conv2d_spectral_norm_bound(layer, in_shape[-2:]),
    ),
    (nn.BatchNorm1d, _batchnorm_bound),
    (nn.BatchNorm2d, _batchnorm_bound),
    (nn.AvgPool2d, _avg_pool_bound),
    (nn.AdaptiveAvgPool2d, _adaptive_avg_pool_bound),
    (nn.MaxPool2d, _max_pool_bound),
    (nn.AdaptiveMaxPool2d, _max_pool_bound),
    (nn.ReLU, _one),
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


def _rule(layer):
    return dict(_RULES).get(_base_class(layer))


def _is_plain_sequential(module):
    """An ``nn.Sequential``, or a subclass running its children the same way."""
    names = ("forward", "__iter__", "__call__", "_call_impl")
    return isinstance(module, nn.Sequential) and all(
        getattr(type(module), n) is getattr(nn.Sequential, n) for n in names
    )


def _config_error(layer):
    """Why a supported layer type cannot be bounded in this configuration."""
    if isinstance(layer, nn.Conv2d) and layer.padding_mode != "zeros":
        return f'padding_mode must be "zeros", got {layer.padding_mode!r}'
    if isinstance(layer, nn.MaxPool2d | nn.AdaptiveMaxPool2d) and layer.return_indices:
        return "return_indices=True returns a tuple, which no next layer accepts"
    if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d) and layer.running_var is None:
        return (
            "without running statistics (track_running_stats=False) it "
            "normalises by batch statistics, so no per-sample bound exists"
        )
    return None


def _check_hooks(module, where):
    if module._forward_hooks or module._forward_pre_hooks:
        raise TypeError(
            f"Cannot bound the Lipschitz constant of {where}: it has forward "
            "hooks, which may change its output. Remove them (for spectral or "
            "weight normalisation use torch.nn.utils.parametrizations instead)."
        )


def _flatten(module, name=""):
    """``(name, layer)`` pairs in execution order, nested Sequentials opened."""
    _check_hooks(module, f"'{name}' ({_type_name(module)})" if name else "the module")
    if _is_plain_sequential(module):
        out = []
        # _modules, not named_children(): a layer used twice must count twice.
        for child_name, child in module._modules.items():
            out += _flatten(child, f"{name}.{child_name}" if name else child_name)
        return out
    return [(name, module)]


def _describe(position, name, layer):
    where = "" if name in ("", str(position)) else f" at '{name}'"
    return f"layer {position} ({_type_name(layer)}{where})"


def _layers(module):
    """Flattened layers with their bound rules; raises for unsupported ones."""
    global_hooks = (
        getattr(torch.nn.modules.module, "_global_forward_hooks", None),
        getattr(torch.nn.modules.module, "_global_forward_pre_hooks", None),
    )
    if any(global_hooks):
        raise TypeError(
            "Cannot bound Lipschitz constants while global forward hooks are "
            "registered (torch.nn.modules.module.register_module_forward_hook)."
        )
    out = []
    for position, (name, layer) in enumerate(_flatten(module)):
        desc = _describe(position, name, layer)
        rule = _rule(layer)
        if rule is None:
            hint = ""
            if isinstance(layer, nn.Sequential):
                hint = " (it overrides how nn.Sequential runs its layers)"
            elif any(isinstance(layer, cls) for cls, _ in _RULES):
                hint = " (subclasses may compute something else)"
            elif isinstance(layer, nn.Module) and list(layer.children()):
                hint = " (its forward is unknown: use nn.Sequential containers)"
            raise TypeError(
                f"Cannot bound the Lipschitz constant of {desc}{hint}: supported "
                f"layers are {_SUPPORTED}, in nn.Sequential containers."
            )
        reason = _config_error(layer)
        if reason is not None:
            raise ValueError(
                f"Cannot bound the Lipschitz constant of {desc}: {reason}."
            )
        out.append((desc, layer, rule))
    return out


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


def _analyse(module, input_shape):
    """``[(desc, layer, in_shape, bound)]``; call inside :func:`_eval_mode`."""
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
    out = []
    for desc, layer, rule in layers:
        in_shape = tuple(x.shape)
        try:
            x = layer(x)
        except (RuntimeError, ValueError, TypeError) as err:
            raise ValueError(
                f"input_shape={input_shape} does not fit {desc}, which fails on "
                f"an input of shape {in_shape}: {err}"
            ) from err
        out.append((desc, layer, in_shape, rule(layer, in_shape)))
    return out


def layer_lipschitz_bounds(module, input_shape):
    """Sound l2 Lipschitz bound of every layer of a sequential network.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (possibly nested, or a subclass that runs its
        layers the same way) of supported layers, or a single supported
        layer. Layers must be instances of the listed classes themselves (or
        their ``torch.nn.utils.parametrize`` versions), not of subclasses.
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
    - ``nn.AvgPool2d``, ``nn.AdaptiveAvgPool2d``: per channel the operator is
      a Kronecker product ``A_h (x) A_w`` of 1-D averaging matrices; its norm
      ``||A_h||_2 ||A_w||_2`` is exact.
    - ``nn.MaxPool2d``, ``nn.AdaptiveMaxPool2d``: ``sqrt(m)`` with ``m`` the
      largest number of windows containing one input pixel (at most
      ``ceil(k_h / s_h) ceil(k_w / s_w)``); attained at an input with one
      dominant pixel.
    - ``nn.ReLU``, ``nn.Tanh``, ``nn.Softplus``: 1; ``nn.LeakyReLU``:
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
    >>> from sk_margin.lipschitz import layer_lipschitz_bounds
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Sigmoid())
    >>> [
    ...     (pos, type(layer).__name__)
    ...     for pos, layer, _ in layer_lipschitz_bounds(net, (3,))
    ... ]
    [(0, 'Linear'), (1, 'Sigmoid')]
    """
    with _eval_mode(module):
        records = _analyse(module, input_shape)
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
    >>> from sk_margin.lipschitz import lipschitz_bound
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False), torch.nn.ReLU())
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[3.0, 0.0], [0.0, 4.0]]))
    >>> round(lipschitz_bound(net, (2,)), 6)
    4.0
    """
    bounds = [bound for _, _, bound in layer_lipschitz_bounds(module, input_shape)]
    return _upper(math.prod(bounds))


def _head(module, input_shape, caller):
    """Float64 weight of the last ``nn.Linear`` and the bound of what precedes it."""
    with _eval_mode(module):
        records = _analyse(module, input_shape)
        last = len(records) - 1
        while last >= 0 and isinstance(records[last][1], (nn.Identity, *_DROPOUTS)):
            last -= 1
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
    prefix = _upper(math.prod(bound for _, _, _, bound in records[:last]))
    return weight, prefix


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
    :func:`sk_margin.certify.kesidis_radius`).

    References
    ----------
    .. [1] G. Kesidis, D. J. Miller and Z. Xiang. Notes on Lipschitz margin,
       Lipschitz margin training, and Lipschitz margin p-values for deep
       neural network classifiers. Theorem 2.1.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.lipschitz import linf_lipschitz_bound
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[3.0, 4.0], [1.0, 0.0]]))
    >>> round(linf_lipschitz_bound(net, (2,)), 6)
    5.0
    """
    weight, prefix = _head(module, input_shape, "linf_lipschitz_bound")
    return _upper(np.linalg.norm(weight, axis=1).max() * prefix)


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
    >>> from sk_margin.lipschitz import pairwise_lipschitz_bounds
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2, bias=False))
    >>> with torch.no_grad():
    ...     _ = net[0].weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    >>> pairwise_lipschitz_bounds(net, (2,)).round(6)
    array([[0., 5.],
           [5., 0.]])
    """
    weight, prefix = _head(module, input_shape, "pairwise_lipschitz_bounds")
    # Row by row (not via Gram matrices, whose cancellation could round down).
    norms = np.stack([np.linalg.norm(w - weight, axis=1) for w in weight])
    bounds = norms * _upper(prefix)
    np.fill_diagonal(bounds, 0.0)
    return bounds
