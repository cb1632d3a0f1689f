"""AOL-rescaled layers and LipschitzCNN: 1-Lipschitz by construction, and
bounded by the engine from their weights, not from the construction."""

import math
import pickle

import numpy as np
import pytest
import torch
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits
from torch import nn

from sk_margin import MarginNetClassifier
from sk_margin.nets import (
    LipschitzCNN,
    aol_rescale,
    conv2d_spectral_norm_bound,
    lipschitz_bound,
    pairwise_lipschitz_bounds,
)


def _exact_norm(layer, in_shape):
    """The layer's exact l2 operator norm (float64), from its dense matrix."""
    layer = layer.double()
    n = math.prod(in_shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    with torch.no_grad():
        out = layer(eye) - layer(torch.zeros(1, *in_shape, dtype=torch.float64))
    return torch.linalg.matrix_norm(out.reshape(n, -1), ord=2).item()


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=3, out_channels=8, kernel_size=3, padding=1),
        dict(in_channels=4, out_channels=2, kernel_size=5, stride=2, padding=2),
        dict(in_channels=4, out_channels=6, kernel_size=3, groups=2, dilation=2),
    ],
)
def test_aol_convolutions_have_norm_at_most_one(kwargs):
    torch.manual_seed(0)
    conv = aol_rescale(nn.Conv2d(**kwargs))
    exact = _exact_norm(conv, (kwargs["in_channels"], 12, 12))
    assert 0.3 < exact <= 1.0 + 1e-12
    assert conv2d_spectral_norm_bound(conv, (12, 12)) <= 1.0 + 1e-8


@pytest.mark.parametrize("shape", [(5, 12), (12, 5)])
def test_aol_dense_layers_rescale_the_smaller_side(shape):
    torch.manual_seed(0)
    layer = aol_rescale(nn.Linear(shape[1], shape[0]))
    weight = layer.weight.detach().double()
    assert torch.linalg.matrix_norm(weight, ord=2).item() <= 1.0 + 1e-6
    raw = layer.parametrizations.weight.original.detach().double()
    ratio = weight / raw
    # Columns scaled when the weight is tall, rows when it is wide.
    spread = ratio.std(dim=0 if shape[0] >= shape[1] else 1)
    assert spread.max().item() < 1e-6


def test_aol_rescaling_is_differentiable():
    torch.manual_seed(0)
    conv = aol_rescale(nn.Conv2d(2, 4, 3, padding=1))
    conv(torch.randn(3, 2, 6, 6)).square().sum().backward()
    grad = conv.parametrizations.weight.original.grad
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_aol_refuses_what_it_cannot_rescale():
    with pytest.raises(TypeError, match="nn.Conv2d or an nn.Linear, got Conv1d"):
        aol_rescale(nn.Conv1d(2, 2, 3))
    with pytest.raises(ValueError, match='padding_mode="zeros"'):
        aol_rescale(nn.Conv2d(2, 2, 3, padding=1, padding_mode="reflect"))


@pytest.mark.parametrize(
    ("input_shape", "image"),
    [((1, 8, 8), (1, 8, 8)), ((8, 8), (1, 8, 8)), ((64,), (1, 8, 8))],
)
def test_lipschitz_cnn_takes_images_and_square_rows(input_shape, image):
    net = LipschitzCNN(input_shape, 10, channels=(4, 8), hidden_sizes=(16,))
    assert net.input_shape == image
    names = [type(m).__name__ for m in net]
    # Two 2x2 unshuffles: 8x8 -> 4x4 -> 2x2, with 4 * 8 channels.
    assert names.count("PixelUnshuffle") == 2
    assert net[-3].in_features == 4 * 8 * 2 * 2
    for batch in (torch.rand(3, 64), torch.rand(3, 1, 8, 8)):
        assert net(batch).shape == (3, 10)


def test_lipschitz_cnn_downsamples_only_even_sizes():
    net = LipschitzCNN((2, 6, 5), 3, channels=(4,), hidden_sizes=(8,))
    assert "PixelUnshuffle" not in [type(m).__name__ for m in net]
    assert net(torch.rand(2, 2, 6, 5)).shape == (2, 3)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(input_shape=(50,)), r"module__input_shape=\(C, H, W\)"),
        (dict(input_shape=(1, 0, 8)), "input_shape must be"),
        (dict(channels=(3,)), "channels must be positive even ints"),
        (dict(hidden_sizes=(0,)), "hidden_sizes must be positive even ints"),
        (dict(kernel_size=2), "kernel_size must be a positive odd int"),
        (dict(orthogonal_map="svd"), "orthogonal_map must be one of"),
        (dict(n_classes=0), "n_classes must be a positive int"),
    ],
)
def test_lipschitz_cnn_refuses_bad_arguments(kwargs, match):
    args = {"input_shape": (1, 8, 8), "n_classes": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        LipschitzCNN(**args)


def test_lipschitz_cnn_hidden_part_is_bounded_by_one_from_its_weights():
    torch.manual_seed(0)
    net = LipschitzCNN((1, 8, 8), 10, channels=(4, 8), hidden_sizes=(16,)).double()
    hidden = nn.Sequential(*list(net.children())[:-1])
    L = lipschitz_bound(hidden, (64,))
    assert L <= 1.0 + 1e-6
    # The pairwise constants: the last layer's row differences, times at
    # most 1 (less where a rescaled kernel's norm is below 1, as at init).
    pair = pairwise_lipschitz_bounds(net, (64,))
    W = net[-1].weight.detach()
    rows = torch.cdist(W, W).numpy()
    assert np.all(pair <= rows * L * (1 + 1e-8))
    assert np.all(pair >= 0.1 * rows)


@pytest.fixture(scope="module")
def fitted_cnn():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    net = MarginNetClassifier(
        LipschitzCNN,
        module__channels=(8, 16),
        module__hidden_sizes=(64,),
        criterion="certified_margin",
        max_epochs=8,
        lr=3e-3,
        random_state=0,
    ).fit(X[:600], y[:600])
    return net, X[600:700], y[600:700]


def test_lipschitz_cnn_trains_on_flat_rows_and_certifies(fitted_cnn):
    net, X, y = fitted_cnn
    assert net.module_.input_shape == (1, 8, 8)  # inferred from 64 features
    assert net.score(X, y) > 0.8
    radii = net.certify(X)
    assert np.mean(radii > 0) > 0.8
    # "auto" is at least the pairwise radius, the one it is built for.
    assert np.all(radii >= net.certify(X, method="global_pairwise") * (1 - 1e-12))


def test_lipschitz_cnn_pickles(fitted_cnn):
    net, X, _ = fitted_cnn
    restored = pickle.loads(pickle.dumps(net))
    assert_array_equal(restored.predict_proba(X), net.predict_proba(X))
    assert_array_equal(restored.certify(X), net.certify(X))
