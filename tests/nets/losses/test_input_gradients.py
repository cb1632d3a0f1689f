"""The closed forms for one-hidden-layer nets against double back-propagation."""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from sk_margin.nets.losses import CrossLipschitzLoss, GradientMarginLoss
from sk_margin.nets.losses._input_gradients import (
    activation_derivative,
    centred_gradient_spread,
    closed_form_layers,
    input_gradients,
    max_gradient_difference,
)

ACTIVATIONS = [
    nn.ReLU(),
    nn.LeakyReLU(0.2),
    nn.Softplus(beta=3.0),
    nn.Tanh(),
    nn.Sigmoid(),
]


def _net(act, d, h, k, dropout=False):
    layers = [nn.Flatten(), nn.Linear(d, h), act]
    if dropout:
        layers.append(nn.Dropout(0.5))
    layers.append(nn.Linear(h, k))
    return nn.Sequential(*layers).double()


def _forward(net, X):
    """Logits and the input of the last Linear, in one pass."""
    features = net[:-1](X)
    return net[-1](features), features


def _param_grads(net, loss):
    net.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in net.parameters()]


def _reference_gradient_margin(net, X, y, C, q):
    """The loss by differentiating the maximum over all K gradients (graph kept)."""
    X = X.clone().requires_grad_(True)
    logits = net(X)
    G = input_gradients(logits, X)
    norms = torch.linalg.vector_norm(G[torch.arange(len(y)), y][:, None] - G, q, dim=2)
    penalty = norms.scatter(1, y[:, None], -torch.inf).amax(1)
    runner_up = logits.scatter(1, y[:, None], -torch.inf).amax(1)
    hinge = (1.0 + runner_up - logits.gather(1, y[:, None])[:, 0]).relu()
    value = (hinge + C * penalty).mean()
    return value.item(), _param_grads(net, value)


def _both_ways(loss, net, X, y):
    """(value, parameter grads) in closed form, then by double back-propagation."""
    out = []
    for closed in (True, False):
        Xg = X.clone().requires_grad_(not closed)
        logits, features = _forward(net, Xg)
        value = loss(logits, y, X=Xg, module=net, features=features if closed else None)
        out.append((value.item(), _param_grads(net, value)))
    return out


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_activation_derivative_matches_autograd(act):
    z = torch.linspace(-4, 4, 41, dtype=torch.float64).requires_grad_(True)
    a = act(z)
    (expected,) = torch.autograd.grad(a.sum(), z)
    got = activation_derivative(act, a.detach())
    keep = z.detach() != 0  # ReLU's derivative at 0 is a convention
    assert_allclose(got[keep].numpy(), expected[keep].numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("shape", [(3, 5, 4), (40, 5, 4)], ids=["explicit", "gram"])
@pytest.mark.parametrize("q", [1, 2, math.inf])
def test_gradient_margin_closed_form_equals_double_backprop(act, shape, q):
    # (40, 5, 4) with 8 samples takes the U U^T branch for q = 2.
    torch.manual_seed(0)
    d, h, k = shape
    net = _net(act, d, h, k)
    X = torch.randn(8, d, dtype=torch.float64)
    y = torch.arange(8) % k
    ways = _both_ways(GradientMarginLoss(C=0.7, q=q), net, X, y)
    v_ref, g_ref = _reference_gradient_margin(net, X, y, 0.7, q)
    for value, grads in ways:  # closed form, then one double-backprop pass
        assert_allclose(value, v_ref, rtol=1e-10)
        for a, b in zip(grads, g_ref, strict=True):
            assert_allclose(a.numpy(), b.numpy(), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("act", ACTIVATIONS, ids=lambda a: type(a).__name__)
def test_cross_lipschitz_closed_form_equals_double_backprop(act):
    torch.manual_seed(1)
    net = _net(act, 6, 7, 3)
    X = torch.randn(10, 6, dtype=torch.float64)
    y = torch.arange(10) % 3
    (v_closed, g_closed), (v_auto, g_auto) = _both_ways(
        CrossLipschitzLoss(lam=0.3), net, X, y
    )
    assert_allclose(v_closed, v_auto, rtol=1e-10)
    for a, b in zip(g_closed, g_auto, strict=True):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-7, atol=1e-10)


def test_centred_spread_is_the_pairwise_sum_over_classes():
    # sum_{l,m} ||g_l - g_m||^2 = 2K sum_l ||g_l - g_mean||^2, from gradients
    # computed one sample at a time.
    torch.manual_seed(2)
    net = _net(nn.Tanh(), 4, 6, 3)
    X = torch.randn(5, 4, dtype=torch.float64)
    _, features = _forward(net, X)
    spread = centred_gradient_spread(closed_form_layers(net), features)
    for i in range(len(X)):
        J = torch.autograd.functional.jacobian(net, X[i : i + 1])[0, :, 0]
        pairs = sum(((J[a] - J[b]) ** 2).sum() for a in range(3) for b in range(3))
        assert_allclose(spread[i].item(), pairs.item() / (2 * 3), rtol=1e-10)


def test_max_gradient_difference_is_zero_for_dead_units_and_tied_rows():
    # All hidden ReLUs off: every input gradient is 0, and so is the penalty
    # and its gradient (no NaN from the norm at 0).
    net = _net(nn.ReLU(), 40, 5, 4)
    with torch.no_grad():
        net[1].bias.fill_(-100.0)
    X = torch.randn(8, 40, dtype=torch.float64)
    y = torch.arange(8) % 4
    logits, features = _forward(net, X)
    penalty = max_gradient_difference(
        logits, y, layers=closed_form_layers(net), features=features
    )
    assert_allclose(penalty.detach().numpy(), 0.0)
    grads = _param_grads(net, penalty.sum() + logits.sum())
    assert all(torch.isfinite(g).all() for g in grads)


def test_closed_form_needs_a_one_hidden_layer_net_without_active_dropout():
    net = _net(nn.ReLU(), 4, 5, 3, dropout=True)
    assert closed_form_layers(net.eval()) is not None
    assert closed_form_layers(net.train()) is None
    deep = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 5), nn.ReLU())
    assert closed_form_layers(deep.append(nn.Linear(5, 3))) is None
    loss = CrossLipschitzLoss()
    assert loss.input_grad_needed(net.train())
    assert not loss.input_grad_needed(net.eval())
    assert loss.input_grad_needed(deep)


