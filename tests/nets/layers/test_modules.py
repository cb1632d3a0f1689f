"""Tests of the default torch modules (MLP, SmallCNN, default_module_for)."""

import functools

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits
from skorch import NeuralNetClassifier
from torch import nn

from sk_margin.nets import MLP, SmallCNN, default_module_for

# Every layer a Lipschitz bound has to know about.
STANDARD_LAYERS = (
    nn.Flatten,
    nn.Unflatten,
    nn.Linear,
    nn.Conv2d,
    nn.AvgPool2d,
    nn.ReLU,
    nn.Softplus,
    nn.Tanh,
    nn.Dropout,
)
ACTIVATION_TYPES = {"relu": nn.ReLU, "softplus": nn.Softplus, "tanh": nn.Tanh}


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def _all_modules():
    return [
        MLP(input_dim=64, n_classes=10),
        MLP(input_dim=64, n_classes=10, hidden_sizes=(), activation="tanh"),
        MLP(64, 10, hidden_sizes=(32, 16), activation="softplus", dropout=0.2),
        SmallCNN(input_shape=(1, 8, 8), n_classes=10),
        SmallCNN((3, 7, 9), 4, channels=(4,), kernel_size=4, activation="softplus"),
    ]


# --------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("in_shape", [(64,), (8, 8), (1, 8, 8)])
def test_mlp_output_shape_for_flat_and_image_inputs(in_shape):
    net = MLP(input_dim=64, n_classes=10)
    out = net(torch.randn(5, *in_shape))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32


@pytest.mark.parametrize("in_shape", [(64,), (8, 8), (1, 8, 8)])
def test_cnn_output_shape_for_flat_and_image_inputs(in_shape):
    net = SmallCNN(input_shape=(1, 8, 8), n_classes=10)
    out = net(torch.randn(5, *in_shape))
    assert out.shape == (5, 10)
    assert out.dtype == torch.float32


def test_cnn_flat_and_image_inputs_give_the_same_logits():
    net = SmallCNN(input_shape=(3, 8, 6), n_classes=5)
    images = torch.randn(4, 3, 8, 6)
    assert_allclose(
        net(images).detach().numpy(),
        net(images.reshape(4, -1)).detach().numpy(),
        rtol=1e-6,
    )


@pytest.mark.parametrize("kernel_size", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("input_shape", [(1, 8, 8), (3, 7, 9), (2, 5, 4)])
def test_cnn_flattened_size_matches_the_data(input_shape, kernel_size):
    """The Linear after the convolutions is sized for odd, even, non-square input."""
    net = SmallCNN(input_shape, n_classes=3, kernel_size=kernel_size)
    assert net(torch.randn(2, *input_shape)).shape == (2, 3)


def test_cnn_without_conv_blocks_is_an_mlp_on_images():
    net = SmallCNN((1, 8, 8), n_classes=10, channels=())
    assert not any(isinstance(layer, nn.Conv2d) for layer in net)
    assert net(torch.randn(3, 64)).shape == (3, 10)


def test_parameters_are_float32():
    for net in _all_modules():
        assert all(p.dtype == torch.float32 for p in net.parameters())


def test_deterministic_given_seed():
    def build_and_run():
        torch.manual_seed(42)
        net = SmallCNN((1, 8, 8), n_classes=10)
        mlp = MLP(64, 10, hidden_sizes=(32,))
        x = torch.ones(2, 64)
        return net(x).detach().numpy(), mlp(x).detach().numpy()

    first, second = build_and_run(), build_and_run()
    for a, b in zip(first, second, strict=True):
        assert_allclose(a, b, rtol=0, atol=0)


# --------------------------------------------------------------------------
# Layers: what the Lipschitz bounds walk over
# --------------------------------------------------------------------------


@pytest.mark.parametrize("net", _all_modules(), ids=lambda net: repr(net)[:20])
def test_module_is_a_flat_sequential_of_standard_layers(net):
    assert isinstance(net, nn.Sequential)
    children = list(net.children())
    # Flat: no container nested inside, every submodule is a direct child.
    assert list(net.modules())[1:] == children
    for child in children:
        assert type(child) in STANDARD_LAYERS, type(child)
    # The last layer is Linear: raw logits, no softmax.
    assert isinstance(children[-1], nn.Linear)


@pytest.mark.parametrize("net", _all_modules(), ids=lambda net: repr(net)[:20])
def test_applying_children_in_order_is_the_forward(net):
    net.eval()
    in_shape = net.input_shape if isinstance(net, SmallCNN) else (net.input_dim,)
    x = torch.randn(3, *in_shape)
    walked = functools.reduce(lambda h, layer: layer(h), net.children(), x)
    assert_allclose(walked.detach().numpy(), net(x).detach().numpy(), rtol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "softplus", "tanh"])
