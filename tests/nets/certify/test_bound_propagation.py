"""Bound propagation from l2 balls: sound for every layer kind, tight where exact.

Every bound is checked against the network itself: sampled points of the
ball (on its sphere, where the extremes of these functions lie more often,
and inside it, and a projected-gradient walk towards the boundary) never go
below the propagated lower bounds of the margins nor outside the intervals of
the layers' inputs; in 2-D the certified radius never exceeds the distance to
the decision boundary measured on a dense grid.
"""

import math

import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from torch import nn

import sk_margin.nets.certify._bound_propagation as bp
from sk_margin import box_constrained_attack
from sk_margin.nets import MarginNetClassifier, MaxMin, certify_network
from sk_margin.nets.certify._bound_propagation import (
    BoundPropagation,
    bound_propagation_radius,
)
from sk_margin.nets.certify._propagation_rules import relax

ACTIVATIONS = {
    "relu": nn.ReLU,
    "leaky_relu": lambda: nn.LeakyReLU(0.2),
    "softplus": lambda: nn.Softplus(beta=3.0),
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
}


def _bn(channels, dims):
    layer = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(channels)
    with torch.no_grad():
        layer.running_mean.normal_()
        layer.running_var.uniform_(0.3, 3.0)
        layer.weight.normal_()
        layer.bias.normal_()
    return layer


