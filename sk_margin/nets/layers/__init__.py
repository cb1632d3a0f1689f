"""The networks: default modules and layers that are 1-Lipschitz by construction.

:class:`MLP` and :class:`SmallCNN` are :class:`~sk_margin.nets.MarginNetClassifier`'s
default modules, sized from the data by :func:`default_module_for`;
:class:`LipschitzMLP` is built from orthogonal layers (:func:`orthogonalize`)
and :class:`MaxMin` activations, :class:`LipschitzCNN` from AOL-rescaled
convolutions (:func:`aol_rescale`), MaxMin over channels and pixel
unshuffles, then orthogonal dense layers. Nothing here is trusted by the
certificates: :mod:`sk_margin.nets.certify` bounds every layer from its
weights.
"""

from sk_margin.nets.layers._lipschitz_conv import LipschitzCNN, aol_rescale
from sk_margin.nets.layers._lipschitz_modules import LipschitzMLP, MaxMin, orthogonalize
from sk_margin.nets.layers._modules import MLP, SmallCNN, default_module_for

__all__ = [
    "LipschitzCNN",
    "LipschitzMLP",
    "MLP",
    "MaxMin",
    "SmallCNN",
    "aol_rescale",
    "default_module_for",
    "orthogonalize",
]
