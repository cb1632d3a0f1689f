"""How bound propagation handles each layer kind: linear maps and relaxations.

Affine layers are carried back through their adjoint (:func:`transpose`,
by autograd for anything but ``nn.Linear``) and, for interval arithmetic,
through their absolute values (:func:`abs_forward`, :func:`abs_transpose`).
Each non-linear layer is enclosed, on the interval of its inputs, between two
linear functions (:func:`relax`; :class:`MaxPool` for max pooling;
:class:`PairSort` for sorting pairs, on the interval of their differences).
:func:`unsupported_layer` says what bound propagation cannot handle.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from sk_margin.nets.certify._layers import base_class, describe, sequential_layers
from sk_margin.nets.certify._rules import DROPOUTS, batchnorm_scale
from sk_margin.nets.certify._sorting import group_sort

__all__ = [
    "ACTIVATIONS",
    "MaxPool",
    "PairSort",
    "abs_forward",
    "abs_transpose",
    "relax",
    "transpose",
    "unsupported_layer",
]

RESHAPES = (nn.Flatten, nn.Unflatten, nn.Identity, *DROPOUTS)
_POOLS_LINEAR = (
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
)
# Pixel (un)shuffles permute their input's entries: linear, entries 0 or 1.
_PERMUTATIONS = (nn.PixelUnshuffle, nn.PixelShuffle)
_AFFINE = (
    nn.Linear,
    nn.Conv2d,
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    *_POOLS_LINEAR,
    *_PERMUTATIONS,
)
ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Softplus, nn.Tanh, nn.Sigmoid)
_SUPPORTED = (
    "nn.Linear, nn.Conv2d, nn.BatchNorm1d/2d (eval), average pooling, "
    "nn.MaxPool2d (no padding or dilation), nn.PixelUnshuffle, nn.PixelShuffle, "
    "nn.Flatten, nn.Unflatten, "
    "nn.Identity, nn.Dropout (eval), nn.ReLU, nn.LeakyReLU (slope in [0, 1]), "
    "nn.Softplus, nn.Tanh, nn.Sigmoid, and sorting of pairs (MaxMin, "
    "deel-torchlip's GroupSort2)"
)
# Relaxations of smooth activations are shifted by this much (absolute) to
# absorb the rounding of their tangent and secant lines.
_LINE_SLACK = 1e-12
# Bisection steps when searching the tangent point of a sigmoid or tanh.
_TANGENT_STEPS = 40


def unsupported_layer(module):
    """Why bound propagation cannot handle ``module``, or None if it can.

    Parameters
    ----------
    module : torch.nn.Module
        The network.

    Returns
    -------
    reason : str or None
        Names the first unsupported layer and its position.
    """
    for position, (name, layer) in enumerate(sequential_layers(module)):
        cls = base_class(layer)
        if cls in _AFFINE or cls in RESHAPES:
            if cls is nn.Conv2d and layer.padding_mode != "zeros":
                return (
                    f"{describe(position, name, layer)} pads with {layer.padding_mode}"
                )
            if isinstance(layer, nn.modules.batchnorm._BatchNorm):
                if layer.running_var is None:
                    return (
                        f"{describe(position, name, layer)} has no running statistics"
                    )
            continue
        if cls in ACTIVATIONS:
            if cls is nn.LeakyReLU and not 0 <= layer.negative_slope <= 1:
                return f"{describe(position, name, layer)} has a slope outside [0, 1]"
            continue
        spec = group_sort(layer)
        if spec is not None:
            if spec.group_size != 2:
                return (
                    f"{describe(position, name, layer)} sorts groups of "
                    f"{spec.group_size or 'all'} features; bound propagation "
                    "supports groups of two"
                )
            continue
        if cls is nn.MaxPool2d:
            if (
                _pair(layer.padding) != (0, 0)
                or _pair(layer.dilation) != (1, 1)
                or layer.ceil_mode
                or layer.return_indices
            ):
                return (
                    f"{describe(position, name, layer)}: only max pooling without "
                    "padding, dilation, ceil_mode or return_indices is supported"
                )
            continue
        return (
            f"{describe(position, name, layer)} is not supported; bound "
            f"propagation supports {_SUPPORTED}"
        )
    return None


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


# ------------------------------------------------------------- relaxations ---
def _sigma(layer, z):
    """The activation in float64, and its derivative."""
    if isinstance(layer, nn.Tanh):
        t = torch.tanh(z)
        return t, 1.0 - t * t
    s = torch.sigmoid(z)
    return s, s * (1.0 - s)


def _tangent_through(layer, anchor, far):
    """Tangent point ``d >= 0`` whose tangent passes above ``(anchor, sigma(anchor))``.

    For an S-shaped ``sigma`` (convex below 0, concave above) and ``anchor <
    0``, the tangent at ``d >= 0`` lies above ``sigma`` on ``[0, inf)`` and,
    once it lies above ``sigma(anchor)`` at ``anchor``, on ``[anchor, 0]``
    too (there ``sigma`` lies below its chord). ``t_d(anchor) - sigma(anchor)``
    increases with ``d``; the returned ``d`` is the upper end of a bisection
    bracket, so it satisfies the condition (checked, else ``far``).
    """
    s_anchor, _ = _sigma(layer, anchor)
    lo = torch.zeros_like(anchor)
    hi = far.clone()

    def above(d):
        s_d, ds_d = _sigma(layer, d)
        return s_d + ds_d * (anchor - d) >= s_anchor

    ok = above(hi)
    hi = torch.where(ok, hi, torch.full_like(hi, 40.0))  # sigma is flat there
    for _ in range(_TANGENT_STEPS):
        mid = 0.5 * (lo + hi)
        good = above(mid)
        hi = torch.where(good, mid, hi)
        lo = torch.where(good, lo, mid)
    return hi


def _s_shaped(layer, lo, hi):
    """Lower and upper lines of tanh or sigmoid on ``[lo, hi]``."""
    mid = 0.5 * (lo + hi)
    s_lo, _ = _sigma(layer, lo)
    s_hi, _ = _sigma(layer, hi)
    s_mid, ds_mid = _sigma(layer, mid)
    width = hi - lo
    flat = width <= 1e-12
    secant = torch.where(flat, ds_mid, (s_hi - s_lo) / torch.where(flat, 1.0, width))
    tangent = (ds_mid, s_mid - ds_mid * mid)
    chord = (secant, s_lo - secant * lo)
    convex = hi <= 0  # sigma convex on [lo, hi]: tangent below, chord above
    concave = lo >= 0
    # Mixed signs: the upper line is a tangent at d >= 0 passing above the
    # point at lo; the lower line the mirror image (sigma(z) = 2 sigma(0) -
    # sigma(-z)), a tangent at -d' <= 0 passing below the point at hi.
    d_up = _tangent_through(layer, torch.minimum(lo, torch.zeros_like(lo)), hi.abs())
    s_d, ds_d = _sigma(layer, d_up)
    up_mixed = (ds_d, s_d - ds_d * d_up)
    d_low = _tangent_through(layer, torch.minimum(-hi, torch.zeros_like(hi)), lo.abs())
    s_d, ds_d = _sigma(layer, d_low)
    centre = 0.0 if isinstance(layer, nn.Tanh) else 0.5
    # upper line of sigma on [-hi, -lo]: a z + b; lower on [lo, hi]: a z + 2c - b
    low_mixed = (ds_d, 2.0 * centre - (s_d - ds_d * d_low))
    low_a = torch.where(
        convex, tangent[0], torch.where(concave, chord[0], low_mixed[0])
    )
    low_b = torch.where(
        convex, tangent[1], torch.where(concave, chord[1], low_mixed[1])
    )
    up_a = torch.where(convex, chord[0], torch.where(concave, tangent[0], up_mixed[0]))
    up_b = torch.where(convex, chord[1], torch.where(concave, tangent[1], up_mixed[1]))
    return low_a, low_b - _LINE_SLACK, up_a, up_b + _LINE_SLACK


def _softplus(layer, lo, hi):
    """Lower (tangent) and upper (chord) lines of the convex softplus.

    torch returns ``z`` where ``beta z > threshold``, below softplus by at
    most ``exp(-threshold) / beta``: the lower line is lowered by that much.
    """
    beta = float(layer.beta)

    def sp(z):
        return F.softplus(z, beta=beta, threshold=1e9)

    mid = 0.5 * (lo + hi)
    slope_mid = torch.sigmoid(beta * mid)
    width = hi - lo
    flat = width <= 1e-12
    chord = torch.where(
        flat, slope_mid, (sp(hi) - sp(lo)) / torch.where(flat, 1.0, width)
    )
    jump = math.exp(-float(layer.threshold)) / beta
    low_b = sp(mid) - slope_mid * mid - jump - _LINE_SLACK
    up_b = sp(lo) - chord * lo + _LINE_SLACK
    return slope_mid, low_b, chord, up_b


def _piecewise_linear(slope, lo, hi):
    """Lines of ``z -> max(z, slope z)`` (ReLU for slope 0) on ``[lo, hi]``."""
    active, dead = lo >= 0, hi <= 0
    width = torch.where(active | dead, 1.0, hi - lo)
    chord = (hi - slope * lo) / width
    up_a = torch.where(active, 1.0, torch.where(dead, slope, chord))
    up_b = torch.where(active | dead, 0.0, (slope - chord) * lo)
    # Adaptive lower slope (CROWN): 1 when the interval is mostly positive.
    low_a = torch.where(active, 1.0, torch.where(dead | (hi < -lo), slope, 1.0)).to(lo)
    return low_a, torch.zeros_like(lo), up_a.to(lo), up_b.to(lo)


def relax(layer, lo, hi):
    """Lines ``low_a z + low_b <= layer(z) <= up_a z + up_b`` on ``[lo, hi]``."""
    if isinstance(layer, nn.ReLU):
        return _piecewise_linear(0.0, lo, hi)
    if isinstance(layer, nn.LeakyReLU):
        return _piecewise_linear(float(layer.negative_slope), lo, hi)
    if isinstance(layer, nn.Softplus):
        return _softplus(layer, lo, hi)
    return _s_shaped(layer, lo, hi)


# -------------------------------------------------------------- the engine ---
class MaxPool:
    """The windows of an ``nn.MaxPool2d`` layer (no padding, no dilation)."""

    def __init__(self, layer, in_shape):
        self.kernel, self.stride = _pair(layer.kernel_size), _pair(layer.stride)
        self.in_shape = tuple(in_shape)

    def windows(self, t):
        """``(n, c, h, w) -> (n, c, k*k, L)``: the inputs of every window."""
        n, c, h, w = t.shape
        cols = F.unfold(t.reshape(n * c, 1, h, w), self.kernel, stride=self.stride)
        return cols.reshape(n, c, cols.shape[1], cols.shape[2])

    def output_bounds(self, lo, hi):
        """Interval of the outputs, ``(n, c, L)`` each."""
        return self.windows(lo).amax(2), self.windows(hi).amax(2)

    def fit(self, lo, hi):
        """The relaxation of every window on the box ``[lo, hi]``."""
        lw, hw = self.windows(lo), self.windows(hi)
        best = lw.argmax(2, keepdim=True)  # the input with the largest lower end
        others = hw.scatter(2, best, -torch.inf).amax(2, keepdim=True)
        # Stable: that input is the maximum everywhere on the box, y = x_best.
        stable = lw.gather(2, best) >= others
        return _MaxPoolRelaxation(self, best, stable, hw.amax(2, keepdim=True))


class _MaxPoolRelaxation:
    """``x_best <= max(window) <= x_best`` (stable) or ``<= max(upper)``."""

    def __init__(self, pool, best, stable, top):
        self.pool, self.best = pool, best
        self.stable, self.top = stable[:, None, :, 0, :], top[:, None, :, 0, :]

    def take(self, rows):
        """The relaxation of some rows only."""
        taken = object.__new__(_MaxPoolRelaxation)
        taken.pool, taken.best = self.pool, self.best[rows]
        taken.stable, taken.top = self.stable[rows], self.top[rows]
        return taken

    def backward(self, lam, lower):
        """Coefficients ``lam`` (n, m, c, L) on the outputs -> on the inputs."""
        n, m, c, length = lam.shape
        pos, neg = lam.clamp(min=0), lam.clamp(max=0)
        # ``side`` uses the lower line x_best, ``other`` the upper line.
        side, other = (pos, neg) if lower else (neg, pos)
        onto_best = side + torch.where(self.stable, other, 0.0)
        bias = (torch.where(self.stable, 0.0, other) * self.top).sum((2, 3))
        k2 = self.pool.kernel[0] * self.pool.kernel[1]
        full = lam.new_zeros((n, m, c, k2, length))
        idx = self.best[:, None].expand(n, m, c, 1, length)
        full.scatter_(3, idx, onto_best[:, :, :, None, :])
        _, h, w = self.pool.in_shape
        back = F.fold(
            full.reshape(n * m * c, k2, length),
            (h, w),
            self.pool.kernel,
            stride=self.pool.stride,
        )
        return back.reshape(n, m, c, h, w), bias


class PairSort:
    """A layer sorting each pair of features of dimension 1 (GroupSort-2).

    ``(a, b) -> s (max(a, b), min(a, b))``, or ``s (min, max)`` for an
    ascending sort, ``s > 0``. With ``r = relu(a - b)``, ``max = b + r`` and
    ``min = a - r``: the layer is linear but for one ReLU per pair, whose
    input is the difference ``d = a - b``. Its relaxation is the ReLU's, on
    the interval of ``d`` over the ball (bounded directly, which is far
    tighter than the difference of the intervals of ``a`` and ``b``).
    """

    def __init__(self, layer, in_shape):
        spec = group_sort(layer)
        self.descending, self.scale = spec.descending, spec.scale
        self.in_shape = tuple(in_shape)

    def differences(self, t):
        """``(n, 2k, *rest) -> (n, k, *rest)``: ``a - b`` of every pair."""
        a, b = t.unflatten(1, (-1, 2)).unbind(2)
        return a - b

    def difference_bounds(self, lo, hi):
        """``[lo_a - hi_b, hi_a - lo_b]``: the differences from the inputs' interval."""
        (lo_a, lo_b), (hi_a, hi_b) = (
            t.unflatten(1, (-1, 2)).unbind(2) for t in (lo, hi)
        )
        return lo_a - hi_b, hi_a - lo_b

    def difference_rows(self, dtype):
        """The rows of the map ``t -> a - b``: ``(1, k * prod(rest), *in_shape)``."""
        half = math.prod(self.in_shape) // 2
        eye = torch.eye(half, dtype=dtype).reshape(half, self.in_shape[0] // 2, 1,
                                                   *self.in_shape[1:])  # fmt: skip
        return torch.cat([eye, -eye], 2).reshape(1, half, *self.in_shape)

    def output_bounds(self, lo, hi):
        """Interval of the outputs from the interval of the inputs."""
        (lo_a, lo_b), (hi_a, hi_b) = (
            t.unflatten(1, (-1, 2)).unbind(2) for t in (lo, hi)
        )
        top = torch.maximum(lo_a, lo_b), torch.maximum(hi_a, hi_b)
        bottom = torch.minimum(lo_a, lo_b), torch.minimum(hi_a, hi_b)
        first, second = (top, bottom) if self.descending else (bottom, top)
        low = torch.stack([first[0], second[0]], 2).flatten(1, 2)
        high = torch.stack([first[1], second[1]], 2).flatten(1, 2)
        return self.scale * low, self.scale * high

    def fit(self, lo, hi):
        """The relaxation on the interval ``[lo, hi]`` of the differences."""
        return _PairSortRelaxation(self, lo, hi)

    def jacobian_bounds(self, lo, hi, d_lo, d_hi):
        """Bounds of ``lam J`` on the ball, ``lam`` in ``[lo, hi]`` on the outputs.

        ``J`` swaps or keeps each pair: fixed where ``d`` keeps its sign on
        the ball, either (the hull of both) where it may change sign.
        """
        pairs = [(self.scale * t).unflatten(2, (-1, 2)).unbind(3) for t in (lo, hi)]
        if not self.descending:
            pairs = [(second, first) for first, second in pairs]
        (lo_max, lo_min), (hi_max, hi_min) = pairs
        plus, minus = (d_lo > 0)[:, None], (d_hi < 0)[:, None]
        hull_lo, hull_hi = torch.minimum(lo_max, lo_min), torch.maximum(hi_max, hi_min)
        lo_a = torch.where(plus, lo_max, torch.where(minus, lo_min, hull_lo))
        hi_a = torch.where(plus, hi_max, torch.where(minus, hi_min, hull_hi))
        lo_b = torch.where(plus, lo_min, torch.where(minus, lo_max, hull_lo))
        hi_b = torch.where(plus, hi_min, torch.where(minus, hi_max, hull_hi))
        return (
            torch.stack([lo_a, lo_b], 3).flatten(2, 3),
            torch.stack([hi_a, hi_b], 3).flatten(2, 3),
        )


