"""Other libraries' layers that compute a torch layer's function, recognised.

deel-torchlip's convolutions (``SpectralConv2d``, ``FrobeniusConv2d``, their
base ``PadConv2d``) and scaled poolings (``ScaledL2NormPool2d``,
``ScaledAvgPool2d``) subclass a torch layer and override its ``forward``:
the convolutions to apply an optional "symmetric" padding first, the poolings
to multiply the result by a constant. :func:`base_class` therefore keeps
their own class, as it must for an unknown subclass. These are recognised
without importing that library, as the sorting layers are: by their module
and class names, then by a seeded float64 probe that the layer computes
exactly its torch base class's ``forward`` (on its parameters as they are at
certification time), times the constant its attributes name. A layer that
fails the probe is not recognised, and the bounds refuse it as unsupported.
"""

import dataclasses
import weakref

import torch
from torch import nn

__all__ = ["PeerLayerSpec", "peer_layer"]

_CONVS = ("deel.torchlip.modules.conv", "deel.torchlip.modules.unconstrained")
# (module, class) -> the torch layer whose forward it computes.
_PEERS = {
    **{(m, "SpectralConv2d"): nn.Conv2d for m in _CONVS},
    **{(m, "FrobeniusConv2d"): nn.Conv2d for m in _CONVS},
    **{(m, "PadConv2d"): nn.Conv2d for m in _CONVS},
    ("deel.torchlip.modules.pooling", "ScaledL2NormPool2d"): nn.LPPool2d,
    ("deel.torchlip.modules.pooling", "ScaledAvgPool2d"): nn.AvgPool2d,
}
# Probed layers: ``layer -> (scale, spec)``; probed again if the scale changes.
_PROBED = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class PeerLayerSpec:
    """What a recognised layer computes: ``scale * base.forward(layer, x)``.

    Attributes
    ----------
    base : type
        The torch layer class whose ``forward`` it runs.
    scale : float
        The positive factor applied to that output.
    """

    base: type
    scale: float


def _scale(layer, base):
    if base is nn.Conv2d:  # k_coef_lip is a parametrization of the weight
        return 1.0
    k = getattr(layer, "_coefficient_lip", 1.0)
    if base is nn.AvgPool2d:  # times sqrt(window size), the peer's own factor
        k = k * getattr(layer, "scalingFactor", 1.0)
    return k


def _probe(layer, base):
    param = next(layer.parameters(), None)
    dtype = torch.float64 if param is None else param.dtype
    g = torch.Generator().manual_seed(0)
    if base is nn.Conv2d:
        pairs = zip(layer.dilation, layer.kernel_size, strict=True)
        side = max(9, *(d * (k - 1) + 3 for d, k in pairs))
        shape = (2, layer.in_channels, side, side)
    else:
        shape = (2, 3, 8, 8)
    return torch.randn(shape, dtype=torch.float64, generator=g).to(dtype)


def _behaves_as(layer, spec):
    """A seeded probe: does ``layer`` compute ``spec``'s function?

    The same operations in the same order give the same bits; the tolerance
    only allows for a scale applied before rather than after.
    """
    try:
        x = _probe(layer, spec.base)
        rtol = 1e-12 if x.dtype == torch.float64 else 1e-5
        with torch.no_grad():
            got = layer(x)
            expected = spec.scale * spec.base.forward(layer, x)
        return got.shape == expected.shape and torch.allclose(
            got, expected, rtol=rtol, atol=0.0
        )
    except (RuntimeError, ValueError, TypeError, AttributeError):
        return False


def peer_layer(layer):
    """What a recognised layer of another library computes, or None.

    Parameters
    ----------
    layer : torch.nn.Module
        Any layer (float64, as certification runs).

    Returns
    -------
    spec : PeerLayerSpec or None
        Its torch base class and output scale, once a probe confirmed them;
        None for any other layer, or one that computes something else.
    """
    cls = next(
        (c for c in type(layer).__mro__ if (c.__module__, c.__name__) in _PEERS),
        None,
    )
    if cls is None:
        return None
    base = _PEERS[(cls.__module__, cls.__name__)]
    if not isinstance(layer, base):
        return None
    scale = _scale(layer, base)
    if not (isinstance(scale, int | float) and scale > 0):
        return None
    cached = _PROBED.get(layer)
    if cached is not None and cached[0] == scale:
        return cached[1]
    spec = PeerLayerSpec(base, float(scale))
    spec = spec if _behaves_as(layer, spec) else None
    _PROBED[layer] = (scale, spec)
    return spec
