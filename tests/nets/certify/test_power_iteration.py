"""Tests of the training-time Lipschitz estimate (persistent power iteration)."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from sk_margin.nets import PowerIterationLipschitz, lipschitz_bound
from sk_margin.nets.losses import LCLMTLoss, LMTLoss


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: extra threads only stall on a busy machine."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _operator_norm(fn, shape):
    """Norm of the linear map ``fn`` on inputs of ``shape``, from its Jacobian."""
    J = torch.autograd.functional.jacobian(fn, torch.zeros(shape, dtype=torch.float64))
    return np.linalg.norm(J.reshape(-1, math.prod(shape)).numpy(), 2)


@pytest.mark.parametrize("loss_class", [LMTLoss, LCLMTLoss])
def test_the_losses_delegate_to_the_estimator(loss_class):
    net = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3))
    X = torch.randn(4, 1, 4, 4)
    torch.manual_seed(1)
    estimator = PowerIterationLipschitz()
    expected = [estimator(net, X).item() for _ in range(5)]
    torch.manual_seed(1)
    loss = loss_class()
    assert [loss.lipschitz_estimate(net, X).item() for _ in range(5)] == expected
    assert loss.lipschitz_.item() == estimator.lipschitz_.item() == expected[-1]
    assert loss.power_iterates_.keys() == estimator.power_iterates_.keys() == {"0", "3"}


WEIGHTLESS = [
    (nn.ReLU(), (3,)),
    (nn.ReLU6(), (3,)),
    (nn.Hardtanh(), (3,)),
    (nn.LeakyReLU(-2.5), (3,)),
    (nn.ELU(alpha=3.0), (3,)),
    (nn.ELU(alpha=-2.0), (3,)),
    (nn.Sigmoid(), (3,)),
    (nn.Tanh(), (3,)),
    (nn.Softplus(), (3,)),
    (nn.Flatten(), (2, 3)),
    (nn.Dropout(0.5), (3,)),
    (nn.MaxPool1d(3, stride=2), (2, 9)),
    (nn.MaxPool2d(3, stride=2), (1, 8, 8)),
    (nn.MaxPool3d(2, stride=1), (1, 3, 4, 3)),
    (nn.AvgPool1d(3, stride=1), (2, 7)),
    (nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False), (1, 6, 7)),
    (nn.AvgPool3d(2), (1, 4, 4, 4)),
    (nn.AdaptiveAvgPool2d(3), (2, 5, 7)),
]


@pytest.mark.parametrize(("layer", "in_shape"), WEIGHTLESS, ids=repr)
def test_weightless_layers_use_the_rules_of_the_sound_bounds(layer, in_shape):
    X = torch.randn(2, *in_shape)
    estimate = PowerIterationLipschitz()(nn.Sequential(layer), X)
    assert_allclose(estimate.item(), lipschitz_bound(layer, in_shape), rtol=1e-6)


@pytest.mark.parametrize(
    ("conv", "in_shape"),
    [
        (nn.Conv1d(2, 3, 3, stride=2, padding=1), (2, 9)),
        (nn.Conv3d(1, 2, 2, padding=1), (1, 3, 4, 3)),
    ],
    ids=repr,
)
def test_conv1d_and_conv3d_converge_to_their_operator_norm(conv, in_shape):
    conv = conv.double()
    estimator = PowerIterationLipschitz()
    X = torch.randn(2, *in_shape, dtype=torch.float64)
    estimates = [estimator(conv, X).item() for _ in range(100)]
    exact = _operator_norm(lambda v: conv._conv_forward(v, conv.weight, None), in_shape)
    assert_allclose(estimates[-1], exact, rtol=1e-2)
    assert max(estimates) <= exact * (1 + 1e-9)
    assert estimator.input_shapes_ == {"": in_shape}


def test_input_shapes_are_found_once():
    net = nn.Sequential(nn.Unflatten(1, (1, 6, 6)), nn.MaxPool2d(2), nn.Flatten())
    estimator = PowerIterationLipschitz()
    with pytest.raises(ValueError, match="needs X"):
        estimator(net)
    assert_allclose(estimator(net, torch.randn(3, 36)).item(), 1.0, rtol=1e-6)
    assert estimator.input_shapes_ == {"1": (1, 6, 6)}
    assert_allclose(estimator(net).item(), 1.0, rtol=1e-6)  # no X needed now


def test_batchnorm_is_differentiable():
    bn = nn.BatchNorm1d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -2.0, 1.0]))
        bn.running_var.copy_(torch.tensor([1.0, 4.0, 0.25]))
    estimate = PowerIterationLipschitz()(bn)
    assert_allclose(estimate.item(), 1.0 / math.sqrt(0.25 + bn.eps), rtol=1e-6)
    estimate.backward()
    assert bn.weight.grad.abs().sum() > 0


def test_errors_name_the_layer():
    estimator = PowerIterationLipschitz()
    with pytest.raises(TypeError, match=r"layer '1' \(nn.GELU\). Supported: nn.Linear"):
        estimator(nn.Sequential(nn.Linear(2, 2), nn.GELU()))
    no_stats = nn.BatchNorm1d(2, track_running_stats=False)
    match = r"layer '0' \(nn.BatchNorm1d\): without running"
    with pytest.raises(TypeError, match=match):
        estimator(nn.Sequential(no_stats))
    with pytest.raises(TypeError, match="must be a torch.nn.Module"):
        estimator(None)


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Linear(3, 3)

    def forward(self, x):
        return x + self.inner(x)


def test_the_estimate_walks_the_network_as_the_sound_bound_does():
    torch.manual_seed(0)
    shared = nn.Linear(3, 3)
    net = nn.Sequential(
        shared, nn.Tanh(), nn.Sequential(shared, nn.ReLU()), nn.Linear(3, 2)
    ).double()
    estimator = PowerIterationLipschitz()
    for _ in range(200):
        estimate = estimator(net).item()
    # The layer used twice counts twice in both, so the estimate converges to
    # the sound product bound; counted once, it would be ||shared|| smaller.
    assert_allclose(estimate, lipschitz_bound(net, (3,)), rtol=1e-6)
    assert sorted(estimator.power_iterates_) == ["0", "2.0", "3"]
    once = torch.linalg.matrix_norm(shared.weight.detach(), ord=2).item()
    assert abs(once - 1.0) > 0.1  # so that counting it once would show


def test_a_container_with_its_own_forward_is_refused_by_both():
    net = nn.Sequential(nn.Linear(3, 3), _Residual())
    with pytest.raises(TypeError, match=r"layer '1' \(_Residual\) \(its forward"):
        PowerIterationLipschitz()(net)
    with pytest.raises(TypeError, match=r"layer 1 \(_Residual\) \(its forward"):
        lipschitz_bound(net, (3,))