class _PairSortRelaxation:
    """``c r`` bounded by the ReLU's lines in ``d``; ``c`` the coefficient of ``r``."""

    def __init__(self, pair, lo, hi):
        self.pair, self.lo, self.hi = pair, lo, hi
        self.lines = _piecewise_linear(0.0, lo, hi)

    def take(self, rows):
        """The relaxation of some rows only."""
        return _PairSortRelaxation(self.pair, self.lo[rows], self.hi[rows])

    def backward(self, lam, lower):
        """Coefficients ``lam`` (n, m, 2k, *rest) on the outputs -> on the inputs."""
        first, second = (self.pair.scale * lam).unflatten(2, (-1, 2)).unbind(3)
        on_max, on_min = (first, second) if self.pair.descending else (second, first)
        # on_max max + on_min min = on_max b + on_min a + c r.
        c = on_max - on_min
        pos, neg = c.clamp(min=0), c.clamp(max=0)
        low_a, low_b, up_a, up_b = (t[:, None] for t in self.lines)
        if lower:  # c r >= slope d + bias
            slope, bias = pos * low_a + neg * up_a, pos * low_b + neg * up_b
        else:
            slope, bias = pos * up_a + neg * low_a, pos * up_b + neg * low_b
        back = torch.stack([on_min + slope, on_max - slope], 3).flatten(2, 3)
        return back, bias.flatten(2).sum(2)


