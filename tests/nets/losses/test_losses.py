"""Tests of the torch margin losses against direct reference formulas."""

import copy
import inspect
import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from sk_margin.nets.losses import (
    LOSSES,
    AverageMarginLoss,
    CertifiedMarginLoss,
    CrossEntropyMarginLoss,
    CrossLipschitzLoss,
    GradientMarginLoss,
    LCLMTLoss,
    LMTLoss,
    MarginLoss,
    reduce_loss,
    resolve_loss,
)
from sk_margin.nets.losses._average_margin import _orthogonality_penalty

N, D, H, K = 8, 3, 5, 4


# --------------------------------------------------------------- helpers ---
def _softplus(z):
    return np.logaddexp(0.0, z)


def _ce(z, t):
    """Cross-entropy of one row by its definition."""
    return -z[t] + math.log(sum(math.exp(v) for v in z))


def _mlp(d=D, h=H, k=K):
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).double()


def _data(n=N, d=D, k=K):
    X = torch.randn(n, d, dtype=torch.float64)
    y = torch.randint(0, k, (n,))
    return X, y


def _call(loss, net, X, y, sample_weight=None):
    """Run ``net`` on ``X`` and the loss with what it declares it needs."""
    X = X.detach().clone().requires_grad_(loss.needs_input_grad)
    features = net[:-1](X)
    logits = net[-1](features)
    return loss(
        logits,
        y,
        X=X,
        module=net,
        features=features if loss.needs_features else None,
        sample_weight=sample_weight,
    )


def _with_matrix(layer, singular_values):
    """Give ``layer`` a weight with the given singular values (float64)."""
    out, inp = layer.weight.shape
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.standard_normal((out, out)))
    V, _ = np.linalg.qr(rng.standard_normal((inp, inp)))
    S = np.zeros((out, inp))
    S[range(len(singular_values)), range(len(singular_values))] = singular_values
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(U @ S @ V.T))
    return layer


def _warm(loss, module, X, calls=60):
    for _ in range(calls):
        loss.lipschitz_estimate(module, X)


# ------------------------------------------------- reference formulas ---
def test_cross_entropy_matches_definition():
    z, y = torch.randn(N, K, dtype=torch.float64), torch.randint(0, K, (N,))
    expected = np.mean([_ce(z[i].tolist(), int(y[i])) for i in range(N)])
    assert_allclose(CrossEntropyMarginLoss()(z, y).item(), expected, rtol=1e-12)


def _kesidis_reference(name, z, t, mu):
    C = len(z)
    others = [i for i in range(C) if i != t]
    if name == "margin_ratio":  # eq. 6 on softplus scores
        s = _softplus(np.asarray(z))
        return -math.log(s[t] / ((C - 1) * mu + sum(s[i] for i in others)))
    if name == "margin_softmax":  # eq. 7
        return -math.log(
            math.exp(z[t]) / (math.exp(z[t]) + sum(math.exp(z[i] + mu) for i in others))
        )
    if name == "normalized_margin":  # eq. 8 on softplus scores, clipped at 0
        s = _softplus(np.asarray(z))
        num = max(s[i] for i in others) + mu - s[t]
        return max(num, 0.0) / ((C - 1) * mu + s.sum())
    num = max(z[i] for i in others) + mu - z[t]  # eq. 9, clipped at 0
    return max(num, 0.0)


@pytest.mark.parametrize(
    "name", ["margin_ratio", "margin_softmax", "normalized_margin", "margin_hinge"]
)
@pytest.mark.parametrize("mu", [0.0, 0.7])
def test_kesidis_losses_match_reference(name, mu):
    z, y = 2 * torch.randn(N, K, dtype=torch.float64), torch.randint(0, K, (N,))
    w = torch.rand(N, dtype=torch.float64)
    ref = [_kesidis_reference(name, z[i].tolist(), int(y[i]), mu) for i in range(N)]
    got = LOSSES[name](mu=mu)(z, y, sample_weight=w)
    assert_allclose(got.item(), np.dot(w.numpy(), ref) / w.sum().item(), rtol=1e-10)


