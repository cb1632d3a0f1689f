"""Lipschitz-by-construction modules: MaxMin, orthogonal layers, LipschitzMLP."""

import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

from sk_margin import MarginNetClassifier, box_constrained_attack
from sk_margin.nets import (
    LipschitzMLP,
    MaxMin,
    PowerIterationLipschitz,
    lipschitz_bound,
    orthogonalize,
    pairwise_lipschitz_bounds,
)


def test_maxmin_sorts_pairs_and_is_one_lipschitz():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 6, dtype=torch.float64, generator=g)
    z = torch.randn(200, 6, dtype=torch.float64, generator=g)
    y = MaxMin()(x)
    pairs = x.reshape(200, 3, 2)
    assert torch.equal(y.reshape(200, 3, 2)[..., 0], pairs.amax(2))
    assert torch.equal(y.reshape(200, 3, 2)[..., 1], pairs.amin(2))
    ratio = (MaxMin()(x) - MaxMin()(z)).norm(dim=1) / (x - z).norm(dim=1)
    assert ratio.max() <= 1 + 1e-12
    # Its Jacobian is a permutation: back-propagated gradients keep their norm.
    x.requires_grad_(True)
    v = torch.randn(200, 6, dtype=torch.float64, generator=g)
    (grad,) = torch.autograd.grad((MaxMin()(x) * v).sum(), x)
    assert_allclose(grad.norm(dim=1), v.norm(dim=1), rtol=1e-12)
    # Images: pairs along the channel dimension, each pair sorted.
    img = torch.randn(2, 4, 3, 3, generator=g)
    assert MaxMin()(img).shape == img.shape
    a, b = img[:, 0::2], img[:, 1::2]
    assert torch.equal(MaxMin()(img)[:, 0::2], torch.maximum(a, b))
    assert torch.equal(MaxMin()(img)[:, 1::2], torch.minimum(a, b))
    with pytest.raises(ValueError, match="must be even"):
        MaxMin()(torch.zeros(2, 3))


def test_maxmin_splits_the_gradient_of_a_tie_as_max_and_min_do():
    # At a tie, torch.maximum and torch.minimum give each input half of
    # each output's gradient; MaxMin keeps that (training is unchanged).
    x = torch.tensor([[1.0, 1.0, 2.0, -3.0]], dtype=torch.float64)
    x.requires_grad_(True)
    v = torch.tensor([[1.0, 3.0, 5.0, 7.0]], dtype=torch.float64)
    (grad,) = torch.autograd.grad((MaxMin()(x) * v).sum(), x)
    assert_allclose(grad, [[2.0, 2.0, 5.0, 7.0]])


@pytest.mark.parametrize("orthogonal_map", ["qr", "cayley"])
@pytest.mark.parametrize("shape", [(8, 5), (5, 8), (6, 6)])
def test_orthogonalized_weights_have_unit_spectral_norm(orthogonal_map, shape):
    torch.manual_seed(0)
    layer = orthogonalize(nn.Linear(shape[1], shape[0]).double(), orthogonal_map)
    W = layer.weight.detach()
    small = min(shape)
    gram = W @ W.T if shape[0] <= shape[1] else W.T @ W
    assert_allclose(gram.numpy(), np.eye(small), atol=1e-10)
    assert_allclose(torch.linalg.matrix_norm(W, 2).item(), 1.0, rtol=1e-10)
    # It trains: a gradient step moves the weight and keeps it orthogonal.
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    layer(torch.ones(3, shape[1], dtype=torch.float64)).sum().backward()
    opt.step()
    W2 = layer.weight.detach()
    assert not torch.allclose(W, W2)
    assert_allclose(torch.linalg.matrix_norm(W2, 2).item(), 1.0, rtol=1e-10)
    with pytest.raises(ValueError, match="orthogonal_map must be one of"):
        orthogonalize(nn.Linear(2, 2), "svd")


def test_the_hidden_part_is_one_lipschitz_and_the_bounds_see_it():
    torch.manual_seed(0)
    net = LipschitzMLP(10, 4, hidden_sizes=(8, 6)).double()
    hidden = nn.Sequential(*list(net.children())[:-1])
    assert_allclose(lipschitz_bound(hidden, (10,)), 1.0, rtol=1e-6)
    W = net[-1].weight.detach().numpy()
    expected = np.linalg.norm(W[:, None] - W[None], axis=2)
    assert_allclose(pairwise_lipschitz_bounds(net, (10,)), expected, rtol=1e-6)
    # The training-time estimate walks the same layers and converges to it.
    estimator = PowerIterationLipschitz()
    for _ in range(100):
        estimate = estimator(hidden).item()
    assert_allclose(estimate, 1.0, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_sizes": (7,)}, "positive even ints"),
        ({"hidden_sizes": (0,)}, "positive even ints"),
        ({"orthogonal_map": "svd"}, "orthogonal_map must be one of"),
        ({"input_dim": 0}, "input_dim must be a positive int"),
    ],
)
def test_bad_parameters_raise(kwargs, match):
    params = {"input_dim": 4, "n_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        LipschitzMLP(**params)


def test_a_net_trained_for_its_certificate(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    net = MarginNetClassifier(
        module=LipschitzMLP,  # sized from the data
        module__hidden_sizes=(64, 64),
        criterion="certified_margin",
        criterion__margin=1.0,
        max_epochs=20,
        lr=3e-3,
        random_state=0,
    ).fit(X_train[:800], y_train[:800])
    assert net.module_[1].in_features == 64 and net.module_[-1].out_features == 10
    assert net.score(X_test, y_test) > 0.85
    X = X_test[:40]
    radii = net.certify(X)
    X_adv, success = box_constrained_attack(net, X, bounds=(0.0, 1.0))
    distance = np.linalg.norm(X_adv - X, axis=1)
    assert success.mean() > 0.9 and np.all(radii[success] <= distance[success])
    # The pairwise certificate is nearly exact for this construction: within
    # a factor 2.5 of the attack on average (a plain MLP: about 4).
    assert np.mean(radii[success]) > 0.4 * np.mean(distance[success])
    # A fitted estimator pickles although torch refuses parametrized layers.
    restored = pickle.loads(pickle.dumps(net))
    assert_allclose(restored.predict_proba(X), net.predict_proba(X))
    assert_allclose(restored.certify(X), radii)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_pickle_rebuilds_the_module_with_its_weights_dtype_and_mode(dtype):
    torch.manual_seed(0)
    net = LipschitzMLP(6, 3, hidden_sizes=(4, 2), orthogonal_map="cayley").to(dtype)
    net.eval()
    restored = pickle.loads(pickle.dumps(net))
    assert type(restored) is LipschitzMLP and not restored.training
    assert restored.hidden_sizes == (4, 2) and restored.orthogonal_map == "cayley"
    x = torch.rand((5, 6), dtype=dtype)
    assert restored[1].weight.dtype == dtype
    assert torch.equal(restored(x), net(x))