def transpose(layer, lam, in_shape, out_shape):
    """``lam A`` for the linear part ``A`` of an affine layer; ``lam`` (n, m, *out)."""
    n, m = lam.shape[:2]
    if isinstance(layer, nn.Linear):
        return lam @ layer.weight
    flat = lam.reshape(n * m, *out_shape)
    if isinstance(layer, RESHAPES):
        back = flat.reshape(n * m, *in_shape)
    else:  # the adjoint by autograd: convolutions, pooling, batch norms
        with torch.enable_grad():
            z = torch.zeros((n * m, *in_shape), dtype=lam.dtype, requires_grad=True)
            (back,) = torch.autograd.grad(layer(z), z, grad_outputs=flat)
    return back.reshape(n, m, *in_shape)


def abs_forward(layer, rad):
    """``|A| rad`` for a non-negative ``rad`` (interval arithmetic)."""
    with torch.no_grad():
        if isinstance(layer, nn.Linear):
            return rad @ layer.weight.abs().T
        if isinstance(layer, nn.Conv2d):
            return layer._conv_forward(rad, layer.weight.abs(), None)
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            scale = batchnorm_scale(layer, exact=True).to(rad)
            return rad * scale.reshape(1, -1, *([1] * (rad.ndim - 2)))
        return layer(rad)  # reshapes, average pooling, shuffles: non-negative


def abs_transpose(layer, rad, in_shape, out_shape):
    """``rad |A|`` for non-negative coefficients ``rad`` (n, m, *out)."""
    if isinstance(layer, nn.Linear):
        return rad @ layer.weight.abs()
    if isinstance(layer, nn.modules.batchnorm._BatchNorm):
        scale = batchnorm_scale(layer, exact=True).to(rad)
        return rad * scale.reshape(1, 1, -1, *([1] * (rad.ndim - 3)))
    if isinstance(layer, nn.Conv2d):
        n, m = rad.shape[:2]
        flat = rad.reshape(n * m, *out_shape)
        with torch.enable_grad():
            z = torch.zeros((n * m, *in_shape), dtype=rad.dtype, requires_grad=True)
            out = layer._conv_forward(z, layer.weight.abs(), None)
            (back,) = torch.autograd.grad(out, z, grad_outputs=flat)
        return back.reshape(n, m, *in_shape)
    return transpose(layer, rad, in_shape, out_shape)  # reshapes, pools, shuffles