def test_margin_ratio_is_finite_for_negative_and_extreme_logits():
    z = torch.tensor(
        [[-300.0, 0.0, 5.0], [0.0, -1e4, -50.0], [-80.0, -90.0, -100.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    y = torch.tensor([0, 1, 2])
    for mu in (0.0, 1.0):
        loss = LOSSES["margin_ratio"](mu=mu)(z, y)
        (grad,) = torch.autograd.grad(loss, z)
        assert torch.isfinite(loss) and torch.isfinite(grad).all()
        assert (grad.gather(1, y[:, None]) < 0).all()  # raising f_c always helps
    # log(softplus(z)) tends to z: the first sample's -log s_c is ~ 300
    one = LOSSES["margin_ratio"](mu=1.0)(z[:1], y[:1])
    assert_allclose(one.item(), 300 + math.log(2 + _softplus(0.0) + _softplus(5.0)))


@pytest.mark.parametrize("name", ["margin_hinge", "normalized_margin"])
def test_hinges_are_zero_once_the_margin_is_met(name):
    z = torch.tensor([[9.0, 1.0, 0.5], [0.0, 7.0, 1.0]], requires_grad=True)
    loss = LOSSES[name](mu=2.0)(z, torch.tensor([0, 1]))
    (grad,) = torch.autograd.grad(loss, z)
    assert loss.item() == 0.0 and not grad.any()
    assert LOSSES[name](mu=8.0)(z, torch.tensor([0, 1])).item() > 0


# ----------------------------------------------------- sample weights ---
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_sample_weight_duplicates_and_removes(name):
    net = _mlp()
    X, y = _data()
    loss = LOSSES[name]()
    if isinstance(loss, LMTLoss | LCLMTLoss):
        _warm(loss, net, X, calls=3)
    if isinstance(loss, CertifiedMarginLoss):  # start its power iteration
        _call(loss, net, X, y)

    def value(X, y, w=None):  # every evaluation starts from the same state
        return _call(copy.deepcopy(loss), net, X, y, w).item()

    w = torch.ones(N, dtype=torch.float64)
    w[0] = 2.0
    X_dup, y_dup = torch.cat([X, X[:1]]), torch.cat([y, y[:1]])
    assert_allclose(value(X, y, w), value(X_dup, y_dup), rtol=1e-10)
    w[0] = 0.0
    assert_allclose(value(X, y, w), value(X[1:], y[1:]), rtol=1e-10)
    assert_allclose(value(X, y, torch.ones(N)), value(X, y), rtol=1e-12)


def test_reduce_checks_the_weight_shape():
    with pytest.raises(ValueError, match=r"expected shape \(3,\)"):
        reduce_loss(torch.ones(3), torch.ones(4))
    assert reduce_loss(torch.ones(3), torch.zeros(3)).item() == 0.0


# ---------------------------------------------------------- gradients ---
@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_reach_every_weight(name):
    net = _mlp()
    X, y = _data()
    loss = _call(LOSSES[name](), net, X, y)
    loss.backward()
    for param_name, param in net.named_parameters():
        assert torch.isfinite(param.grad).all(), param_name
        if param_name.endswith("weight"):
            assert param.grad.abs().sum() > 0, param_name


# ----------------------------------------------------------------- LMT ---
def test_lmt_estimate_converges_to_the_spectral_norm():
    layer = _with_matrix(nn.Linear(5, 3).double(), [3.0, 1.0, 0.5])
    X = torch.randn(4, 5, dtype=torch.float64)
    loss = LMTLoss()
    estimates = [loss.lipschitz_estimate(layer, X).item() for _ in range(40)]
    true = np.linalg.norm(layer.weight.detach().numpy(), 2)
    assert abs(estimates[0] - true) > 1e-3  # one step is not enough ...
    assert_allclose(estimates[-1], true, rtol=1e-10)  # ... but it persists
    assert np.all(np.diff(estimates) >= -1e-12)  # power iteration rises
    assert max(estimates) <= true * (1 + 1e-12)


def test_lmt_takes_one_power_step_per_call():
    layer = nn.Linear(6, 4).double()
    X = torch.randn(3, 6, dtype=torch.float64)
    loss = LMTLoss()
    y = torch.zeros(3, dtype=torch.long)
    loss(layer(X), y, X=X, module=layer)
    L1, v1 = float(loss.lipschitz_), loss.power_iterates_[""].numpy().copy()
    loss(layer(X), y, X=X, module=layer)
    W = layer.weight.detach().numpy()
    u = W @ v1 / np.linalg.norm(W @ v1)
    assert_allclose(float(loss.lipschitz_), np.linalg.norm(W.T @ u), rtol=1e-12)
    assert float(loss.lipschitz_) > L1


def _inflated_ce(z, y, amount, runner_up_only=False):
    """Mean cross-entropy after adding ``amount[i]`` to non-target logits."""
    values = []
    for i in range(len(y)):
        row, t = z[i].tolist(), int(y[i])
        others = [j for j in range(len(row)) if j != t]
        v = max(others, key=lambda j: row[j])
        for j in [v] if runner_up_only else others:
            row[j] += amount[i]
        values.append(_ce(row, t))
    return np.mean(values)


@pytest.mark.parametrize("loss_class", [LMTLoss, LCLMTLoss])
def test_lmt_adds_sqrt2_L_eps(loss_class):
    layer = _with_matrix(nn.Linear(D, K).double(), [2.0, 1.0, 0.3])
    X, y = _data()
    loss = loss_class(eps=0.3)
    _warm(loss, layer, X)
    z = layer(X)
    amount = [math.sqrt(2) * 0.3 * 2.0] * N
    only = loss_class is LCLMTLoss
    expected = _inflated_ce(z.detach(), y, amount, runner_up_only=only)
    assert_allclose(loss(z, y, X=X, module=layer).item(), expected, rtol=1e-10)
    other = _inflated_ce(z.detach(), y, amount, runner_up_only=not only)
    assert abs(expected - other) > 1e-3  # LMT and LC-LMT differ here
    assert_allclose(
        loss_class(eps=0.0)(z, y, X=X, module=layer).item(),
        _inflated_ce(z.detach(), y, [0.0] * N),
    )


@pytest.mark.parametrize("loss_class", [LMTLoss, LCLMTLoss])
def test_lmt_clip_never_pushes_the_target_below_the_runner_up(loss_class):
    layer = _with_matrix(nn.Linear(D, 3).double(), [1.0, 0.5, 0.2])
    X = torch.randn(3, D, dtype=torch.float64)
    loss = loss_class(eps=1.0, clip=True)
    _warm(loss, layer, X)
    a = math.sqrt(2)  # sqrt(2) L eps with L = 1
    # margins: >= a (full inflation), in (0, a) (clipped), < 0 (none)
    z = torch.tensor(
        [[3.0, 0.5, 0.1], [0.2, 1.0, 0.6], [0.0, 2.0, -1.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    y = torch.tensor([0, 1, 0])
    amount = [a, 0.4, 0.0]
    only = loss_class is LCLMTLoss
    value = loss(z, y, X=X, module=layer)
    assert_allclose(
        value.item(), _inflated_ce(z.detach(), y, amount, runner_up_only=only)
    )
    # as in the authors' code the clip factor is a constant for autograd: the
    # gradient is that of the cross-entropy at the shifted logits
    (grad,) = torch.autograd.grad(value, z)
    shifted = z.detach().clone()
    for i, t in enumerate(y.tolist()):
        others = [j for j in range(3) if j != t]
        targets = [max(others, key=lambda j: z[i, j])] if only else others
        shifted[i, targets] += amount[i]
    expected = torch.softmax(shifted, 1) - nn.functional.one_hot(y, 3)
    assert_allclose(grad.numpy(), expected.numpy() / 3, atol=1e-12)


def test_lmt_clip_scales_the_gradient_of_L():
    layer = nn.Linear(D, 3).double()
    X = torch.randn(2, D, dtype=torch.float64)
    wide = torch.tensor([[50.0, 0.0, 0.0], [0.0, 50.0, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])

    def weight_grad(logits, clip):
        loss = LMTLoss(eps=0.5, clip=clip)
        _warm(loss, layer, X, calls=1)
        layer.zero_grad()
        loss(logits, y, X=X, module=layer).backward()
        return layer.weight.grad.clone()

    # margins >= sqrt(2) L eps: clipping changes nothing, L still trains
    assert weight_grad(wide, True).abs().sum() > 0
    assert_allclose(weight_grad(wide, True), weight_grad(wide, False), atol=1e-14)
    # misclassified: no inflation, so no gradient through L
    assert not weight_grad(-wide, True).any()


def test_lmt_margin_term_trains_the_weights():
    net = _mlp()
    X, y = _data()
    logits = net(X).detach()  # only the Lipschitz estimate depends on weights
    LMTLoss()(logits, y, X=X, module=net).backward()
    for param_name, param in net.named_parameters():
        if param_name.endswith("weight"):
            assert param.grad.abs().sum() > 0, param_name


def _conv_norm(conv, shape):
    """Operator norm of the bias-free convolution, from its dense matrix."""

    def apply(x):
        return conv._conv_forward(x, conv.weight, None).reshape(-1)

    J = torch.autograd.functional.jacobian(apply, torch.zeros(shape).double())
    return np.linalg.norm(J.reshape(-1, math.prod(shape)).detach().numpy(), 2)


def test_lmt_chain_of_conv_batchnorm_pool_and_linear():
    conv = nn.Conv2d(2, 3, 3, padding=1, stride=1)
    bn = nn.BatchNorm2d(3)
    lin = _with_matrix(nn.Linear(27, 4), [1.5, 0.2, 0.1, 0.1])
    net = nn.Sequential(conv, bn, nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), lin)
    net = net.double()
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -4.0, 1.0]))
        bn.running_var.copy_(torch.tensor([1.0, 3.0, 0.25]))
    net.train()
    X = torch.randn(5, 2, 6, 6, dtype=torch.float64)
    loss = LMTLoss()
    estimates = [loss.lipschitz_estimate(net, X).item() for _ in range(120)]
    bn_scale = max(
        abs(g) / math.sqrt(v + bn.eps) for g, v in [(0.5, 1), (4, 3), (1, 0.25)]
    )
    expected = _conv_norm(conv, (1, 2, 6, 6)) * bn_scale * 1.5
    assert_allclose(estimates[-1], expected, rtol=1e-2)
    assert max(estimates) <= expected * (1 + 1e-9)
    assert net.training and bn.training  # the shape probe restored the modes
    assert_allclose(bn.running_var.detach().numpy(), [1.0, 3.0, 0.25])


def test_lmt_pool_bounds():
    loss = LMTLoss()
    X = torch.randn(2, 1, 8, 8)
    overlapping = nn.Sequential(nn.MaxPool2d(3, stride=2), nn.AvgPool2d(2))
    # max pool: each entry in <= 2 x 2 windows; avg pool 2x2: sqrt(1 / 4)
    assert_allclose(loss.lipschitz_estimate(overlapping, X).item(), 2 * 0.5)


def test_lmt_activation_bounds():
    chain = nn.Sequential(nn.LeakyReLU(2.0), nn.ELU(alpha=3.0), nn.Sigmoid(), nn.Tanh())
    assert_allclose(LMTLoss().lipschitz_estimate(chain).item(), 2.0 * 3.0 * 0.25)


def test_lmt_errors():
    X, y = _data()
    with pytest.raises(TypeError, match=r"layer '1' \(nn.GELU\)"):
        LMTLoss()(
            torch.zeros(N, K), y, X=X, module=nn.Sequential(nn.Linear(D, K), nn.GELU())
        )
    with pytest.raises(ValueError, match="needs the network"):
        LMTLoss()(torch.zeros(N, K), y, X=X)
    with pytest.raises(ValueError, match="needs X"):
        LMTLoss().lipschitz_estimate(nn.Conv2d(1, 1, 3))


# ------------------------------------------------------------------ AMR ---
@pytest.mark.parametrize("tau", [100.0, 0.05])
def test_amr_margin_term_matches_hand_computation(tau):
    net = _mlp()
    X, y = _data(n=12)
    features = net[:-1](X)
    logits = net[-1](features)
    y[:6] = logits[:6].argmax(1)  # at least half are correctly classified
    got = AverageMarginLoss(lam=0.3, tau=tau, beta=0.0)(
        logits, y, module=net, features=features
    )
    W = net[-1].weight.detach().numpy()
    Phi, Z = features.detach().numpy(), logits.detach().numpy()
    terms = []
    for i in range(12):
        t = int(y[i])
        reward = 0.0
        if Z[i].argmax() == t:
            wt = W[t] / np.linalg.norm(W[t])
            m = min(
                (wt - W[k] / np.linalg.norm(W[k])) @ Phi[i] for k in range(K) if k != t
            )
            reward = min(max(m, 0.0), tau)
        terms.append(_ce(Z[i].tolist(), t) - 0.3 * reward)
    assert_allclose(got.item(), np.mean(terms), rtol=1e-10)


def _orthonormal(rows, cols):
    Q, _ = np.linalg.qr(
        np.random.default_rng(1).standard_normal((max(rows, cols),) * 2)
    )
    return torch.from_numpy(Q[:rows, :cols].copy())


def _amr_penalty(net, beta, features, logits, y):
    with_beta = AverageMarginLoss(beta=beta)(logits, y, module=net, features=features)
    without = AverageMarginLoss(beta=0.0)(logits, y, module=net, features=features)
    return (with_beta - without).item() / beta


def test_amr_orthogonality_penalty():
    conv, wide, tall, last = (
        nn.Conv2d(1, 2, 2),  # flattened to (2, 4)
        nn.Linear(6, 3),  # (3, 6): more columns than rows
        nn.Linear(3, 5),  # (5, 3): more rows than columns
        nn.Linear(5, K),
    )
    net = nn.Sequential(conv, wide, tall, last).double()  # not run, only read
    features = torch.randn(N, 5, dtype=torch.float64)
    logits = last(features)
    y = torch.randint(0, K, (N,))
    with torch.no_grad():
        conv.weight.copy_(_orthonormal(2, 4).reshape(2, 1, 2, 2))
        wide.weight.copy_(_orthonormal(3, 6))
        tall.weight.copy_(_orthonormal(5, 3))
        last.weight.copy_(_orthonormal(K, 5))
    assert abs(_amr_penalty(net, 0.5, features, logits, y)) < 1e-10
    with torch.no_grad():
        for layer in (conv, wide, tall, last):
            layer.weight.normal_()
    expected = 0.0
    for layer in (conv, wide, tall, last):
        W = layer.weight.detach().numpy().reshape(layer.weight.shape[0], -1)
        rows, cols = W.shape
        # ||W W^T - I||^2 exceeds the penalty by the constant rows - cols
        expected += np.sum((W @ W.T - np.eye(rows)) ** 2) - max(rows - cols, 0)
    logits = last(features)
    assert_allclose(_amr_penalty(net, 0.5, features, logits, y), expected, rtol=1e-9)


@pytest.mark.parametrize("shape", [(3, 6), (4, 4)])
def test_amr_orthogonality_penalty_gradient(shape):
    # The closed-form gradient 4 (W W^T - I) W against autograd of the formula.
    W = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    net = nn.Sequential(nn.Linear(shape[1], shape[0], bias=False)).double()
    with torch.no_grad():
        net[0].weight.copy_(W)
    penalty = _orthogonality_penalty(net)
    penalty.backward()
    direct = ((W @ W.T - torch.eye(shape[0], dtype=W.dtype)) ** 2).sum()
    (expected,) = torch.autograd.grad(direct, W)
    assert_allclose(penalty.item(), direct.item(), rtol=1e-12)
    assert_allclose(net[0].weight.grad.numpy(), expected.numpy(), rtol=1e-10)


def test_amr_needs_features():
    X, y = _data()
    net = _mlp()
    with pytest.raises(ValueError, match="needs features"):
        AverageMarginLoss()(net(X), y, module=net)


# ---------------------------------------------- input-gradient losses ---
def _jacobians(net, X):
    return np.stack(
        [
            torch.autograd.functional.jacobian(net, X[i : i + 1])[0, :, 0].numpy()
            for i in range(len(X))
        ]
    )


def _finite_difference_jacobians(net, X, h=1e-6):
    Xn = X.numpy()
    J = np.zeros((len(Xn), K, Xn.shape[1]))
    for i in range(len(Xn)):
        for s in range(Xn.shape[1]):
            e = np.zeros_like(Xn[i])
            e[s] = h
            up = net(torch.from_numpy(Xn[i] + e)[None]).detach().numpy()[0]
            down = net(torch.from_numpy(Xn[i] - e)[None]).detach().numpy()[0]
            J[i, :, s] = (up - down) / (2 * h)
    return J


@pytest.mark.parametrize("q", [1, 2, math.inf])
def test_gradient_margin_matches_jacobians(q):
    net = _mlp()
    X, y = _data()
    J, Z = _jacobians(net, X), net(X).detach().numpy()
    terms = []
    for i in range(N):
        t = int(y[i])
        others = [j for j in range(K) if j != t]
        hinge = max(max(1 + Z[i, j] - Z[i, t], 0.0) for j in others)
        pen = max(np.linalg.norm(J[i, t] - J[i, j], ord=q) for j in others)
        terms.append(hinge + 0.7 * pen)
    got = _call(GradientMarginLoss(C=0.7, q=q), net, X, y)
    assert_allclose(got.item(), np.mean(terms), rtol=1e-10)


def test_cross_lipschitz_equals_the_double_sum_of_eq6():
    net = _mlp()
    X, y = _data()
    J, Z = _finite_difference_jacobians(net, X), net(X).detach().numpy()
    omega = sum(
        np.sum((J[i, a] - J[i, b]) ** 2)
        for i in range(N)
        for a in range(K)
        for b in range(K)
    ) / (N * K**2)
    ce = np.mean([_ce(Z[i].tolist(), int(y[i])) for i in range(N)])
    got = _call(CrossLipschitzLoss(lam=0.2), net, X, y)
    assert_allclose(got.item(), ce + 0.2 * omega, rtol=1e-8)


@pytest.mark.parametrize("loss", [GradientMarginLoss(), CrossLipschitzLoss()])
def test_input_gradient_losses_need_a_differentiable_input(loss):
    net = _mlp()
    X, y = _data()
    with pytest.raises(ValueError, match="requires_grad_"):
        loss(net(X), y, X=X, module=net)
    with pytest.raises(ValueError, match="requires_grad_"):
        loss(net(X), y)


_RANGE = r"must be a float in the range \[0.0, inf\)"


@pytest.mark.parametrize(
    "name, params, match",
    [
        ("lmt", {"eps": -1.0}, rf"'eps' parameter of LMTLoss {_RANGE}. Got -1.0"),
        ("lc_lmt", {"eps": -0.1}, rf"'eps' parameter of LCLMTLoss {_RANGE}"),
        ("lmt", {"clip": "yes"}, r"'clip' parameter of LMTLoss must be an instance"),
        ("margin_ratio", {"mu": -1}, rf"'mu' parameter of MarginRatioLoss {_RANGE}"),
        (
            "margin_softmax",
            {"mu": -1},
            rf"'mu' parameter of MarginSoftmaxLoss {_RANGE}",
        ),
        ("normalized_margin", {"mu": -2}, r"'mu' parameter of NormalizedMarginLoss"),
        ("margin_hinge", {"mu": -1}, rf"'mu' parameter of MarginHingeLoss {_RANGE}"),
        ("amr", {"lam": -1}, rf"'lam' parameter of AverageMarginLoss {_RANGE}"),
        ("amr", {"tau": -1}, rf"'tau' parameter of AverageMarginLoss {_RANGE}"),
        ("amr", {"beta": -1}, rf"'beta' parameter of AverageMarginLoss {_RANGE}"),
        (
            "gradient_margin",
            {"C": -1},
            rf"'C' parameter of GradientMarginLoss {_RANGE}",
        ),
        (
            "gradient_margin",
            {"q": 0.5},
            r"'q' parameter of GradientMarginLoss must be a float in the range "
            r"\[1.0, inf\]. Got 0.5",
        ),
        ("cross_lipschitz", {"lam": -1}, r"'lam' parameter of CrossLipschitzLoss"),
        ("margin_hinge", {"mu": "1"}, r"'mu' parameter of MarginHingeLoss must be"),
        (
            "certified_margin",
            {"lipschitz": "one"},
            r"'lipschitz' parameter of CertifiedMarginLoss must be a str among",
        ),
        ("certified_margin", {"lipschitz": 0.0}, r"'lipschitz' parameter"),
    ],
)
def test_bad_hyperparameters_are_refused_when_the_loss_is_built(name, params, match):
    with pytest.raises(ValueError, match=match):
        LOSSES[name](**params)


@pytest.mark.parametrize("q", [1, 2, 3.5, math.inf])
def test_gradient_margin_takes_any_norm_from_one_to_inf(q):
    net = _mlp()
    X, y = _data()
    assert torch.isfinite(_call(GradientMarginLoss(q=q), net, X, y))


# ----------------------------------------------------- registry, params ---
def test_resolve_loss():
    assert resolve_loss("cross_entropy") is CrossEntropyMarginLoss
    assert resolve_loss(LMTLoss) is LMTLoss
    instance = LCLMTLoss(eps=0.1)
    assert resolve_loss(instance) is instance
    with pytest.raises(ValueError, match="Unknown loss 'lmtt'; valid names are amr, "):
        resolve_loss("lmtt")
    with pytest.raises(TypeError, match="got int"):
        resolve_loss(3)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_hyperparameters_are_plain_keyword_attributes(name):
    cls = LOSSES[name]
    assert issubclass(cls, MarginLoss)
    params = list(inspect.signature(cls).parameters.values())
    for p in params:
        assert p.default is not inspect.Parameter.empty, p.name
    loss = cls(**{p.name: p.default for p in params})
    for p in params:
        assert getattr(loss, p.name) == p.default
        assert f"{p.name}=" in repr(loss)


def test_certified_margin_is_the_cross_entropy_of_the_pairwise_radii():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, K)).double()
    X, y = _data()
    loss = CertifiedMarginLoss(margin=1.5, temperature=3.0)
    for _ in range(200):  # converge the power iteration of the hidden layer
        loss._estimator(net[:-1])
    got = loss(net(X), y, X=X, module=net).item()
    L = np.linalg.norm(net[0].weight.detach().numpy(), 2)  # tanh: 1-Lipschitz
    W, Z = net[2].weight.detach().numpy(), net(X).detach().numpy()
    terms = []
    for i in range(N):
        t = int(y[i])
        radii = [
            (Z[i, t] - Z[i, j]) / (np.linalg.norm(W[t] - W[j]) * L)
            for j in range(K)
            if j != t
        ]
        terms.append(np.log(1 + sum(np.exp(3.0 * (1.5 - r)) for r in radii)))
    assert_allclose(got, np.mean(terms), rtol=1e-6)
    with pytest.raises(ValueError, match="last layer is nn.Linear"):
        loss(net(X), y, X=X, module=nn.Sequential(nn.Linear(D, K), nn.ReLU()))


def test_certified_margin_divides_by_the_constant_it_is_told():
    # "auto": a Lipschitz-by-construction module's own constant (1), not the
    # estimate of its layers' norms; a float: that constant.
    from sk_margin.nets import LipschitzMLP

    torch.manual_seed(0)
    net = LipschitzMLP(D, K, hidden_sizes=(8,)).double()
    with torch.no_grad():
        net[1].parametrizations.weight.original.mul_(0.5)  # still orthogonal
    X, y = _data()
    hidden = nn.Sequential(*list(net.children())[:-1])
    one = CertifiedMarginLoss(lipschitz=1.0)(net(X), y, X=X, module=net)
    auto = CertifiedMarginLoss()(net(X), y, X=X, module=net)
    assert_allclose(auto.item(), one.item(), rtol=1e-12)
    # Halving L doubles every radius: temperature (margin - 2 r) is
    # (2 temperature) (margin / 2 - r).
    half = CertifiedMarginLoss(3.0, 2.0, lipschitz=0.5)(net(X), y, X=X, module=net)
    same = CertifiedMarginLoss(1.5, 4.0, lipschitz=1.0)(net(X), y, X=X, module=net)
    assert_allclose(half.item(), same.item(), rtol=1e-12)
    estimate = CertifiedMarginLoss(lipschitz="estimate")
    for _ in range(50):
        estimate._estimator(hidden)
    got = estimate(net(X), y, X=X, module=net).item()
    assert_allclose(got, one.item(), rtol=1e-4)  # orthogonal layers: L = 1
    # A plain network declares nothing: "auto" estimates.
    plain = nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, K)).double()
    assert not hasattr(plain, "hidden_lipschitz_bound")