def test_activation_choice_is_reflected_in_the_layers(activation):
    expected = ACTIVATION_TYPES[activation]
    for net in [
        MLP(10, 3, hidden_sizes=(8, 8), activation=activation),
        SmallCNN((1, 8, 8), 3, activation=activation),
    ]:
        acts = [m for m in net if isinstance(m, tuple(ACTIVATION_TYPES.values()))]
        assert acts and all(type(m) is expected for m in acts)
    # One activation per hidden layer of the MLP, three in the default CNN.
    mlp = MLP(10, 3, hidden_sizes=(8, 8, 8), activation=activation)
    cnn = SmallCNN((1, 8, 8), 3, activation=activation)
    assert sum(isinstance(m, expected) for m in mlp) == 3
    assert sum(isinstance(m, expected) for m in cnn) == 3


def test_softplus_beta_is_passed_on():
    net = MLP(10, 3, activation="softplus", beta=10.0)
    (softplus,) = [m for m in net if isinstance(m, nn.Softplus)]
    assert softplus.beta == 10.0
    cnn = SmallCNN((1, 8, 8), 3, activation="softplus", beta=10.0)
    assert all(m.beta == 10.0 for m in cnn if isinstance(m, nn.Softplus))


def test_empty_hidden_sizes_gives_a_linear_model():
    net = MLP(input_dim=64, n_classes=10, hidden_sizes=())
    linears = [m for m in net if isinstance(m, nn.Linear)]
    assert len(linears) == 1
    assert (linears[0].in_features, linears[0].out_features) == (64, 10)
    assert [type(m) for m in net] == [nn.Flatten, nn.Linear]


def test_mlp_hidden_sizes_give_the_layer_widths():
    net = MLP(input_dim=20, n_classes=4, hidden_sizes=[16, 8])
    widths = [(m.in_features, m.out_features) for m in net if isinstance(m, nn.Linear)]
    assert widths == [(20, 16), (16, 8), (8, 4)]


def test_dropout_layers_only_when_requested():
    assert not any(isinstance(m, nn.Dropout) for m in MLP(10, 3, (8, 8)))
    net = MLP(10, 3, (8, 8), dropout=0.5)
    drops = [m for m in net if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.5 for m in drops)
    # Dropout follows each hidden activation, never the output layer.
    assert [type(m) for m in net][-1] is nn.Linear


def test_cnn_uses_average_pooling_and_same_padding():
    net = SmallCNN((1, 8, 8), 10, channels=(4, 6), kernel_size=5)
    pools = [m for m in net if isinstance(m, (nn.AvgPool2d, nn.MaxPool2d))]
    assert len(pools) == 2 and all(type(m) is nn.AvgPool2d for m in pools)
    convs = [m for m in net if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 6]
    assert all(c.padding == (2, 2) for c in convs)


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------