def _networks():
    """``(name, network, input shape)``: one network per layer kind."""
    torch.manual_seed(0)
    nets = [
        (
            f"mlp_{name}",
            nn.Sequential(
                nn.Linear(6, 16), make(), nn.Linear(16, 12), make(), nn.Linear(12, 4)
            ),
            (6,),
        )
        for name, make in ACTIVATIONS.items()
    ]
    nets += [
        (
            "mlp_maxmin",
            nn.Sequential(
                nn.Linear(6, 16),
                MaxMin(),
                nn.Linear(16, 12),
                MaxMin(),
                nn.Linear(12, 4),
            ),
            (6,),
        ),
        (
            "conv_maxmin",  # pairs of channels at every position
            nn.Sequential(
                nn.Conv2d(1, 4, 3),
                MaxMin(),
                nn.Flatten(),
                nn.Linear(144, 8),
                MaxMin(),
                nn.Linear(8, 4),
            ),
            (1, 8, 8),
        ),
        (
            "conv_padding_avgpool",
            nn.Sequential(
                nn.Unflatten(1, (1, 8, 8)),
                nn.Conv2d(1, 4, 3, padding=1),
                nn.ReLU(),
                nn.AvgPool2d(2),
                nn.Flatten(),
                nn.Linear(64, 5),
            ),
            (64,),
        ),
        (
            "conv_stride_batchnorm_maxpool",
            nn.Sequential(
                nn.Conv2d(2, 4, 3, stride=2, padding=1),
                _bn(4, 2),
                nn.Tanh(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(16, 5),
            ),
            (2, 8, 8),
        ),
        (
            "overlapping_maxpool_sigmoid",
            nn.Sequential(
                nn.Conv2d(1, 3, 3),
                nn.Sigmoid(),
                nn.MaxPool2d(3, stride=1),
                nn.Flatten(),
                nn.Linear(48, 4),
            ),
            (1, 8, 8),
        ),
        (
            "pixel_unshuffle_maxmin",
            nn.Sequential(
                nn.Conv2d(1, 4, 3, padding=1),
                MaxMin(),
                nn.PixelUnshuffle(2),
                nn.Conv2d(16, 4, 3, padding=1),
                nn.ReLU(),
                nn.PixelShuffle(2),
                nn.Flatten(),
                nn.Linear(64, 3),
            ),
            (1, 8, 8),
        ),
        (
            "batchnorm1d_dropout_adaptive_pool",
            nn.Sequential(
                nn.Linear(10, 20),
                _bn(20, 1),
                nn.Softplus(beta=2.0),
                nn.Dropout(0.3),
                nn.Unflatten(1, (2, 10)),
                nn.AdaptiveAvgPool1d(5),
                nn.Flatten(),
                nn.LeakyReLU(0.1),
                nn.Linear(10, 3),
            ),
            (10,),
        ),
    ]
    return [(name, net.double().eval(), shape) for name, net, shape in nets]


NETWORKS = _networks()


def _sphere(n, shape, radius, generator):
    d = torch.randn((n, *shape), dtype=torch.float64, generator=generator)
    norm = d.flatten(1).norm(dim=1).reshape(-1, *([1] * len(shape)))
    return d / norm * radius


def _margins(net, x, reference):
    out = net(x)
    return out.gather(1, reference[:, None]) - out


@pytest.mark.parametrize("name, net, shape", NETWORKS, ids=[n for n, *_ in NETWORKS])
@pytest.mark.parametrize("radius", [0.05, 0.4])
def test_sampled_points_never_go_below_the_propagated_bounds(name, net, shape, radius):
    g = torch.Generator().manual_seed(1)
    n = 5
    x = torch.rand((n, *shape), dtype=torch.float64, generator=g)
    R = torch.full((n,), radius, dtype=torch.float64)
    engine = BoundPropagation(net, shape)
    reference = net(x).argmax(1)
    lower = engine.margin_bounds(x, R, reference)
    relaxations, intervals, _ = engine.bounds(x, R)
    others = torch.ones_like(lower, dtype=torch.bool).scatter(1, reference[:, None], 0)

    # Points on the sphere and inside the ball.
    points = [x + _sphere(n, shape, radius, g) for _ in range(150)]
    scale = torch.rand((60, n), generator=g, dtype=torch.float64) ** (1 / 8)
    points += [x + _sphere(n, shape, radius, g) * s.reshape(-1, *([1] * len(shape)))
               for s in scale]  # fmt: skip
    # A projected-gradient walk that tries to close the smallest margin.
    z = x.clone()
    for _ in range(30):
        z.requires_grad_(True)
        gap = _margins(net, z, reference).masked_fill(~others, torch.inf)
        (grad,) = torch.autograd.grad(-gap.amin(1).sum(), z)
        with torch.no_grad():
            step = grad / grad.flatten(1).norm(dim=1).clamp_min(1e-12).reshape(
                -1, *([1] * len(shape))
            )
            z = x + _project(z + 0.1 * radius * step - x, radius)
        points.append(z.detach())

    layers = engine.layers
    for p in points:
        with torch.no_grad():
            margins = _margins(net, p, reference)
        assert torch.all(margins[others] >= lower[others] - 1e-10)
        h = p
        with torch.no_grad():
            for i, layer in enumerate(layers):
                if i in intervals:
                    lo, hi = intervals[i]
                    assert torch.all(h >= lo - 1e-10) and torch.all(h <= hi + 1e-10)
                if i in engine.pairs:  # the differences of the sorted pairs
                    d, fitted = engine.pairs[i].differences(h), relaxations[i]
                    assert torch.all(d >= fitted.lo - 1e-10)
                    assert torch.all(d <= fitted.hi + 1e-10)
                h = layer(h)


def _project(d, radius):
    norm = d.flatten(1).norm(dim=1).reshape(-1, *([1] * (d.ndim - 1)))
    return d * torch.clamp(radius / norm.clamp_min(1e-12), max=1.0)


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_relaxation_encloses_its_activation(name):
    layer = ACTIVATIONS[name]().double()
    g = torch.Generator().manual_seed(0)
    lo = torch.randn(500, dtype=torch.float64, generator=g) * 4
    hi = lo + torch.rand(500, dtype=torch.float64, generator=g) * 6
    lo[:20], hi[:20] = -0.5, 0.5  # symmetric around the inflection
    low_a, low_b, up_a, up_b = relax(layer, lo, hi)
    t = torch.linspace(0, 1, 2001, dtype=torch.float64)[:, None]
    z = lo + t * (hi - lo)
    with torch.no_grad():
        value = layer(z)
    assert torch.all(low_a * z + low_b <= value + 1e-12)
    assert torch.all(up_a * z + up_b >= value - 1e-12)
    # Tight where the interval is a point: both lines meet the function.
    point = torch.tensor([0.3], dtype=torch.float64)
    lines = relax(layer, point, point)
    assert_allclose(
        (lines[0] * point + lines[1]).item(), layer(point).item(), atol=1e-8
    )


def test_a_linear_network_is_certified_at_its_exact_distance():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(5, 4)).double().eval()
    X = np.random.default_rng(0).normal(size=(8, 5))
    radius = bound_propagation_radius(net, X, (5,))
    W, b = (p.detach().numpy() for p in net[1].parameters())
    S = X @ W.T + b
    c = S.argmax(1)
    exact = [
        min((S[i, c[i]] - S[i, j]) / np.linalg.norm(W[c[i]] - W[j])
            for j in range(4) if j != c[i])
        for i in range(len(X))
    ]  # fmt: skip
    assert np.all(radius <= exact)
    assert_allclose(radius, exact, rtol=6e-3)  # the bisection's precision


