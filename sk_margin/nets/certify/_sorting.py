"""Sorting activations, ours and other libraries', recognised by what they compute.

A GroupSort activation (Anil, Lucas & Grosse, 2019) sorts each group of
features of dimension 1; it permutes its input on every group, so it is
1-Lipschitz in the l2 norm whatever the group size. :func:`group_sort` says
whether a layer is one: our :class:`~sk_margin.nets.MaxMin` (groups of two,
descending), or deel-torchlip's ``GroupSort``, ``GroupSort2`` and
``FullSort`` (ascending, times their ``k_coef_lip``), which are recognised
without importing that library: by their class, then by a seeded probe
checked against the sort they promise. A layer that fails the probe is not
recognised, and the bounds then refuse it as unsupported.
"""

import dataclasses
import weakref

import torch

from sk_margin.nets.certify._layers import base_class
from sk_margin.nets.layers._lipschitz_modules import MaxMin

__all__ = ["GroupSortSpec", "group_sort"]

# deel-torchlip's sorting activations: module and class names.
_TORCHLIP_MODULE = "deel.torchlip.modules.activation"
_TORCHLIP_SORTS = ("GroupSort", "GroupSort2", "FullSort")
# Probed layers: ``layer -> (group_size, scale, spec)``. The probe is rerun
# only if those attributes change (the rules look a layer up at every
# training step of the Lipschitz-margin losses).
_PROBED = weakref.WeakKeyDictionary()


@dataclasses.dataclass(frozen=True)
class GroupSortSpec:
    """What a sorting layer computes.

    Attributes
    ----------
    group_size : int or None
        Features per group along dimension 1; None sorts the whole
        dimension.
    descending : bool
        Whether each group is sorted largest first.
    scale : float
        A positive factor applied after sorting; the layer's l2 Lipschitz
        constant.
    """

    group_size: int | None
    descending: bool
    scale: float


def _expected(x, spec):
    size = x.shape[1] if spec.group_size is None else spec.group_size
    groups = x.unflatten(1, (-1, size))
    return spec.scale * groups.sort(dim=2, descending=spec.descending)[0].flatten(1, 2)


def _behaves_as(layer, spec):
    """A seeded float64 probe: does ``layer`` compute the sort of ``spec``?"""
    g = torch.Generator().manual_seed(0)
    probes = [torch.randn((3, 8), dtype=torch.float64, generator=g)]
    if spec.group_size is not None:  # groups of channels at every position
        probes.append(torch.randn((2, 4, 3, 2), dtype=torch.float64, generator=g))
    try:
        with torch.no_grad():
            return all(
                torch.allclose(layer(x), _expected(x, spec), rtol=1e-12, atol=0.0)
                for x in probes
            )
    except (RuntimeError, ValueError, TypeError):
        return False


def group_sort(layer):
    """How ``layer`` sorts groups of features, or None if it is no group sort.

    Parameters
    ----------
    layer : torch.nn.Module
        Any layer.

    Returns
    -------
    spec : GroupSortSpec or None
        ``GroupSortSpec(2, True, 1.0)`` for :class:`~sk_margin.nets.MaxMin`;
        for deel-torchlip's sorting layers their group size, ascending order
        and ``k_coef_lip``, once a probe confirmed them; else None.
    """
    cls = base_class(layer)
    if cls is MaxMin:
        return GroupSortSpec(2, True, 1.0)
    if cls.__module__ != _TORCHLIP_MODULE or cls.__name__ not in _TORCHLIP_SORTS:
        return None
    size = getattr(layer, "group_size", None)
    scale = getattr(layer, "_coefficient_lip", 1.0)
    if size is not None and not (isinstance(size, int) and size >= 1):
        return None
    if not (isinstance(scale, int | float) and scale > 0):
        return None
    cached = _PROBED.get(layer)
    if cached is not None and cached[:2] == (size, scale):
        return cached[2]
    spec = GroupSortSpec(size, False, float(scale))
    spec = spec if _behaves_as(layer, spec) else None
    _PROBED[layer] = (size, scale, spec)
    return spec
