"""The certification engine: sound Lipschitz bounds and certified radii.

It walks an ``nn.Sequential`` network layer by layer (opening nested
containers) and bounds each layer from its weights, in float64, with the
rounding accounted for: global l2, l-infinity and pairwise Lipschitz bounds
(:func:`network_lipschitz_bounds`), local bounds on the ball, and linear
bound propagation; :func:`certify_network` turns them into certified l2
radii. :class:`PowerIterationLipschitz` is the cheap, differentiable
estimate that the Lipschitz-margin losses train with (never used in a
certificate).
"""

from sk_margin.nets.certify._conv import conv2d_spectral_norm_bound
from sk_margin.nets.certify._lipschitz import (
    layer_lipschitz_bounds,
    linf_lipschitz_bound,
    lipschitz_bound,
    network_lipschitz_bounds,
    pairwise_lipschitz_bounds,
)
from sk_margin.nets.certify._network import CERTIFY_METHODS, certify_network
from sk_margin.nets.certify._power_iteration import PowerIterationLipschitz

__all__ = [
    "CERTIFY_METHODS",
    "PowerIterationLipschitz",
    "certify_network",
    "conv2d_spectral_norm_bound",
    "layer_lipschitz_bounds",
    "linf_lipschitz_bound",
    "lipschitz_bound",
    "network_lipschitz_bounds",
    "pairwise_lipschitz_bounds",
]