@pytest.mark.parametrize("name", [*ACTIVATIONS, "maxmin"])
def test_radius_never_exceeds_the_distance_on_a_dense_grid_in_2d(name):
    torch.manual_seed(4)  # a seed at which every net has several classes nearby
    make = ACTIVATIONS.get(name, MaxMin)
    net = nn.Sequential(nn.Linear(2, 12), make(), nn.Linear(12, 12), make(),
                        nn.Linear(12, 3)).double().eval()  # fmt: skip
    with torch.no_grad():  # sharper units: boundaries within reach
        for layer in net[::2]:
            layer.weight.mul_(3.0)
    X = np.random.default_rng(1).uniform(-1, 1, size=(12, 2))
    radius = bound_propagation_radius(net, X, (2,))
    glob = certify_network(net, X, (2,), "global_pairwise")
    # The decision on a fine polar grid around each point.
    angles = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    steps = np.linspace(0, 1, 400)[1:]
    with torch.no_grad():
        pred = net(torch.from_numpy(X)).argmax(1).numpy()
    ratios = []
    for x, r, c in zip(X, radius, pred, strict=True):
        reach = 2 * max(r, 1e-3)
        for _ in range(6):  # widen the grid until it meets the boundary
            pts = x + reach * steps[:, None, None] * np.stack(
                [np.cos(angles), np.sin(angles)], axis=1
            )
            with torch.no_grad():
                out = net(torch.from_numpy(pts.reshape(-1, 2)))
            flips = (out.argmax(1).numpy() != c).reshape(len(steps), len(angles))
            if flips.any():
                distance = reach * steps[np.argmax(flips.any(axis=1))]
                assert r <= distance
                ratios.append(r / distance)
                break
            reach *= 2
    assert len(ratios) >= 8 and np.mean(ratios) > 0.2
    assert np.all(radius >= glob * (1 - 1e-9)) or np.mean(radius > glob) > 0.5


def test_interval_arithmetic_where_a_backward_pass_is_too_large(monkeypatch):
    name, net, shape = NETWORKS[0]  # two ReLU layers
    x = torch.rand((4, *shape), dtype=torch.float64)
    R = torch.full((4,), 0.2, dtype=torch.float64)
    reference = net(x).argmax(1)
    full = BoundPropagation(net, shape).margin_bounds(x, R, reference)
    monkeypatch.setattr(bp, "_BACKWARD_ENTRIES", 0)
    monkeypatch.setattr(BoundPropagation, "_tightening", lambda self, i: None)
    cheap = BoundPropagation(net, shape).margin_bounds(x, R, reference)
    finite = torch.isfinite(full)
    assert not torch.allclose(cheap[finite], full[finite])  # the other path ran
    points = [x + _sphere(4, shape, 0.2, torch.Generator().manual_seed(k))
              for k in range(100)]  # fmt: skip
    for p in points:
        m = _margins(net, p, reference)
        assert torch.all(m[finite] >= cheap[finite] - 1e-10)


def test_a_pixel_unshuffle_is_propagated_as_the_permutation_it_is():
    # The unshuffle before a dense layer equals that layer with its input
    # columns permuted: both nets must get the same bounds and radii.
    torch.manual_seed(1)
    conv, head = nn.Conv2d(1, 4, 3, padding=1), nn.Linear(256, 3)
    layers = (conv, nn.ReLU(), nn.PixelUnshuffle(2), nn.Flatten(), head)
    net = nn.Sequential(*layers).double().eval()
    where = nn.PixelUnshuffle(2)(torch.arange(256.0).reshape(1, 4, 8, 8)).flatten()
    folded = nn.Linear(256, 3).double()
    with torch.no_grad():
        folded.weight[:, where.long()] = head.weight
        folded.bias.copy_(head.bias)
    plain = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), folded).eval()
    X = np.random.default_rng(0).random((6, 1, 8, 8))
    radii = certify_network(net, X, (1, 8, 8), "bound_propagation")
    assert np.all(radii > certify_network(net, X, (1, 8, 8), "global_pairwise"))
    assert_allclose(
        radii, certify_network(plain, X, (1, 8, 8), "bound_propagation"), rtol=1e-9
    )


