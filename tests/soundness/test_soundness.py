"""Independent soundness suite: no certified radius is ever beaten.

Every model of a matrix (kernel models at several widths and strengths,
MLPs with each activation and several losses, a 1-Lipschitz MLP and CNN, a
CNN with padding, stride, max pooling and batch norm in eval mode, one with
l2-norm pooling and a pixel unshuffle, models inside a
Pipeline with a scaler) certifies test digits; each certified point is then
attacked by the attack library's minimum-norm attacks (DeepFool, and
Carlini-Wagner l2 with restarts from noise), by the box-constrained attack
(flat inputs),
and by random sampling inside its ball; 2-D models are also checked on a
dense grid. A violation is an input closer than the radius with another
prediction; the assertion message names the model, the point, the radius and
the distance.

The whole matrix is marked ``soundness`` (``make soundness``, a few
minutes); the rows marked ``quick`` run in the default test suite too.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sk_margin import MarginKernelLogReg, MarginNetClassifier, certified_radii

pytest.importorskip("art")
torch = pytest.importorskip("torch")
nn = torch.nn

from sk_margin.attacks import generate_adversarial  # noqa: E402
from sk_margin.nets import LipschitzCNN, LipschitzMLP  # noqa: E402

N_POINTS = 15
N_SAMPLES = 400  # random points per ball


def _digits(images=False):
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(
        X / 16.0, y, test_size=0.25, stratify=y, random_state=0
    )
    X_train, X_test = (
        X_train[:500].astype(np.float32),
        X_test[:N_POINTS].astype(np.float32),
    )
    if images:
        X_train, X_test = X_train.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)
    return X_train, y_train[:500], X_test


def _cnn():
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(4, 8, 3, stride=2, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8 * 2 * 2, 10),
    )


def _l2_pool_cnn():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.LPPool2d(2, kernel_size=2),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.PixelUnshuffle(2),
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


def _net(**params):
    base = {"max_epochs": 15, "batch_size": 64, "lr": 3e-3, "random_state": 0}
    return MarginNetClassifier(**{**base, **params})


def _kernel(reg, gamma_scale, lam):
    return MarginKernelLogReg(
        lam, regularizer=reg, gamma_scale=gamma_scale, n_centers=150, random_state=0
    )


quick = pytest.mark.quick
MODELS = {
    "kernel CL, gamma x1, lam 1e-2": (
        lambda: _kernel("cross_lipschitz", 1.0, 1e-2),
        "flat",
        quick,
    ),
    "kernel CL, gamma x0.5, lam 1e-3": (
        lambda: _kernel("cross_lipschitz", 0.5, 1e-3),
        "flat",
        None,
    ),
    "kernel CL, gamma x2, lam 1e-1": (
        lambda: _kernel("cross_lipschitz", 2.0, 1e-1),
        "flat",
        None,
    ),
    "kernel RKHS, gamma x0.5, lam 1e-4": (
        lambda: _kernel("rkhs", 0.5, 1e-4),
        "flat",
        None,
    ),
    "kernel RKHS, gamma x2, lam 1e-2": (
        lambda: _kernel("rkhs", 2.0, 1e-2),
        "flat",
        None,
    ),
    "kernel in a Pipeline with StandardScaler": (
        lambda: make_pipeline(StandardScaler(), _kernel("cross_lipschitz", 1.0, 1e-2)),
        "raw",
        quick,
    ),
    "MLP relu, cross_entropy": (
        lambda: _net(module__hidden_sizes=(32,)),
        "flat",
        quick,
    ),
    "MLP tanh, cross_entropy": (
        lambda: _net(module__hidden_sizes=(32,), module__activation="tanh"),
        "flat",
        None,
    ),
    "MLP softplus, cross_entropy": (
        lambda: _net(module__hidden_sizes=(32,), module__activation="softplus"),
        "flat",
        None,
    ),
    "MLP relu 2 layers, lmt": (
        lambda: _net(
            module__hidden_sizes=(32, 32), criterion="lmt", criterion__eps=0.3
        ),
        "flat",
        None,
    ),
    "MLP relu, lc_lmt": (
        lambda: _net(
            module__hidden_sizes=(32,), criterion="lc_lmt", criterion__eps=0.3
        ),
        "flat",
        None,
    ),
    "MLP relu, amr": (
        lambda: _net(module__hidden_sizes=(32,), criterion="amr"),
        "flat",
        None,
    ),
    "MLP softplus, cross_lipschitz": (
        lambda: _net(
            module__hidden_sizes=(32,),
            module__activation="softplus",
            criterion="cross_lipschitz",
        ),
        "flat",
        None,
    ),
    "LipschitzMLP, certified_margin": (
        lambda: _net(
            module=LipschitzMLP,
            module__hidden_sizes=(32,),
            criterion="certified_margin",
        ),
        "flat",
        None,
    ),
    "CNN: padding, stride, max pool, batch norm": (
        lambda: _net(module=_cnn()),
        "images",
        quick,
    ),
    "CNN: l2-norm pooling, pixel unshuffle": (
        lambda: _net(module=_l2_pool_cnn()),
        "images",
        None,
    ),
    "LipschitzCNN, certified_margin": (
        lambda: _net(
            module=LipschitzCNN,
            module__channels=(8, 16),
            module__hidden_sizes=(32,),
            criterion="certified_margin",
        ),
        "images",
        quick,
    ),
    "MLP in a Pipeline with StandardScaler": (
        lambda: make_pipeline(StandardScaler(), _net(module__hidden_sizes=(32,))),
        "raw",
        None,
    ),
}


def _params():
    for name, (_, _, mark) in MODELS.items():
        marks = [pytest.mark.soundness] + ([mark] if mark else [])
        yield pytest.param(name, marks=marks, id=name)


def _fit(name):
    build, kind, _ = MODELS[name]
    X_train, y_train, X = _digits(images=kind == "images")
    if kind == "raw":
        X_train, X = X_train * 16.0, X * 16.0
    model = build().fit(X_train, y_train)
    return model, X


def _predict(model, X):
    return model.predict(np.asarray(X, dtype=np.float32))


def _violations(name, model, X, radii, candidates, attack):
    """Rows of ``candidates`` closer than the radius with another prediction."""
    found = []
    base = _predict(model, X)
    for i, (x, r) in enumerate(zip(X, radii, strict=True)):
        C = np.asarray(candidates[i], dtype=np.float64).reshape(-1, *x.shape)
        if not len(C):
            continue
        dist = np.linalg.norm((C - x).reshape(len(C), -1), axis=1)
        closer = dist < r
        if closer.any():
            changed = _predict(model, C[closer]) != base[i]
            if changed.any():
                found.append(
                    f"{name}, {attack}: point {i}, certified radius {r:.6g}, "
                    f"adversarial input at distance {dist[closer][changed].min():.6g}"
                )
    return found


def _ball_samples(x, r, rng):
    u = rng.normal(size=(N_SAMPLES, x.size))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    scale = (
        r
        * (1 - 1e-7)
        * np.concatenate(
            [
                np.ones(N_SAMPLES // 2),
                rng.random(N_SAMPLES - N_SAMPLES // 2) ** (1 / x.size),
            ]
        )
    )
    return (x.ravel() + scale[:, None] * u).reshape(N_SAMPLES, *x.shape)


@pytest.mark.parametrize("name", _params())
def test_no_attack_beats_a_certified_radius(name):
    model, X = _fit(name)
    radii = certified_radii(model, X)
    assert np.all(radii >= 0) and np.mean(radii > 0) > 0.5, (name, radii)
    rng = np.random.default_rng(0)
    violations = []
    for attack, params in (
        ("box", {}),
        ("deepfool", {}),
        ("carlini_wagner", {"max_iter": 20, "binary_search_steps": 5}),
    ):
        if attack == "box" and X.ndim > 2:
            continue  # the box-constrained attack takes flat inputs only
        # Carlini-Wagner also restarts from noise around the points.
        noisy = X + 0.01 * rng.normal(size=X.shape)
        starts = [X, noisy] if attack == "carlini_wagner" else [X]
        for start in starts:
            X_adv = generate_adversarial(
                model, np.asarray(start, dtype=np.float32), attack=attack, **params
            )
            violations += _violations(name, model, X, radii, X_adv[:, None], attack)
    samples = [_ball_samples(x, r, rng) for x, r in zip(X, radii, strict=True)]
    violations += _violations(name, model, X, radii, samples, "random ball samples")
    assert not violations, "\n".join(violations)


@pytest.mark.soundness
@pytest.mark.quick
@pytest.mark.parametrize("kind", ["kernel CL", "kernel RKHS", "MLP relu"])
def test_no_grid_point_beats_a_certified_radius_in_2d(kind):
    X, y = make_moons(300, noise=0.15, random_state=0)
    if kind.startswith("kernel"):
        reg = "cross_lipschitz" if kind.endswith("CL") else "rkhs"
        model = MarginKernelLogReg(1e-2, regularizer=reg, random_state=0).fit(X, y)
    else:
        model = _net(module__hidden_sizes=(32,), max_epochs=40).fit(
            X.astype(np.float32), y
        )
    h = 0.005
    g1, g2 = np.arange(-2.0, 3.0, h), np.arange(-1.5, 2.0, h)
    grid = np.stack(np.meshgrid(g1, g2), -1).reshape(-1, 2)
    pred = _predict(model, grid)
    points, _ = make_moons(40, noise=0.15, random_state=1)
    radii = certified_radii(model, points.astype(np.float32))
    bad = []
    for i, (x, r) in enumerate(zip(points, radii, strict=True)):
        other = grid[pred != _predict(model, x[None])[0]]
        d = np.linalg.norm(other - x, axis=1).min()
        # A grid point of another class within r - h/sqrt(2) would mean the
        # boundary is closer than r.
        if d < r - h / np.sqrt(2):
            bad.append(
                f"{kind}: point {i}, certified radius {r:.6g}, grid point at {d:.6g}"
            )
    assert not bad, "\n".join(bad)
    assert np.mean(radii) > 1e-3


@pytest.mark.soundness
@pytest.mark.quick
def test_the_suite_would_catch_an_inflated_radius():
    # The same attacks and samples flag radii ten times too large, with the
    # model, point, radius and distance in the message.
    model, X = _fit("kernel CL, gamma x1, lam 1e-2")
    radii = 10 * certified_radii(model, X)
    X_adv = generate_adversarial(model, X, attack="deepfool")
    found = _violations("inflated", model, X, radii, X_adv[:, None], "deepfool")
    assert len(found) >= len(X) // 2
    assert "inflated, deepfool: point" in found[0] and "certified radius" in found[0]
    rng = np.random.default_rng(0)
    samples = [_ball_samples(x, r, rng) for x, r in zip(X, radii, strict=True)]
    assert _violations("inflated", model, X, radii, samples, "random ball samples")
