"""Convolutional networks that are 1-Lipschitz by construction.

:func:`aol_rescale` parametrises a convolution's (or a dense layer's) weight
so that its operator norm is at most 1: the AOL rescaling of Prach & Lampert
(2022), computed from the kernel's autocorrelation, at a cost that does not
depend on the batch or the image size. :class:`LipschitzCNN` stacks such
convolutions with :class:`~sk_margin.nets.MaxMin` over channel pairs and
2x2 pixel unshuffles (an invertible downsampling: a permutation of the
entries), then orthogonal dense layers, as the dense
:class:`~sk_margin.nets.LipschitzMLP` does.

The certificates never rely on the construction: at certification time
:mod:`sk_margin.nets.certify` bounds every rescaled kernel from its weights
(the Fourier, im2col and Gram bounds of
:func:`~sk_margin.nets.conv2d_spectral_norm_bound`), in float64.
"""

import math

import torch
import torch.nn.functional as F
import torch.nn.utils.parametrize as parametrize
from torch import nn

from sk_margin._validation import is_positive_int
from sk_margin.nets.layers._lipschitz_modules import (
    MaxMin,
    _check_even_sizes,
    _check_orthogonal_map,
    _orthogonal_dense,
    _RebuiltWhenUnpickled,
)

__all__ = ["LipschitzCNN", "aol_rescale"]


def autocorrelation(kernel):
    """``G[i, j, delta] = sum_{o, p} P[o, i, p] P[o, j, p + delta]``.

    The kernel of ``C^T C`` for the convolution ``C`` with kernel ``P`` (one
    group, shape ``(c_out, c_in, kh, kw)``) on the infinite plane: a
    convolution of the kernel with itself, shape ``(c_in, c_in, 2 kh - 1,
    2 kw - 1)``.
    """
    _, _, kh, kw = kernel.shape
    K = kernel.transpose(0, 1)
    return F.conv2d(K, K, padding=(kh - 1, kw - 1))


def _conv_gram_row_sums(kernel, groups):
    """``sum_{j, delta} |G[i, j, delta]|`` per input channel ``i`` (per group),
    shape ``(groups, c_in / groups)``; ``G`` the :func:`autocorrelation`."""
    parts = kernel.chunk(groups, dim=0)
    return torch.stack([autocorrelation(P).abs().sum(dim=(1, 2, 3)) for P in parts])


def _inverse_sqrt(s):
    # A zero row sum belongs to an all-zero column: scale it by 0.
    return torch.where(s > 0, s.clamp_min(torch.finfo(s.dtype).tiny).rsqrt(), 0.0)


class _AOLRescaling(nn.Module):
    """``W -> W D``, ``D_ii = (sum_j |W^T W|_ij)^(-1/2)`` (Prach & Lampert).

    For a dense weight with more columns than rows the rows are rescaled
    instead (``D W`` from ``|W W^T|``), so the Gram matrix is the smaller
    one. For a convolution, ``W^T W`` is the convolution whose kernel is the
    autocorrelation of the kernel, and ``D`` scales its input channels.
    """

    def __init__(self, groups=1):
        super().__init__()
        self.groups = groups

    def forward(self, W):
        if W.dim() == 2:
            if W.shape[1] > W.shape[0]:
                d = _inverse_sqrt((W @ W.T).abs().sum(dim=1))
                return d[:, None] * W
            return W * _inverse_sqrt((W.T @ W).abs().sum(dim=1))
        d = _inverse_sqrt(_conv_gram_row_sums(W, self.groups))  # (groups, c_in)
        scaled = W.unflatten(0, (self.groups, -1)) * d[:, None, :, None, None]
        return scaled.flatten(0, 1)