def test_deeper_nets_use_double_backprop():
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 6), nn.Tanh(), nn.Linear(6, 3)
    ).double()
    X = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.arange(6) % 3
    logits, features = _forward(net, X)
    G = input_gradients(logits, X)
    J = np.stack(
        [
            torch.autograd.functional.jacobian(net, X[i : i + 1].detach())[0, :, 0]
            for i in range(6)
        ]
    )
    assert_allclose(G.detach().numpy(), J, rtol=1e-10)
    value = CrossLipschitzLoss(lam=0.5)(logits, y, X=X, module=net, features=features)
    spread = ((J - J.mean(1, keepdims=True)) ** 2).sum((1, 2))
    ce = torch.nn.functional.cross_entropy(logits, y, reduction="none").detach()
    assert_allclose(value.item(), (ce.numpy() + 0.5 * 2 / 3 * spread).mean())


def test_unknown_activation_is_refused():
    with pytest.raises(TypeError, match="No closed-form derivative for GELU"):
        activation_derivative(nn.GELU(), torch.zeros(3))


def test_gradient_margin_without_penalty_is_the_hinge_and_needs_no_gradients():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 4)
    ).double()  # fmt: skip - no closed form
    X = torch.rand((10, 6), dtype=torch.float64)
    y = torch.randint(0, 4, (10,))
    loss = GradientMarginLoss(C=0.0)
    assert not loss.input_grad_needed(net)
    assert GradientMarginLoss(C=0.5).input_grad_needed(net)
    value, grads = _reference_gradient_margin(net, X, y, 0.0, 2.0)
    logits = net(X)  # no input gradients: X does not require them
    got = loss(logits, y, X=X, module=net)
    assert_allclose(got.item(), value, rtol=1e-12)
    for a, b in zip(_param_grads(net, got), grads, strict=True):
        assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)


def test_cross_lipschitz_without_penalty_is_the_cross_entropy():
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 4)
    ).double()  # fmt: skip - no closed form
    X = torch.rand((10, 6), dtype=torch.float64)
    y = torch.randint(0, 4, (10,))
    assert not CrossLipschitzLoss(lam=0.0).input_grad_needed(net)
    assert CrossLipschitzLoss(lam=0.1).input_grad_needed(net)
    logits = net(X)
    got = CrossLipschitzLoss(lam=0.0)(logits, y, X=X, module=net)
    expected = torch.nn.functional.cross_entropy(logits, y)
    assert_allclose(got.item(), expected.item(), rtol=1e-12)