def test_unsupported_layers_are_named_and_auto_does_without():
    net = nn.Sequential(nn.Linear(3, 4), nn.GELU(), nn.Linear(4, 2)).double().eval()
    with pytest.raises(TypeError, match=r"layer 1 \(nn.GELU\) is not supported"):
        BoundPropagation(net, (3,))
    net = nn.Sequential(nn.Linear(3, 4), nn.ELU(), nn.Linear(4, 2)).double().eval()
    X = np.random.default_rng(0).normal(size=(4, 3))
    auto = certify_network(net, X, (3,), "auto")  # ELU: global bounds only
    assert_allclose(auto, certify_network(net, X, (3,), "global_pairwise"))


@pytest.fixture(scope="module")
def deep_net(digits_split):
    X_train, X_test, y_train, _ = digits_split
    net = MarginNetClassifier(
        module__hidden_sizes=(64, 64), max_epochs=15, lr=3e-3, random_state=0
    ).fit(X_train[:600], y_train[:600])
    return net, X_test[:40]


def test_certificates_of_a_deep_net_never_exceed_attack_distances(deep_net):
    net, X = deep_net
    radii = net.certify(X, method="bound_propagation")
    X_adv, success = box_constrained_attack(net, X, bounds=(0.0, 1.0))
    distance = np.linalg.norm(X_adv - X, axis=1)
    assert success.mean() > 0.9
    assert np.all(radii[success] <= distance[success])
    # Far tighter than the global bound on this two-hidden-layer net.
    glob = net.certify(X, method="global_pairwise")
    assert np.mean(radii) > 1.5 * np.mean(glob)
    assert np.all(net.certify(X) >= glob * (1 - 1e-9))  # auto


WITHOUT_POOLING = [n for n in NETWORKS if "maxpool" not in n[0]]


@pytest.mark.parametrize(
    "name, net, shape", WITHOUT_POOLING, ids=[n for n, *_ in WITHOUT_POOLING]
)
def test_local_lipschitz_bounds_dominate_the_gradients_on_the_ball(name, net, shape):
    g = torch.Generator().manual_seed(2)
    n, radius = 4, 0.3
    x = torch.rand((n, *shape), dtype=torch.float64, generator=g)
    reference = net(x).argmax(1)
    engine = BoundPropagation(net, shape)
    _, lipschitz = engine.certificates(
        x, torch.full((n,), radius, dtype=torch.float64), reference
    )
    assert torch.all(lipschitz.gather(1, reference[:, None]) == 0)
    k = lipschitz.shape[1]
    for _ in range(40):
        p = (x + _sphere(n, shape, radius, g) * torch.rand(1, generator=g)).detach()
        p.requires_grad_(True)
        margins = _margins(net, p, reference)
        for j in range(k):
            (grad,) = torch.autograd.grad(margins[:, j].sum(), p, retain_graph=True)
            assert torch.all(grad.flatten(1).norm(dim=1) <= lipschitz[:, j] + 1e-10)


@pytest.mark.parametrize("name", ["mlp_relu", "mlp_maxmin", "conv_maxmin"])
def test_lipschitz_intervals_only_ever_tighten_the_bounds(name, monkeypatch):
    _, net, shape = next(n for n in NETWORKS if n[0] == name)
    g = torch.Generator().manual_seed(3)
    x = torch.rand((4, *shape), dtype=torch.float64, generator=g)
    R = torch.full((4,), 0.5, dtype=torch.float64)
    reference = net(x).argmax(1)
    engine = BoundPropagation(net, shape)
    assert set(engine.spreads) == set(engine.nonlinear[1:])
    with_spreads = engine.bounds(x, R)[1]
    lower = engine.margin_bounds(x, R, reference)
    engine.spreads = {}
    without = engine.bounds(x, R)[1]
    finite = torch.isfinite(lower)
    assert torch.all(lower[finite] >= engine.margin_bounds(x, R, reference)[finite])
    for i, (lo, hi) in with_spreads.items():
        assert torch.all(lo >= without[i][0]) and torch.all(hi <= without[i][1])


