"""The networks: default modules and layers that are 1-Lipschitz by construction.

:class:`MLP` and :class:`SmallCNN` are :class:`~sk_margin.nets.MarginNetClassifier`'s
default modules, sized from the data by :func:`default_module_for`;
:class:`LipschitzMLP` is built from orthogonal layers (:func:`orthogonalize`)
and :class:`MaxMin` activations. Nothing here is trusted by the
certificates: :mod:`sk_margin.nets.certify` bounds every layer from its
weights.
"""

from sk_margin.nets.layers._lipschitz_modules import LipschitzMLP, MaxMin, orthogonalize
from sk_margin.nets.layers._modules import MLP, SmallCNN, default_module_for

__all__ = [
    "LipschitzMLP",
    "MLP",
    "MaxMin",
    "SmallCNN",
    "default_module_for",
    "orthogonalize",
]
