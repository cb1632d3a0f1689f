"""A proven bound of the l2 operator norm of ``nn.Conv2d`` layers."""

import math

import numpy as np
import torch
from torch import nn

from sk_margin.nets.certify._layers import base_class, type_name, upper
from sk_margin.nets.certify._peers import peer_layer
from sk_margin.nets.layers._lipschitz_conv import autocorrelation

__all__ = ["conv2d_spectral_norm_bound"]

# Complex entries per batch of frequency matrices in the convolution bound.
_CONV_BATCH_ENTRIES = 2**22


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


def _gram_bound(weight, groups, n_iter=50):
    """Schur-test bound of a convolution's norm from its Gram kernel.

    ``weight`` is the float64 kernel, shape ``(c_out, c_in / groups, kh,
    kw)``. On the infinite plane a convolution ``C`` has ``C^T C`` equal to
    the convolution whose kernel is ``G[i, j, delta] = sum_{o, p} P[o, i, p]
    P[o, j, p + delta]`` (per group). With ``M_ij = sum_delta |G[i, j,
    delta]|`` and any positive ``v``, the Schur test (with ``v`` constant
    over positions) gives ``||C||^2 <= max_i (M v)_i / v_i``: for ``v = 1``
    the largest row sum of ``|C^T C|``, and down to the spectral radius of
    ``M`` for its Perron vector, which power iteration approaches (every
    iterate is positive, so every one gives a sound bound; the last is
    used). The layer is ``C`` on inputs embedded in the plane by zero
    padding (an isometry), dilated (the same entries at spread offsets),
    then restricted and subsampled to its output grid (norm at most 1), so
    the bound holds for it too, whatever the input size.

    Rounding: each computed entry of ``G`` is a sum of ``n = c_out kh kw /
    groups`` products, within ``n eps`` of the sum of their absolute values
    (``A``), and so is each sum over offsets; ``M`` is raised by both, and
    the final ratio by the rounding of ``M v``.
    """
    eps = np.finfo(np.float64).eps
    best = 0.0
    for kernel in weight.chunk(groups, dim=0):
        c_out, c_in, kh, kw = kernel.shape
        G, A = autocorrelation(kernel), autocorrelation(kernel.abs())
        n, m = c_out * kh * kw, G[0, 0].numel()
        M = G.abs().sum(dim=(2, 3)) + 1.01 * n * eps * A.sum(dim=(2, 3))
        M = M * (1.0 + 1.01 * m * eps)
        v = torch.ones(c_in, dtype=torch.float64)
        for _ in range(n_iter):
            w = M @ v
            if not torch.all(w > 0):
                break  # a zero row: keep the last positive iterate
            v = w / w.max()
        ratio = (M @ v) / v
        best = max(best, ratio.max().item() * (1.0 + 1.01 * (c_in + 2) * eps))
    return math.sqrt(best)


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
    - Gram (the bound behind AOL, Prach & Lampert 2022, Theorem 1, for
      the convolution's operator): ``|C^T C|`` has the entries of the
      kernel's autocorrelation ``G[i, j, delta] = sum_{o, p} P[o, i, p]
      P[o, j, p + delta]`` (a convolution of the kernel with itself), and
      the Schur test with weights constant over positions bounds ``||C||^2``
      by the spectral radius of ``M_ij = sum_delta |G[i, j, delta]|``, from
      above at every step of a power iteration. It costs ``c_in^2 c_out
      k^4`` whatever the input size and is 1 (to rounding) for a kernel
      rescaled by :func:`~sk_margin.nets.aol_rescale`, but it is never below
      the Fourier bound, which is exact on the infinite plane.

    The result is enlarged by a relative 1e-9 to absorb float64 rounding.

    References
    ----------
    .. [1] H. Sedghi, V. Gupta and P. M. Long. The singular values of
       convolutional layers. ICLR 2019.
    .. [2] B. Prach and C. H. Lampert. Almost-orthogonal layers for
       efficient general-purpose Lipschitz networks. ECCV 2022.

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
    if (
        base_class(conv) is not nn.Conv2d
        and getattr(peer_layer(conv), "base", None) is not nn.Conv2d
    ):
        raise TypeError(f"conv must be an nn.Conv2d, got {type_name(conv)}.")
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
    gram = _gram_bound(weight.flatten(0, 1), conv.groups)
    return upper(min(fourier, unfold * math.sqrt(overlap), gram))