@pytest.mark.parametrize(
    "name", ["mlp_relu", "mlp_leaky_relu", "pixel_unshuffle_maxmin"]
)
@torch.no_grad()
def test_unstable_neurons_are_as_tight_as_a_full_backward_pass(name):
    # The engine runs backward passes for the neurons that can change state
    # only (the others' relaxation is exact whatever their interval): their
    # intervals are at least as tight as a full pass over every neuron.
    net, shape = next((n, s) for k, n, s in NETWORKS if k == name)
    engine = BoundPropagation(net, shape)
    x = torch.rand((3, *shape), dtype=torch.float64)
    R = torch.full((3,), 0.3, dtype=torch.float64)
    relaxations, intervals, first_centre = engine.bounds(x, R)
    later = [i for i in engine.nonlinear[1:] if engine._piecewise(i)]
    assert later, name
    for i in later:
        lo, hi = intervals[i]
        shape_i = engine.in_shapes[i]
        eye = torch.eye(math.prod(shape_i), dtype=torch.float64)
        eye = eye.reshape(1, -1, *shape_i)
        args = (eye, i, relaxations, x, R, first_centre)
        full_lo = engine._backward(*args).reshape(lo.shape)
        full_hi = engine._backward(*args, lower=False).reshape(hi.shape)
        unstable = (lo < 0) & (hi > 0)
        assert unstable.any()
        assert torch.all(lo[unstable] >= full_lo[unstable] - 1e-12)
        assert torch.all(hi[unstable] <= full_hi[unstable] + 1e-12)


def test_a_point_where_every_relu_is_off_is_still_certified():
    # At x = 0 no ReLU is active, so the network is locally constant and its
    # gradient vanishes; the decision changes where relu(w x - b) = c / 2,
    # at |x| = (b + c / 2) / w. The search must not stop at 0 for want of a
    # first-order estimate.
    w, b, c = 2.0, 1.0, 1.0
    net = nn.Sequential(nn.Linear(1, 1), nn.ReLU(), nn.Linear(1, 2)).double().eval()
    with torch.no_grad():
        net[0].weight.fill_(w)
        net[0].bias.fill_(-b)
        net[2].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[2].bias.copy_(torch.tensor([0.0, c]))
    radius = bound_propagation_radius(net, np.zeros((1, 1)), (1,))
    exact = (b + c / 2) / w
    assert exact * 0.9 <= radius[0] <= exact