def test_bad_activation_lists_the_valid_ones():
    msg = r"activation must be one of 'relu', 'softplus', 'tanh', got 'sigmoid'"
    with pytest.raises(ValueError, match=msg):
        MLP(10, 3, activation="sigmoid")
    with pytest.raises(ValueError, match=msg):
        SmallCNN((1, 8, 8), 3, activation="sigmoid")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"input_dim": 0}, r"input_dim must be a positive int, got 0"),
        ({"input_dim": 4.0}, r"input_dim must be a positive int, got 4\.0"),
        ({"n_classes": -1}, r"n_classes must be a positive int, got -1"),
        ({"hidden_sizes": 256}, r"hidden_sizes must be a sequence of positive ints"),
        ({"hidden_sizes": (8, 0)}, r"hidden_sizes must be a sequence .* \(8, 0\)"),
        ({"dropout": 1.0}, r"dropout must be in \[0, 1\), got 1\.0"),
        ({"activation": "softplus", "beta": 0}, r"beta must be a positive number"),
    ],
)
def test_mlp_bad_parameters_raise(kwargs, match):
    params = {"input_dim": 10, "n_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        MLP(**params)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"input_shape": (8, 8)},
            r"input_shape must be \(C, H, W\), got \(8, 8\); for a single-channel "
            r"image pass \(1, 8, 8\)",
        ),
        ({"input_shape": (64,)}, r"input_shape must be \(C, H, W\), got \(64,\)\."),
        ({"input_shape": (1, 8, 0)}, r"input_shape must be a sequence of positive"),
        ({"input_shape": (1, 2, 2)}, r"input_shape \(1, 2, 2\) is too small for 2"),
        ({"channels": (16, 32, 64, 8)}, r"too small for 4 convolution"),
        ({"kernel_size": 0}, r"kernel_size must be a positive int, got 0"),
        ({"hidden_size": None}, r"hidden_size must be a positive int, got None"),
    ],
)
def test_cnn_bad_parameters_raise(kwargs, match):
    params = {"input_shape": (1, 8, 8), "n_classes": 3, **kwargs}
    with pytest.raises(ValueError, match=match):
        SmallCNN(**params)


def test_modules_are_plain_sequentials_so_their_layers_can_be_bounded():
    # Input shapes are checked by the estimator; the modules keep
    # nn.Sequential's forward so that sk_margin.lipschitz can walk them.
    assert MLP.forward is torch.nn.Sequential.forward
    assert SmallCNN.forward is torch.nn.Sequential.forward


# --------------------------------------------------------------------------
# default_module_for
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, expected",
    [
        ((64,), (MLP, {"input_dim": 64})),
        ((8, 8), (SmallCNN, {"input_shape": (1, 8, 8)})),
        ((3, 32, 32), (SmallCNN, {"input_shape": (3, 32, 32)})),
        (np.empty((5, 3, 8, 8)).shape[1:], (SmallCNN, {"input_shape": (3, 8, 8)})),
        (np.array([10]), (MLP, {"input_dim": 10})),
    ],
)
def test_default_module_for(shape, expected):
    cls, kwargs = default_module_for(shape)
    assert (cls, kwargs) == expected
    (value,) = kwargs.values()
    assert all(type(v) is int for v in (value if isinstance(value, tuple) else [value]))
    net = cls(n_classes=3, **kwargs)
    assert net(torch.randn(2, *shape)).shape == (2, 3)


@pytest.mark.parametrize(
    "shape, match",
    [
        ((), r"X_shape must be the shape of one sample: .* got \(\), with 0 dim"),
        ((5, 3, 8, 8), r"got \(5, 3, 8, 8\), with 4 dimensions\. Pass X\.shape\[1:\]"),
        ((0,), r"X_shape must be a sequence of positive ints"),
        (64, r"X_shape must be a sequence of positive ints .* got 64"),
    ],
)
def test_default_module_for_bad_shapes_raise(shape, match):
    with pytest.raises(ValueError, match=match):
        default_module_for(shape)


# --------------------------------------------------------------------------
# Inside skorch
# --------------------------------------------------------------------------


def test_mlp_trains_in_skorch(digits):
    X, y = digits
    net = NeuralNetClassifier(
        MLP,
        module__input_dim=X.shape[1],
        module__n_classes=10,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=3,
        train_split=None,
        verbose=0,
    )
    net.fit(X, y)
    assert net.predict_proba(X[:3]).shape == (3, 10)
    assert np.mean(net.predict(X) == y) > 0.8


def test_default_cnn_trains_in_skorch_on_flat_rows(digits):
    X, y = digits  # flat (n, 64) rows; the module reshapes them to (n, 1, 8, 8)
    cls, kwargs = default_module_for((8, 8))
    net = NeuralNetClassifier(
        cls,
        **{f"module__{k}": v for k, v in kwargs.items()},
        module__n_classes=10,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=1e-2,
        max_epochs=8,
        train_split=None,
        verbose=0,
    )
    net.fit(X, y)
    assert np.mean(net.predict(X) == y) > 0.8
    # Images work too with the same fitted module.
    assert_allclose(
        net.predict_proba(X[:5].reshape(5, 1, 8, 8)), net.predict_proba(X[:5])
    )