def aol_rescale(layer):
    """Parametrise a layer's weight to operator norm at most 1 (AOL).

    Almost-orthogonal Lipschitz layers (Prach & Lampert, 2022, Theorem 1):
    for any matrix ``P``, ``P D`` with ``D_ii = (sum_j |P^T P|_ij)^(-1/2)``
    has spectral norm at most 1. A convolution's ``P^T P`` is itself a
    convolution, whose kernel is the autocorrelation of the layer's kernel
    (a convolution of the kernel with itself, ``c_in^2 c_out k^4`` operations
    whatever the batch or image size); ``D`` then scales each input channel.
    The training is differentiable through the rescaling.

    Parameters
    ----------
    layer : torch.nn.Conv2d or torch.nn.Linear
        The layer, changed in place. A convolution needs
        ``padding_mode="zeros"``; any stride, dilation and groups.

    Returns
    -------
    layer : torch.nn.Conv2d or torch.nn.Linear
        The same layer, its weight parametrised.

    Notes
    -----
    The certificates do not trust this: they bound the rescaled weight as
    any other (:func:`~sk_margin.nets.conv2d_spectral_norm_bound`).

    The norm is at most 1, and reaches 1 only where ``|P^T P|`` is close to
    diagonal (an orthogonal kernel): training must push it there. In
    20-epoch MNIST trainings of :class:`LipschitzCNN` with
    ``criterion="certified_margin"`` the rescaled convolutions reached norms
    of 0.99 to 0.999 when the loss divided by 1 (``lipschitz="auto"``), and
    ended at 0.68 to 0.92 when it divided by an estimate of their norms.

    References
    ----------
    .. [1] B. Prach and C. H. Lampert. Almost-orthogonal layers for
       efficient general-purpose Lipschitz networks. ECCV 2022.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import aol_rescale, conv2d_spectral_norm_bound
    >>> conv = aol_rescale(torch.nn.Conv2d(3, 8, 3, padding=1)).double()
    >>> bool(conv2d_spectral_norm_bound(conv, (16, 16)) <= 1.0 + 1e-6)
    True
    """
    if type(layer) is nn.Conv2d:
        if layer.padding_mode != "zeros":
            raise ValueError(
                f'aol_rescale needs padding_mode="zeros", got {layer.padding_mode!r}.'
            )
        groups = layer.groups
    elif type(layer) is nn.Linear:
        groups = 1
    else:
        raise TypeError(
            f"aol_rescale takes an nn.Conv2d or an nn.Linear, got "
            f"{type(layer).__name__}."
        )
    parametrize.register_parametrization(layer, "weight", _AOLRescaling(groups))
    return layer


def _image_shape(input_shape):
    """``(C, H, W)`` from ``(C, H, W)``, ``(H, W)`` or a square ``(H * W,)``."""
    try:
        shape = tuple(input_shape)
    except TypeError:
        shape = None
    if shape and all(is_positive_int(v) for v in shape):
        shape = tuple(int(v) for v in shape)
        if len(shape) == 3:
            return shape
        if len(shape) == 2:
            return (1, *shape)
        side = math.isqrt(shape[0])
        if len(shape) == 1 and side * side == shape[0]:
            return (1, side, side)
        if len(shape) == 1:
            raise ValueError(
                f"LipschitzCNN needs image-shaped inputs; got rows of "
                f"{shape[0]} features, which are no square single-channel "
                "image. Pass the shape of one image as module__input_shape="
                "(C, H, W), or reshape X to (n_samples, C, H, W)."
            )
    raise ValueError(
        "input_shape must be (C, H, W), (H, W) or (H * W,) for a square image, "
        f"of positive ints; got {input_shape!r}. Set it with "
        "module__input_shape=(C, H, W)."
    )


