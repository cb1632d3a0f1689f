"""Sorting layers of other libraries, and subclasses of torch layers, in the bounds.

deel-torchlip is an optional extra: stand-ins with its module and class names
check how its layers are recognised (and that one computing something else is
refused); the real library is tested where it is installed.
"""

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from sk_margin.nets import MaxMin, certify_network, lipschitz_bound
from sk_margin.nets.certify._bound_propagation import BoundPropagation
from sk_margin.nets.certify._sorting import GroupSortSpec, group_sort

_TORCHLIP = "deel.torchlip.modules.activation"


class GroupSort(nn.Module):
    """Stand-in for deel-torchlip's GroupSort: ascending groups, times k."""

    def __init__(self, group_size=None, k_coef_lip=1.0, *, descending=False):
        super().__init__()
        self.group_size, self._coefficient_lip = group_size, k_coef_lip
        self.descending = descending  # a stand-in that lies, if True

    def forward(self, x):
        size = x.shape[1] if self.group_size is None else self.group_size
        groups = x.unflatten(1, (-1, size))
        out = groups.sort(dim=2, descending=self.descending)[0].flatten(1, 2)
        return out * self._coefficient_lip


class GroupSort2(GroupSort):
    def __init__(self, k_coef_lip=1.0, **kwargs):
        super().__init__(2, k_coef_lip, **kwargs)


class FullSort(GroupSort):
    def __init__(self, k_coef_lip=1.0):
        super().__init__(None, k_coef_lip)


for _cls in (GroupSort, GroupSort2, FullSort):
    _cls.__module__ = _TORCHLIP


def test_sorting_layers_are_recognised_by_class_and_behaviour():
    assert group_sort(MaxMin()) == GroupSortSpec(2, True, 1.0)
    assert group_sort(GroupSort2()) == GroupSortSpec(2, False, 1.0)
    assert group_sort(GroupSort2(0.5)) == GroupSortSpec(2, False, 0.5)
    assert group_sort(FullSort()) == GroupSortSpec(None, False, 1.0)
    assert group_sort(GroupSort(4)) == GroupSortSpec(4, False, 1.0)
    # Same names, other behaviour or another module: not a group sort.
    assert group_sort(GroupSort2(descending=True)) is None
    assert group_sort(GroupSort2(-1.0)) is None
    assert group_sort(nn.ReLU()) is None

    class Elsewhere(GroupSort2):
        pass

    assert group_sort(Elsewhere()) is None  # defined in this test module


def _pair_net(activation, k=1.0):
    torch.manual_seed(0)
    return (
        nn.Sequential(
            nn.Linear(5, 8), activation, nn.Linear(8, 6), activation, nn.Linear(6, 3)
        )
        .double()
        .eval()
    )


def test_an_ascending_pair_sort_is_certified_like_maxmin_with_swapped_columns():
    k = 0.5
    theirs = _pair_net(GroupSort2(k))
    ours = _pair_net(MaxMin())
    with torch.no_grad():  # (min, max) * k = (max, min) with the columns swapped
        for linear in (ours[2], ours[4]):
            swap = torch.arange(linear.in_features).reshape(-1, 2).flip(1).flatten()
            linear.weight.copy_(linear.weight[:, swap] * k)
    X = np.random.default_rng(0).uniform(-1, 1, size=(20, 5))
    with torch.no_grad():
        x = torch.from_numpy(X)
        assert_allclose(theirs(x).numpy(), ours(x).numpy(), atol=1e-12)
    for method in ("global_pairwise", "bound_propagation", "auto"):
        assert_allclose(
            certify_network(theirs, X, (5,), method),
            certify_network(ours, X, (5,), method),
            rtol=1e-8,  # the rounding slack of the scale's bound
        )
    assert lipschitz_bound(theirs, (5,)) > 0


def test_sorts_of_other_groups_get_global_bounds_only():
    net = _pair_net(FullSort())
    hidden = nn.Sequential(*list(net)[:2])
    weight = net[0].weight.detach().numpy()
    assert_allclose(lipschitz_bound(hidden, (5,)), np.linalg.norm(weight, 2))
    with pytest.raises(TypeError, match=r"sorts groups of all features.*two"):
        BoundPropagation(net, (5,))
    X = np.random.default_rng(0).uniform(size=(4, 5))
    assert_allclose(
        certify_network(net, X, (5,)), certify_network(net, X, (5,), "global_pairwise")
    )


def test_a_layer_that_lies_about_its_sort_is_refused():
    net = _pair_net(GroupSort2(descending=True))
    with pytest.raises(TypeError, match="GroupSort2"):
        lipschitz_bound(net, (5,))
    with pytest.raises(TypeError, match="GroupSort2"):
        BoundPropagation(net, (5,))


class _WeightOnlyLinear(nn.Linear):
    """Constrains its weight at construction, computes as nn.Linear."""

    def __init__(self, *args):
        super().__init__(*args)
        with torch.no_grad():
            self.weight.mul_(3.0)


class _ForwardLinear(nn.Linear):
    def forward(self, x):
        return 2 * super().forward(x)


def test_subclasses_that_keep_the_computation_are_bounded_as_their_base():
    torch.manual_seed(0)
    net = nn.Sequential(_WeightOnlyLinear(4, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    norms = [np.linalg.norm(net[i].weight.detach().numpy(), 2) for i in (0, 2)]
    assert_allclose(lipschitz_bound(net, (4,)), np.prod(norms), rtol=1e-8)
    BoundPropagation(net.eval(), (4,))  # supported too
    with pytest.raises(TypeError, match="_ForwardLinear"):
        lipschitz_bound(nn.Sequential(_ForwardLinear(4, 3)), (4,))


def test_deel_torchlip_networks_are_certified_directly():
    torchlip = pytest.importorskip("deel.torchlip")
    torch.manual_seed(0)
    net = torchlip.Sequential(
        torchlip.SpectralLinear(6, 8),
        torchlip.GroupSort2(),
        torchlip.SpectralLinear(8, 8),
        torchlip.GroupSort2(),
        torchlip.FrobeniusLinear(8, 3),
    ).double()
    net.eval()
    X = np.random.default_rng(0).uniform(size=(30, 6))
    exported = net.vanilla_export().double().eval()
    with torch.no_grad():
        logits = exported(torch.from_numpy(X))
    W = exported[-1].weight.detach().numpy()
    c = logits.argmax(1).numpy()
    gaps = logits.numpy()[np.arange(len(X)), c][:, None] - logits.numpy()
    norms = np.linalg.norm(W[c][:, None] - W[None], axis=2)
    norms[np.arange(len(X)), c] = 1.0
    gaps[np.arange(len(X)), c] = np.inf
    own = (gaps / norms).min(axis=1)  # its certificate: hidden part 1-Lipschitz
    hidden = [np.linalg.norm(layer.weight.detach().numpy(), 2)
              for layer in exported[:-1] if isinstance(layer, nn.Linear)]  # fmt: skip
    for module in (net, exported):
        radius = certify_network(module, X, (6,))
        # At least its own, once its hidden layers' norms (1 up to its own
        # rounding, 1 + 1e-7 here) are accounted for, up to our rounding slack.
        assert np.all(radius >= own / np.prod(hidden) * (1 - 1e-7))
        assert np.mean(radius > own) > 0.2  # bound propagation, where it helps