def _two_relu_cnn():
    torch.manual_seed(1)
    net = nn.Sequential(
        nn.Conv2d(1, 3, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(100, 4),
    )
    return net.double().eval(), (1, 10, 10)


@torch.no_grad()
def test_packed_rows_bound_each_neuron_as_its_own_backward_pass(monkeypatch):
    # Neurons of one channel whose windows never overlap share a backward
    # row; each must get exactly the bounds of a pass of its own.
    net, shape = _two_relu_cnn()
    monkeypatch.setattr(bp, "_BACKWARD_ENTRIES", 0)  # no full pass affordable
    engine = BoundPropagation(net, shape)
    i = engine.nonlinear[1]
    assert engine._tightening(i) == "packed"
    pack = engine._packing(i)
    assert 1 < pack.member.shape[0] < pack.positions  # shared, not one per neuron
    x = torch.rand((3, *shape), dtype=torch.float64)
    R = torch.full((3,), 0.4, dtype=torch.float64)
    relaxations, intervals, first_centre = engine.bounds(x, R)
    lo, hi = engine._interval(intervals, relaxations, i, 3)
    args = (lo, hi, relaxations, x, R, first_centre)
    packed = engine._packed_backward(i, *args)
    single = engine._unstable_backward(i, *args)
    done = ~torch.isnan(single[0])
    assert done.sum() > 10
    assert_allclose(packed[:, done], single[:, done], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("radius", [0.1, 0.5])
def test_packed_bounds_are_never_beaten_by_sampled_points(monkeypatch, radius):
    net, shape = _two_relu_cnn()
    monkeypatch.setattr(bp, "_BACKWARD_ENTRIES", 0)
    engine = BoundPropagation(net, shape)
    x = torch.rand((4, *shape), dtype=torch.float64)
    R = torch.full((4,), radius, dtype=torch.float64)
    reference = net(x).argmax(1)
    lower = engine.margin_bounds(x, R, reference)
    finite = torch.isfinite(lower)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        m = _margins(net, x + _sphere(4, shape, radius, gen), reference)
        assert torch.all(m[finite] >= lower[finite] - 1e-10)


def test_radii_from_reused_lines_hold_on_their_spheres(monkeypatch):
    # The search reuses intermediate bounds fitted for larger balls: every
    # radius it returns must still hold (no point of its sphere changes the
    # decision) and stay close to the radius found without reuse.
    net, shape = _two_relu_cnn()
    monkeypatch.setattr(bp, "_BACKWARD_ENTRIES", 0)
    X = np.random.default_rng(0).random((6, 100))
    radius = bound_propagation_radius(net, X, shape)
    assert np.all(radius > 0)
    x = torch.from_numpy(X).reshape(6, *shape)
    reference = net(x).argmax(1)
    gen = torch.Generator().manual_seed(1)
    r = torch.as_tensor(radius).reshape(6, 1, 1, 1)
    for _ in range(200):
        d = _sphere(6, shape, 1.0, gen) * r
        assert torch.equal(net(x + d).argmax(1), reference)
    monkeypatch.setattr(bp, "_REUSE", {"packed": 1.0, "unstable": 1.0})
    fresh = bound_propagation_radius(net, X, shape)
    assert np.all(radius >= 0.9 * fresh)


def _record_rows(monkeypatch, method):
    """Record how many rows each call of ``BoundPropagation.<method>`` gets."""
    rows = []
    original = getattr(BoundPropagation, method)

    def recorded(self, x, *args, **kwargs):
        rows.append(len(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(BoundPropagation, method, recorded)
    return rows


def test_one_propagation_ends_a_row_that_cannot_beat_its_known_radius(monkeypatch):
    # "auto" passes the global radius as the known one: where bound
    # propagation fails there, one check must end the row.
    name, net, shape = NETWORKS[0]
    engine = BoundPropagation(net, shape)
    X = np.random.default_rng(0).random((5, *shape))
    exact = engine.radius(X)
    calls = _record_rows(monkeypatch, "margin_lines")
    known = 1.5 * exact
    assert_allclose(engine.radius(X, lower=known), known)
    assert 0 < sum(calls) <= len(X)  # none where psi(0) is below the known


def test_the_progress_bar_moves_while_bound_propagation_runs(monkeypatch, capsys):
    # Bound propagation can take seconds per row: the rows go in batches of
    # what one propagation bounds at once, not in one batch of 1,024, and
    # the bar advances after each.
    name, net, shape = NETWORKS[0]
    X = np.random.default_rng(0).random((30, *shape))
    expected = certify_network(net, X, shape, method="bound_propagation")
    monkeypatch.setattr(bp, "_BATCH_ENTRIES", 4 * 16 * 6)  # a few rows per call
    sizes = _record_rows(monkeypatch, "radius")
    capsys.readouterr()
    radius = certify_network(net, X, shape, method="bound_propagation", progress=True)
    assert_allclose(radius, expected, rtol=1e-9)
    assert len(sizes) > 3 and sum(sizes) == 30
    assert "30/30" in capsys.readouterr().err


def test_no_propagation_where_the_linearised_radius_is_already_certified(
    monkeypatch,
):
    # A propagation at radius 0 proves the distance to the linearised
    # margins, and a larger radius only loosens it: where the known radius
    # is already that distance (linear networks, and 1-Lipschitz networks
    # that keep gradient norms), "auto" must not run bound propagation.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 3)).double().eval()
    X = np.random.default_rng(0).random((20, 5))
    calls = _record_rows(monkeypatch, "margin_lines")
    auto = certify_network(net, X, (5,), method="auto")
    assert not calls
    assert_allclose(auto, certify_network(net, X, (5,), method="global_pairwise"))