class LipschitzCNN(_RebuiltWhenUnpickled, nn.Sequential):
    """A convolutional network whose hidden part is 1-Lipschitz by construction.

    ``Flatten -> Unflatten(1, (C, H, W))``, then for each entry of
    ``channels`` an AOL-rescaled ``3 x 3`` convolution (:func:`aol_rescale`,
    zero padding, operator norm at most 1), :class:`MaxMin` over channel
    pairs and, while the image's height and width are even, a 2x2
    ``nn.PixelUnshuffle`` (which halves them and multiplies the channels by
    4, a permutation of the entries); then ``Flatten``, an orthogonal dense
    layer and :class:`MaxMin` for each of ``hidden_sizes``
    (:func:`orthogonalize`), and a plain ``nn.Linear`` to ``n_classes``
    logits. As for :class:`LipschitzMLP`, ``f_c - f_j`` is then
    ``||w_c - w_j||``-Lipschitz, the constant of the pairwise certificate,
    which ``criterion="certified_margin"`` trains for.

    Parameters
    ----------
    input_shape : tuple of int
        Shape of one input: ``(C, H, W)``, ``(H, W)``, or ``(H * W,)`` for
        flat rows of a square single-channel image. Inputs are reshaped to
        ``(n, C, H, W)``, so flat rows and image batches both work.
    n_classes : int
        Number of logits.
    channels : sequence of int, default=(32, 64)
        Output channels of the convolutions, each even (MaxMin pairs them).
    hidden_sizes : sequence of int, default=(256, 256)
        Widths of the dense hidden layers, each even.
    kernel_size : int, default=3
        Odd size of the square convolution kernels ("same" zero padding).
    orthogonal_map : {"qr", "cayley", "matrix_exp", "householder"}, default="qr"
        How the dense hidden weights are kept orthogonal.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import LipschitzCNN, lipschitz_bound
    >>> net = LipschitzCNN((1, 8, 8), 10, channels=(4,), hidden_sizes=(8,))
    >>> [type(m).__name__ for m in net][2:6]
    ['ParametrizedConv2d', 'MaxMin', 'PixelUnshuffle', 'Flatten']
    >>> hidden = torch.nn.Sequential(*list(net.children())[:-1]).double()
    >>> bool(lipschitz_bound(hidden, (64,)) <= 1.0 + 1e-6)
    True
    """

    #: The Lipschitz constant of the hidden part (all but the last layer)
    #: by construction, which ``criterion="certified_margin"`` trains with;
    #: the certificates bound every layer from its weights instead.
    hidden_lipschitz_bound = 1.0

    def __init__(
        self,
        input_shape,
        n_classes,
        channels=(32, 64),
        hidden_sizes=(256, 256),
        kernel_size=3,
        orthogonal_map="qr",
    ):
        shape = _image_shape(input_shape)
        if not is_positive_int(n_classes):
            raise ValueError(f"n_classes must be a positive int, got {n_classes!r}.")
        channels = _check_even_sizes("channels", channels)
        hidden_sizes = _check_even_sizes("hidden_sizes", hidden_sizes)
        if not (is_positive_int(kernel_size) and kernel_size % 2 == 1):
            raise ValueError(
                f"kernel_size must be a positive odd int, got {kernel_size!r}."
            )
        _check_orthogonal_map(orthogonal_map)
        layers = [nn.Flatten(), nn.Unflatten(1, shape)]
        c, h, w = shape
        for out in channels:
            conv = nn.Conv2d(c, out, kernel_size, padding=kernel_size // 2)
            layers += [aol_rescale(conv), MaxMin()]
            c = out
            if h % 2 == 0 and w % 2 == 0:
                layers.append(nn.PixelUnshuffle(2))
                c, h, w = 4 * c, h // 2, w // 2
        dense, width = _orthogonal_dense(c * h * w, hidden_sizes, orthogonal_map)
        super().__init__(
            *layers, nn.Flatten(), *dense, nn.Linear(width, int(n_classes))
        )
        self.input_shape, self.n_classes = shape, int(n_classes)
        self.channels, self.hidden_sizes = channels, hidden_sizes
        self.kernel_size, self.orthogonal_map = int(kernel_size), orthogonal_map

    _init_args = (
        "input_shape",
        "n_classes",
        "channels",
        "hidden_sizes",
        "kernel_size",
        "orthogonal_map",
    )
