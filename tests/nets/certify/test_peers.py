"""Other libraries' convolutions and poolings in the bounds: recognised by class
and behaviour, bounded from their weights, refused when they compute
something else.

deel-torchlip is an optional extra: stand-ins with its module and class names
check the recognition; the real library is tested where it is installed.
"""

import math

import numpy as np
import pytest
import torch
from torch import nn

from sk_margin.nets import (
    certify_network,
    conv2d_spectral_norm_bound,
    layer_lipschitz_bounds,
    lipschitz_bound,
)
from sk_margin.nets.certify._peers import PeerLayerSpec, peer_layer


class PadConv2d(nn.Conv2d):
    """Stand-in for deel-torchlip's PadConv2d: a padding step, then the conv."""

    def __init__(self, *args, lie=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.lie = lie  # a stand-in that computes something else, if not 0

    def forward(self, x):
        return super().forward(x) + self.lie


class SpectralConv2d(PadConv2d):
    pass


class ScaledL2NormPool2d(nn.LPPool2d):
    """Stand-in: the l2-norm pooling times k_coef_lip."""

    def __init__(self, kernel_size, k_coef_lip=1.0):
        super().__init__(2, kernel_size)
        self._coefficient_lip = k_coef_lip

    def forward(self, x):
        return super().forward(x) * self._coefficient_lip


PadConv2d.__module__ = "deel.torchlip.modules.unconstrained"
SpectralConv2d.__module__ = "deel.torchlip.modules.conv"
ScaledL2NormPool2d.__module__ = "deel.torchlip.modules.pooling"


class OtherConv(SpectralConv2d):
    """A subclass of the recognised class: its closest listed class counts."""


def test_peer_layers_are_recognised_by_class_and_behaviour():
    conv = SpectralConv2d(2, 3, 3, padding=1).double()
    assert peer_layer(conv) == PeerLayerSpec(nn.Conv2d, 1.0)
    assert peer_layer(OtherConv(2, 3, 3).double()) == PeerLayerSpec(nn.Conv2d, 1.0)
    pool = ScaledL2NormPool2d(2, k_coef_lip=0.5)
    assert peer_layer(pool) == PeerLayerSpec(nn.LPPool2d, 0.5)
    # Same names, other behaviour; or a torch layer: not recognised.
    assert peer_layer(SpectralConv2d(2, 3, 3, lie=1.0).double()) is None
    assert peer_layer(ScaledL2NormPool2d(2, k_coef_lip=-1.0)) is None
    assert peer_layer(nn.Conv2d(2, 3, 3)) is None


def test_a_peer_convolution_is_bounded_as_a_convolution_of_its_weights():
    torch.manual_seed(0)
    conv = SpectralConv2d(2, 4, 3, padding=1).double()
    plain = nn.Conv2d(2, 4, 3, padding=1).double()
    plain.load_state_dict(conv.state_dict())
    net = nn.Sequential(conv)
    assert lipschitz_bound(net, (2, 8, 8)) == lipschitz_bound(
        nn.Sequential(plain), (2, 8, 8)
    )
    assert conv2d_spectral_norm_bound(conv, (8, 8)) == pytest.approx(
        conv2d_spectral_norm_bound(plain, (8, 8)), rel=1e-12
    )


def test_a_scaled_l2_pooling_is_bounded_with_its_scale():
    pool = ScaledL2NormPool2d(2, k_coef_lip=0.5)
    ((_, _, bound),) = layer_lipschitz_bounds(nn.Sequential(pool), (3, 6, 6))
    assert bound == pytest.approx(0.5, rel=1e-8)


def test_a_layer_that_computes_something_else_is_refused():
    net = nn.Sequential(SpectralConv2d(1, 2, 3, lie=1.0), nn.Flatten())
    with pytest.raises(TypeError, match="SpectralConv2d"):
        lipschitz_bound(net.double(), (1, 6, 6))


def _peer_cnn(torchlip):
    """The peer's documented MNIST pattern, at the size of 8 x 8 digits."""
    torch.manual_seed(0)
    return torchlip.Sequential(
        nn.Unflatten(1, (1, 8, 8)),
        torchlip.SpectralConv2d(1, 8, 3, padding=1),
        torchlip.GroupSort2(),
        torchlip.ScaledL2NormPool2d(2),
        torchlip.SpectralConv2d(8, 16, 3, padding=1),
        torchlip.GroupSort2(),
        torchlip.ScaledL2NormPool2d(2),
        nn.Flatten(),
        torchlip.SpectralLinear(16 * 2 * 2, 32),
        torchlip.GroupSort2(),
        torchlip.FrobeniusLinear(32, 10),
    )


def test_the_peers_cnn_is_certified_as_trained_and_as_exported():
    torchlip = pytest.importorskip("deel.torchlip")
    net = _peer_cnn(torchlip).double().eval()
    X = np.random.default_rng(0).random((10, 64))
    radii = certify_network(net, X, (64,))
    # Its hidden part is 1-Lipschitz by construction; our bounds say at most
    # that, from the weights.
    hidden = torch.nn.Sequential(*list(net.children())[:-1])
    assert lipschitz_bound(hidden, (64,)) <= 1 + 1e-6
    assert np.all(radii > 0)
    # At least its own pairwise certificate (its hidden part taken as
    # 1-Lipschitz), up to its power iteration's error: its layers' exact
    # norms exceed 1 by at most 1e-6.
    with torch.no_grad():
        logits = net(torch.from_numpy(X))
    pred = logits.argmax(1)
    W = net[-1].weight.detach()
    gaps = logits.gather(1, pred[:, None]) - logits
    norms = (W[pred][:, None] - W[None]).norm(dim=2)
    own = torch.where(norms > 0, gaps / norms, torch.inf).min(dim=1).values
    assert np.all(radii >= own.numpy() * (1 - 1e-6))
    exported = net.vanilla_export().double().eval()
    assert any(isinstance(m, nn.LPPool2d) for m in exported.modules())
    np.testing.assert_allclose(certify_network(exported, X, (64,)), radii, rtol=1e-6)
    # Each sampled ratio of the whole network is below the product bound.
    x = torch.from_numpy(X)
    z = x + 0.01 * torch.randn(x.shape, dtype=torch.float64)
    with torch.no_grad():
        ratio = (net(x) - net(z)).norm(dim=1) / (x - z).norm(dim=1)
    assert ratio.max().item() <= lipschitz_bound(net, (64,))
    assert math.isfinite(lipschitz_bound(net, (64,)))
