import copy
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from torch import nn

from sk_margin.nets import (
    aol_rescale,
    conv2d_spectral_norm_bound,
    layer_lipschitz_bounds,
    linf_lipschitz_bound,
    lipschitz_bound,
    pairwise_lipschitz_bounds,
)
from sk_margin.nets.certify._conv import _gram_bound

# PyTorch warns that padding="same" with an even kernel copies the input.
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tensors here are tiny: extra threads only stall on a busy machine."""
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n_threads)


def _dense(fn, in_shape):
    """Matrix of the affine map ``fn`` (float64), one basis vector at a time."""
    n = math.prod(in_shape)
    eye = torch.eye(n, dtype=torch.float64).reshape(n, *in_shape)
    with torch.no_grad():
        out = fn(eye) - fn(torch.zeros(1, *in_shape, dtype=torch.float64))
    return out.reshape(n, -1).T.numpy()


def _norm(matrix):
    """Exact spectral norm (float64 LAPACK SVD)."""
    return torch.linalg.matrix_norm(torch.as_tensor(matrix), ord=2).item()


def _double(net):
    return copy.deepcopy(net).double().eval()


def _jacobian(net, x):
    def f(v):
        return net(v[None])[0].flatten()

    return (
        torch.autograd.functional.jacobian(f, x, vectorize=True)
        .reshape(-1, x.numel())
        .numpy()
    )


def _randomize_batchnorm(net):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            with torch.no_grad():
                m.running_mean.normal_()
                m.running_var.uniform_(0.2, 2.0)
                if m.affine:
                    m.weight.normal_()
                    m.bias.normal_()
    return net


# --- single layers ---------------------------------------------------------------


def test_linear_bound_is_the_exact_spectral_norm():
    layer = nn.Linear(7, 5)
    ((pos, got_layer, bound),) = layer_lipschitz_bounds(nn.Sequential(layer), (7,))
    assert pos == 0 and got_layer is layer
    exact = _norm(layer.weight.detach().double().numpy())
    assert bound >= exact
    assert_allclose(bound, exact, rtol=1e-8)


CONV_CASES = [
    # (in_shape, Conv2d keyword arguments)
    ((1, 6, 6), dict(out_channels=3, kernel_size=3)),
    ((1, 6, 6), dict(out_channels=3, kernel_size=3, padding=1)),
    ((2, 5, 7), dict(out_channels=4, kernel_size=3, padding=2)),
    ((2, 5, 7), dict(out_channels=4, kernel_size=(3, 2), padding=(1, 0))),
    ((2, 5, 7), dict(out_channels=4, kernel_size=4, padding="same")),
    ((2, 5, 7), dict(out_channels=3, kernel_size=2, padding="valid", bias=False)),
    ((2, 6, 6), dict(out_channels=4, kernel_size=3, stride=2, padding=1)),
    ((2, 5, 7), dict(out_channels=4, kernel_size=3, stride=(2, 3))),
    ((1, 7, 7), dict(out_channels=2, kernel_size=3, stride=3, padding=1)),
    ((2, 6, 6), dict(out_channels=4, kernel_size=3, dilation=2, padding=2)),
    ((2, 7, 6), dict(out_channels=2, kernel_size=2, dilation=(2, 1), stride=2)),
    ((4, 6, 6), dict(out_channels=6, kernel_size=3, groups=2, padding=1)),
    ((4, 5, 7), dict(out_channels=4, kernel_size=3, groups=4, stride=2, padding=1)),
]


@pytest.mark.parametrize(("in_shape", "kwargs"), CONV_CASES)
def test_conv_bound_is_at_least_the_exact_operator_norm(in_shape, kwargs):
    conv = nn.Conv2d(in_shape[0], **kwargs)
    exact = _norm(_dense(_double(conv), in_shape))
    bound = conv2d_spectral_norm_bound(conv, in_shape[1:])
    assert exact <= bound <= 1.5 * exact


@pytest.mark.parametrize("stride", [1, 2])
def test_conv_bound_is_tight_on_larger_inputs(stride):
    conv = nn.Conv2d(2, 3, 3, stride=stride, padding=1)
    exact = _norm(_dense(_double(conv), (2, 16, 16)))
    assert exact <= conv2d_spectral_norm_bound(conv, (16, 16)) <= 1.05 * exact


@pytest.mark.parametrize(
    ("in_shape", "kwargs"),
    [
        ((3, 5, 4), dict(out_channels=4, kernel_size=1)),  # W (x) identity
        ((2, 4, 6), dict(out_channels=3, kernel_size=2, stride=2)),  # tiles
        ((2, 6, 6), dict(out_channels=3, kernel_size=3, stride=3, groups=1)),
    ],
)
def test_conv_bound_is_exact_when_the_kernel_never_overlaps_itself(in_shape, kwargs):
    # Every input pixel feeds one output position, so the operator is an
    # orthogonal rearrangement of copies of the (c_out, c_in * k * k) matrix.
    conv = nn.Conv2d(in_shape[0], **kwargs)
    exact = _norm(_dense(_double(conv), in_shape))
    flat = _norm(conv.weight.detach().double().flatten(1).numpy())
    assert_allclose(exact, flat, rtol=1e-10)
    bound = conv2d_spectral_norm_bound(conv, in_shape[1:])
    assert bound >= exact
    assert_allclose(bound, exact, rtol=1e-8)


@settings(max_examples=60, deadline=None)
@given(
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    groups=st.sampled_from([1, 2]),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.one_of(st.tuples(st.integers(0, 2), st.integers(0, 2)), st.just("same")),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    extra=st.tuples(st.integers(0, 5), st.integers(0, 5)),
    seed=st.integers(0, 2**16),
)
def test_conv_bound_is_sound_for_random_configurations(
    c_in, c_out, groups, kernel, stride, padding, dilation, extra, seed
):
    if padding == "same":
        stride, hw = (1, 1), tuple(1 + e for e in extra)
    else:  # an input at least as large as the dilated kernel, once padded
        hw = tuple(
            max(1, d * (k - 1) + 1 - 2 * p + e)
            for d, k, p, e in zip(dilation, kernel, padding, extra, strict=True)
        )
    torch.manual_seed(seed)
    conv = nn.Conv2d(
        c_in * groups, c_out * groups, kernel, stride, padding, dilation, groups
    )
    exact = _norm(_dense(_double(conv), (c_in * groups, *hw)))
    assert conv2d_spectral_norm_bound(conv, hw) >= exact


@settings(max_examples=60, deadline=None)
@given(
    c_in=st.integers(1, 3),
    c_out=st.integers(1, 3),
    groups=st.sampled_from([1, 2]),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    seed=st.integers(0, 2**16),
)
def test_gram_bound_is_sound_whatever_the_input_size(
    c_in, c_out, groups, kernel, stride, dilation, padding, seed
):
    # The Schur-test bound of the autocorrelation holds for the convolution
    # on the infinite plane, so for the layer on any input; it never beats
    # the Fourier bound, which is exact there.
    torch.manual_seed(seed)
    conv = nn.Conv2d(
        c_in * groups, c_out * groups, kernel, stride, padding, dilation, groups
    )
    gram = _gram_bound(conv.weight.detach().double(), groups)
    hw = tuple(d * (k - 1) + 4 for d, k in zip(dilation, kernel, strict=True))
    exact = _norm(_dense(_double(conv), (c_in * groups, *hw)))
    assert gram >= exact
    assert gram >= conv2d_spectral_norm_bound(conv, hw) * (1 - 1e-9)


def test_gram_bound_is_one_for_an_aol_rescaled_kernel_and_near_the_norm():
    torch.manual_seed(0)
    conv = aol_rescale(nn.Conv2d(4, 6, 3, padding=1))
    # The rescaling makes 1 the Perron root of the weighted Gram sums: the
    # power iteration reaches it, where plain row sums would exceed 1.
    weight = conv.weight.detach().double()
    assert_allclose(_gram_bound(weight, 1), 1.0, rtol=1e-6)
    exact = _norm(_dense(_double(conv), (4, 24, 24)))
    assert 0.5 < exact <= conv2d_spectral_norm_bound(conv, (24, 24)) <= 1 + 1e-8


def test_l2_norm_pooling_bound_is_sound_and_attained():
    pool = nn.LPPool2d(2, kernel_size=2)  # windows do not overlap: exactly 1
    bounds = layer_lipschitz_bounds(nn.Sequential(pool), (2, 6, 6))
    assert bounds[0][2] == pytest.approx(1.0, rel=1e-8)
    overlap = nn.LPPool2d(2, kernel_size=3, stride=1)  # up to 9 windows a pixel
    ((_, _, bound),) = layer_lipschitz_bounds(nn.Sequential(overlap), (1, 5, 5))
    assert bound == pytest.approx(3.0, rel=1e-8)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(200, 1, 5, 5)))
    y = x + 0.1 * torch.from_numpy(rng.normal(size=(200, 1, 5, 5)))
    change = (overlap(x) - overlap(y)).flatten(1).norm(dim=1)
    assert (change / (x - y).flatten(1).norm(dim=1)).max().item() <= bound
    # The centre pixel, alone, from 0 to 1: all 9 windows' norms grow by 1.
    centre = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    centre[0, 0, 2, 2] = 1.0
    assert (overlap(centre) - overlap(0 * centre)).norm().item() == pytest.approx(3)


def test_l2_norm_pooling_needs_norm_type_2():
    with pytest.raises(ValueError, match="norm_type must be 2"):
        lipschitz_bound(nn.Sequential(nn.LPPool2d(1, 2)), (1, 4, 4))


def test_pixel_shuffles_are_permutations():
    net = nn.Sequential(nn.PixelUnshuffle(2), nn.PixelShuffle(2))
    assert [b for _, _, b in layer_lipschitz_bounds(net, (3, 4, 6))] == [1.0, 1.0]
    matrix = _dense(nn.PixelUnshuffle(2), (3, 4, 6))
    assert_allclose(np.sort(matrix.sum(axis=0)), 1.0)  # one 1 per column ...
    assert_allclose(matrix @ matrix.T, np.eye(72))  # ... and per row


def test_conv_bound_rejects_non_zero_padding_modes():
    conv = nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")
    with pytest.raises(ValueError, match='padding_mode must be "zeros"'):
        conv2d_spectral_norm_bound(conv, (5, 5))
    with pytest.raises(ValueError, match=r"layer 1 \(nn.Conv2d\).*padding_mode"):
        lipschitz_bound(nn.Sequential(nn.Identity(), conv), (1, 5, 5))


@pytest.mark.parametrize(
    "layer",
    [
        nn.BatchNorm1d(5),
        nn.BatchNorm1d(5, affine=False),
        nn.BatchNorm2d(3),
    ],
)
def test_batchnorm_bound_is_exact_in_eval_mode(layer):
    _randomize_batchnorm(nn.Sequential(layer))
    in_shape = (5,) if isinstance(layer, nn.BatchNorm1d) else (3, 2, 2)
    exact = _norm(_dense(_double(layer), in_shape))
    layer.train()
    bound = lipschitz_bound(layer, in_shape)
    assert bound >= exact
    assert_allclose(bound, exact, rtol=1e-8)


def test_batchnorm_without_running_stats_is_rejected():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4, track_running_stats=False))
    with pytest.raises(ValueError, match=r"layer 1 \(nn.BatchNorm1d\).*batch stat"):
        layer_lipschitz_bounds(net, (3,))


AVG_POOLS = [
    nn.AvgPool2d(2),
    nn.AvgPool2d(3, stride=1),
    nn.AvgPool2d(3, stride=2, padding=1),
    nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
    nn.AvgPool2d(3, stride=2, ceil_mode=True, count_include_pad=False),
    nn.AvgPool2d((2, 3), stride=(1, 2), padding=(1, 0), divisor_override=4),
    nn.AdaptiveAvgPool2d(3),
    nn.AdaptiveAvgPool2d((4, 2)),
]


@pytest.mark.parametrize("pool", AVG_POOLS, ids=repr)
@pytest.mark.parametrize("in_shape", [(1, 6, 6), (2, 5, 7)])
def test_average_pooling_bound_is_the_exact_operator_norm(pool, in_shape):
    exact = _norm(_dense(pool, in_shape))
    bound = lipschitz_bound(pool, in_shape)
    assert bound >= exact
    assert_allclose(bound, exact, rtol=1e-8)
    # Consistent with the row/column-sum bound ||A||_2 <= sqrt(||A||_1 ||A||_inf).
    matrix = _dense(pool, in_shape)
    assert bound <= 1.000001 * np.sqrt(
        np.abs(matrix).sum(0).max() * np.abs(matrix).sum(1).max()
    )


MAX_POOLS = [
    nn.MaxPool2d(2),
    nn.MaxPool2d(3, stride=1),
    nn.MaxPool2d(3, stride=2, padding=1),
    nn.MaxPool2d(3, stride=2, ceil_mode=True),
    nn.MaxPool2d((3, 2), stride=(1, 2), dilation=(1, 2)),
    nn.AdaptiveMaxPool2d((4, 3)),
]


@pytest.mark.parametrize("pool", MAX_POOLS, ids=repr)
def test_max_pooling_bound_is_sound_and_attained(pool):
    in_shape = (2, 6, 7)
    bound = lipschitz_bound(pool, in_shape)
    pool64 = _double(pool)
    rng = np.random.default_rng(0)
    for _ in range(20):
        x = torch.from_numpy(rng.standard_normal(in_shape))
        assert _norm(_jacobian(pool64, x)) <= bound
    # A single dominant pixel is the maximum of every window holding it: the
    # Jacobian there has norm sqrt(number of such windows); take the largest.
    best = 0.0
    for i in range(in_shape[1]):
        for j in range(in_shape[2]):
            x = torch.zeros(in_shape, dtype=torch.float64)
            x[0, i, j] = 1.0
            best = max(best, _norm(_jacobian(pool64, x)))
    assert best <= bound
    assert_allclose(bound, best, rtol=1e-8)


POOLS_1D_3D = [
    (nn.AvgPool1d(3, stride=2, padding=1), (2, 7)),
    (
        nn.AvgPool1d(3, stride=2, padding=1, count_include_pad=False, ceil_mode=True),
        (2, 8),
    ),
    (nn.AdaptiveAvgPool1d(3), (2, 7)),
    (nn.AvgPool3d(2), (1, 4, 5, 3)),
    (
        nn.AvgPool3d((2, 3, 2), stride=1, padding=(1, 1, 0), count_include_pad=False),
        (1, 4, 5, 3),
    ),
    (
        nn.AvgPool3d(3, stride=2, padding=1, ceil_mode=True, divisor_override=5),
        (1, 5, 5, 4),
    ),
    (nn.AdaptiveAvgPool3d((2, 3, 2)), (1, 5, 4, 3)),
    (nn.MaxPool1d(3, stride=1), (1, 7)),
    (nn.MaxPool1d(3, stride=2, dilation=2, padding=1, ceil_mode=True), (1, 9)),
    (nn.AdaptiveMaxPool1d(4), (1, 7)),
    (nn.MaxPool3d((3, 2, 2), stride=(1, 2, 1), dilation=(1, 1, 2)), (1, 5, 4, 5)),
    (nn.AdaptiveMaxPool3d((2, 3, 2)), (1, 3, 5, 3)),
]


@pytest.mark.parametrize(("pool", "in_shape"), POOLS_1D_3D, ids=repr)
def test_1d_and_3d_pooling_bounds_are_exact(pool, in_shape):
    bound = lipschitz_bound(pool, in_shape)
    if "Max" not in type(pool).__name__:
        exact = _norm(_dense(pool, in_shape))
    else:  # attained at a single dominant entry, as in 2-D
        exact = 0.0
        for index in np.ndindex(*in_shape[1:]):
            x = torch.zeros(in_shape, dtype=torch.float64)
            x[(0, *index)] = 1.0
            exact = max(exact, _norm(_jacobian(_double(pool), x)))
    assert bound >= exact
    assert_allclose(bound, exact, rtol=1e-8)


def test_max_pooling_with_overlap_counts_windows():
    # kernel 3, stride 1 on 6 pixels: an inner pixel is in 3 windows per axis.
    assert_allclose(lipschitz_bound(nn.MaxPool2d(3, stride=1), (1, 6, 6)), 3.0)
    with pytest.raises(ValueError, match="return_indices"):
        lipschitz_bound(nn.MaxPool2d(2, return_indices=True), (1, 4, 4))


@pytest.mark.parametrize(
    ("layer", "lipschitz"),
    [
        (nn.ReLU(), 1.0),
        (nn.ReLU6(), 1.0),
        (nn.Hardtanh(-0.5, 2.0), 1.0),
        (nn.LeakyReLU(0.1), 1.0),
        (nn.LeakyReLU(-2.5), 2.5),
        (nn.Softplus(), 1.0),
        (nn.Softplus(beta=5.0), 1.0),
        (nn.Tanh(), 1.0),
        (nn.ELU(), 1.0),
        (nn.ELU(alpha=3.0), 3.0),
        (nn.Sigmoid(), 0.25),
    ],
    ids=repr,
)
def test_activation_bounds_are_their_largest_slope(layer, lipschitz):
    bound = lipschitz_bound(layer, (1,))
    assert_allclose(bound, lipschitz)
    # Finite-difference slopes never exceed the bound and approach it.
    x = torch.linspace(-30, 30, 600_001, dtype=torch.float64)
    with torch.no_grad():
        slopes = (layer(x).diff() / x.diff()).abs()
    assert slopes.max().item() <= bound * (1 + 1e-9)
    assert slopes.max().item() >= 0.99 * bound


def test_shape_layers_are_one_lipschitz():
    net = nn.Sequential(
        nn.Flatten(), nn.Unflatten(1, (2, 6)), nn.Identity(), nn.Dropout(0.5)
    )
    bounds = [b for _, _, b in layer_lipschitz_bounds(net, (3, 4))]
    assert bounds == [1.0, 1.0, 1.0, 1.0]


# --- whole networks --------------------------------------------------------------


def _mlp():
    return _randomize_batchnorm(
        nn.Sequential(
            nn.Linear(6, 16),
            nn.BatchNorm1d(16),
            nn.LeakyReLU(0.2),
            nn.Sequential(nn.Linear(16, 12), nn.ELU(1.5), nn.Dropout(0.3)),
            nn.Linear(12, 8),
            nn.Softplus(beta=2.0),
            nn.Linear(8, 8),
            nn.Tanh(),
            nn.Linear(8, 4),
        )
    )


def _cnn():
    return _randomize_batchnorm(
        nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1),
            nn.BatchNorm2d(4),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Sequential(nn.Conv2d(4, 6, 3, padding="same", dilation=2), nn.Sigmoid()),
            nn.Conv2d(6, 6, 2, stride=2, groups=2, bias=False),
            nn.AvgPool2d(2, stride=1, padding=1),
            nn.Flatten(),
            nn.Linear(6 * 3 * 3, 5),
            nn.Dropout(0.1),
        )
    )


NETWORKS = [(_mlp, (6,)), (_cnn, (1, 8, 8))]


@pytest.mark.parametrize(("make", "in_shape"), NETWORKS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_network_bounds_dominate_jacobians_and_difference_quotients(
    make, in_shape, seed
):
    torch.manual_seed(seed)
    net = make()
    net.train()
    lip = lipschitz_bound(net, in_shape)
    lip_inf = linf_lipschitz_bound(net, in_shape)
    pair = pairwise_lipschitz_bounds(net, in_shape)
    net64 = _double(net)
    n_classes = net64(torch.zeros(1, *in_shape, dtype=torch.float64)).shape[1]
    assert pair.shape == (n_classes, n_classes)
    assert_allclose(np.diag(pair), 0.0)
    assert_allclose(pair, pair.T)
    assert lip_inf <= lip * (1 + 1e-9)

    rng = np.random.default_rng(seed)
    for scale in (0.1, 1.0, 5.0):
        x = torch.from_numpy(scale * rng.standard_normal(in_shape))
        jac = _jacobian(net64, x)
        assert _norm(jac) <= lip
        assert np.linalg.norm(jac, axis=1).max() <= lip_inf
        diffs = np.linalg.norm(jac[:, None] - jac[None], axis=2)
        assert np.all(diffs <= pair * (1 + 1e-12) + 1e-15)

    x = torch.from_numpy(rng.standard_normal((200, *in_shape)))
    y = x + torch.from_numpy(rng.standard_normal((200, *in_shape))) * torch.tensor(
        rng.choice([1e-3, 1e-1, 1.0, 3.0], size=200)
    ).reshape(-1, *[1] * len(in_shape))
    with torch.no_grad():
        dout = (net64(x) - net64(y)).numpy()
    din = (x - y).flatten(1).norm(dim=1).numpy()
    assert np.all(np.linalg.norm(dout, axis=1) <= lip * din)
    assert np.all(np.abs(dout).max(axis=1) <= lip_inf * din)
    diff_pairs = np.abs(dout[:, :, None] - dout[:, None, :])
    assert np.all(diff_pairs <= pair[None] * din[:, None, None] + 1e-12)


def test_every_bound_is_exact_for_a_single_linear_layer():
    layer = nn.Linear(6, 4)
    W = layer.weight.detach().double().numpy()
    net = nn.Sequential(layer, nn.Identity())
    assert_allclose(lipschitz_bound(net, (6,)), _norm(W), rtol=1e-8)
    assert_allclose(
        linf_lipschitz_bound(net, (6,)), np.linalg.norm(W, axis=1).max(), rtol=1e-8
    )
    expected = np.linalg.norm(W[:, None] - W[None], axis=2)
    pair = pairwise_lipschitz_bounds(net, (6,))
    assert_allclose(pair, expected, rtol=1e-8)
    assert np.all(pair >= expected)
    # A bare layer is a one-layer network.
    assert_allclose(lipschitz_bound(layer, (6,)), _norm(W), rtol=1e-8)


def test_product_bound_is_the_product_of_layer_bounds():
    torch.manual_seed(0)
    net = _mlp()
    bounds = [b for _, _, b in layer_lipschitz_bounds(net, (6,))]
    assert len(bounds) == 11  # nested Sequential opened
    assert_allclose(lipschitz_bound(net, (6,)), math.prod(bounds))


def test_a_layer_used_twice_counts_twice():
    layer = nn.Linear(3, 3)
    net = nn.Sequential(layer, nn.ReLU(), layer)
    assert len(layer_lipschitz_bounds(net, (3,))) == 3
    norm = _norm(layer.weight.detach().double().numpy())
    assert_allclose(lipschitz_bound(net, (3,)), norm**2, rtol=1e-8)


# --- errors and module state ------------------------------------------------------


def test_unsupported_layers_are_named_with_their_position():
    net = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.GELU(), nn.Linear(4, 2))
    with pytest.raises(TypeError, match=r"layer 2 \(nn.GELU\): supported layers"):
        lipschitz_bound(net, (4,))
    nested = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.LSTM(4, 4)))
    with pytest.raises(TypeError, match=r"layer 2 \(nn.LSTM at '1.1'\)"):
        layer_lipschitz_bounds(nested, (4,))


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3)

    def forward(self, x):
        return 2 * self.lin(x)


class _DoubleSequential(nn.Sequential):
    def forward(self, x):
        return 2 * super().forward(x)


class _PlainSequential(nn.Sequential):
    pass


class _ScaledReLU(nn.ReLU):
    def forward(self, x):
        return 3 * super().forward(x)


class _ScaledConv(nn.Conv2d):
    def _conv_forward(self, x, weight, bias):  # called by Conv2d.forward
        return 3 * super()._conv_forward(x, weight, bias)


@pytest.mark.parametrize(
    ("module", "match"),
    [
        (_Block(), r"layer 0 \(_Block\) \(its forward is unknown"),
        (_DoubleSequential(nn.Linear(3, 3)), r"overrides how nn.Sequential runs"),
        (nn.Sequential(nn.Linear(3, 3), _ScaledReLU()), r"layer 1 \(_ScaledReLU\)"),
        (nn.Sequential(nn.Unflatten(1, (1, 3, 1)), _ScaledConv(1, 1, 1)), "subclass"),
    ],
)
def test_layers_with_unknown_forward_are_rejected(module, match):
    with pytest.raises(TypeError, match=match):
        lipschitz_bound(module, (3,))


def test_sequential_subclass_keeping_forward_is_supported():
    net = _PlainSequential(nn.Linear(3, 3))
    assert_allclose(
        lipschitz_bound(net, (3,)), _norm(net[0].weight.detach().double().numpy())
    )


def test_forward_hooks_are_rejected():
    net = nn.Sequential(nn.Linear(3, 3))
    handle = net[0].register_forward_hook(lambda m, i, o: 10 * o)
    with pytest.raises(TypeError, match="forward hooks"):
        lipschitz_bound(net, (3,))
    handle.remove()
    lipschitz_bound(net, (3,))


def test_linf_and_pairwise_need_a_final_linear_layer():
    net = nn.Sequential(nn.Linear(3, 3), nn.ReLU())
    for func in (linf_lipschitz_bound, pairwise_lipschitz_bounds):
        with pytest.raises(ValueError, match=r"last layer is nn.Linear.*nn.ReLU"):
            func(net, (3,))
    conv_head = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Linear(2, 2))
    with pytest.raises(ValueError, match="one score vector per sample"):
        linf_lipschitz_bound(conv_head, (1, 4, 4))


def test_input_shape_is_validated():
    net = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match=r"input_shape=\(4,\) does not fit layer 0"):
        lipschitz_bound(net, (4,))
    with pytest.raises(ValueError, match="input_shape must be"):
        lipschitz_bound(net, 3)


def test_module_state_is_left_unchanged():
    torch.manual_seed(0)
    net = _cnn()
    net.train()
    net[1].eval()  # mixed training flags
    net[0].weight.requires_grad_(False)
    modes = [m.training for m in net.modules()]
    grads = [p.requires_grad for p in net.parameters()]
    state = copy.deepcopy(net.state_dict())
    dtypes = [p.dtype for p in net.parameters()]
    pairwise_lipschitz_bounds(net, (1, 8, 8))
    lipschitz_bound(net, (1, 8, 8))
    assert [m.training for m in net.modules()] == modes
    assert [p.requires_grad for p in net.parameters()] == grads
    assert [p.dtype for p in net.parameters()] == dtypes
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_parametrized_spectral_norm_is_bounded_without_updating_it():
    layer = nn.utils.parametrizations.spectral_norm(nn.Linear(5, 4))
    net = nn.Sequential(layer, nn.ReLU(), nn.Linear(4, 2))
    net.train()
    state = copy.deepcopy(net.state_dict())
    bounds = [b for _, _, b in layer_lipschitz_bounds(net, (5,))]
    with torch.no_grad():
        net.eval()
        weight = layer.weight.double().numpy()
    assert bounds[0] >= _norm(weight)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_network_bounds_agree_with_the_single_bounds():
    from sk_margin.nets import (
        linf_lipschitz_bound,
        lipschitz_bound,
        network_lipschitz_bounds,
        pairwise_lipschitz_bounds,
    )

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4)
    )
    l2, linf, pair = network_lipschitz_bounds(net, (6,))
    assert l2 == lipschitz_bound(net, (6,))
    assert linf == linf_lipschitz_bound(net, (6,))
    np.testing.assert_array_equal(pair, pairwise_lipschitz_bounds(net, (6,)))
