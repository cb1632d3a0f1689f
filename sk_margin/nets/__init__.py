"""Neural networks with margin losses and certified l2 radii (torch, skorch).

The only part of ``sk_margin`` that imports torch, in three parts:

- training: :class:`MarginNetClassifier`, a skorch classifier whose
  criterion is a margin loss of :mod:`sk_margin.nets.losses`, and
  :class:`MarginStatistics`, which records margins while it trains;
- :mod:`sk_margin.nets.layers`: the networks, :class:`MLP` and
  :class:`SmallCNN` (the default modules) and the 1-Lipschitz
  :class:`LipschitzMLP` and :class:`LipschitzCNN`;
- :mod:`sk_margin.nets.certify`: the engine that bounds the Lipschitz
  constants of ``nn.Sequential`` networks soundly (never from a bare
  power-iteration estimate) and certifies their decisions, and
  :class:`PowerIterationLipschitz`, the cheap, differentiable estimate the
  Lipschitz-margin losses train with.

Every public name of the parts is also a name of this package.
"""

import sys

from sk_margin.nets import certify, layers, losses
from sk_margin.nets._callbacks import MarginStatistics
from sk_margin.nets._classifier import MarginNetClassifier
from sk_margin.nets.certify import (
    CERTIFY_METHODS,
    PowerIterationLipschitz,
    certify_network,
    conv2d_spectral_norm_bound,
    layer_lipschitz_bounds,
    linf_lipschitz_bound,
    lipschitz_bound,
    network_lipschitz_bounds,
    pairwise_lipschitz_bounds,
)
from sk_margin.nets.layers import (
    MLP,
    LipschitzCNN,
    LipschitzMLP,
    MaxMin,
    SmallCNN,
    aol_rescale,
    default_module_for,
    orthogonalize,
)

# Where the modules were before nets/ split into layers/ and certify/: a net
# pickled then names its module's class (and a Lipschitz-margin loss its
# estimator) by the old module path, which pickle imports on loading.
_MOVED_MODULES = {
    "_modules": layers._modules,
    "_lipschitz_modules": layers._lipschitz_modules,
    "_power_iteration": certify._power_iteration,
    "_sorting": certify._sorting,
}
for _old, _module in _MOVED_MODULES.items():
    sys.modules.setdefault(f"{__name__}.{_old}", _module)
del _old, _module

__all__ = [
    "CERTIFY_METHODS",
    "LipschitzCNN",
    "LipschitzMLP",
    "MLP",
    "MarginNetClassifier",
    "MarginStatistics",
    "MaxMin",
    "PowerIterationLipschitz",
    "SmallCNN",
    "aol_rescale",
    "certify",
    "certify_network",
    "conv2d_spectral_norm_bound",
    "default_module_for",
    "layer_lipschitz_bounds",
    "layers",
    "linf_lipschitz_bound",
    "lipschitz_bound",
    "losses",
    "network_lipschitz_bounds",
    "orthogonalize",
    "pairwise_lipschitz_bounds",
]
