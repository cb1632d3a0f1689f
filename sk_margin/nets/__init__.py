"""Neural networks with margin losses and certified l2 radii (torch, skorch).

The only part of ``sk_margin`` that imports torch. :class:`MarginNetClassifier`
is a skorch classifier whose criterion is a margin loss of
:mod:`sk_margin.nets.losses`; :class:`MarginStatistics` records margins while
it trains; :class:`MLP` and :class:`SmallCNN` are its default modules. The
functions bound the Lipschitz constants of ``nn.Sequential`` networks
soundly (never from a bare power-iteration estimate) and certify their
decisions; :class:`PowerIterationLipschitz` is the cheap, differentiable
estimate the Lipschitz-margin losses train with.
"""

from sk_margin.nets import losses
from sk_margin.nets._callbacks import MarginStatistics
from sk_margin.nets._certify import CERTIFY_METHODS, certify_network
from sk_margin.nets._classifier import MarginNetClassifier
from sk_margin.nets._conv import conv2d_spectral_norm_bound
from sk_margin.nets._lipschitz import (
    layer_lipschitz_bounds,
    linf_lipschitz_bound,
    lipschitz_bound,
    network_lipschitz_bounds,
    pairwise_lipschitz_bounds,
)
from sk_margin.nets._lipschitz_modules import LipschitzMLP, MaxMin, orthogonalize
from sk_margin.nets._modules import MLP, SmallCNN, default_module_for
from sk_margin.nets._power_iteration import PowerIterationLipschitz

__all__ = [
    "CERTIFY_METHODS",
    "LipschitzMLP",
    "MLP",
    "MarginNetClassifier",
    "MarginStatistics",
    "MaxMin",
    "PowerIterationLipschitz",
    "SmallCNN",
    "certify_network",
    "conv2d_spectral_norm_bound",
    "default_module_for",
    "layer_lipschitz_bounds",
    "linf_lipschitz_bound",
    "lipschitz_bound",
    "losses",
    "network_lipschitz_bounds",
    "orthogonalize",
    "pairwise_lipschitz_bounds",
]
