"""Reference outputs of the public API on fixed seeds, recorded before a refactor.

``compute()`` runs the estimators, certificates, losses, Lipschitz bounds,
attacks, metrics and the detector on small seeded inputs and returns every
number they produce, keyed by name. ``tests/test_reference_outputs.py``
compares them with ``tests/data/reference_outputs.npz``, which was written by
this module *before* the package layout changed, so that the moves and merges
are shown to leave radii, predictions, losses and bounds unchanged.

What is compared with a recording must not depend on the machine that made
it. Seeded initialisations and fits do: torch draws a float32 layer's
uniform initialisation with other rounding under other CPU kernels (one
float32 ulp), and a fit's last bits follow the BLAS and its threads. So the
models that the float64 formulas (certificates, bounds, losses, attacks,
p-values) are computed from are *recorded states*,
``tests/data/reference_states.npz``: the untrained networks' weights and the
kernel models' coefficients, as the recording machine had them. The fits
themselves (the kernel models and the trained networks) are still rerun and
compared with what they gave there, to a tolerance that their rounding
explains (see the test).

Regenerate the files only when a change is *meant* to change these numbers,
and say which ones and why in the commit message; both are written together::

    python -m tests.reference_outputs
"""

import pathlib

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from torch import nn

PATH = pathlib.Path(__file__).parent / "data" / "reference_outputs.npz"
STATES_PATH = PATH.with_name("reference_states.npz")
# The losses there were when the outputs were recorded (later ones are new).
LOSSES = (
    "amr",
    "cross_entropy",
    "cross_lipschitz",
    "gradient_margin",
    "lc_lmt",
    "lmt",
    "margin_hinge",
    "margin_ratio",
    "margin_softmax",
    "normalized_margin",
)


def _digits():
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=0
    )
    return X_train[:300], X_test[:40], y_train[:300], y_test[:40]


def load_states():
    """The recorded model states, as a dict of numpy arrays."""
    with np.load(STATES_PATH) as data:
        return {k: data[k] for k in data.files}


def _with_state(module, prefix, states, used):
    """``module`` with the weights recorded under ``prefix`` (when recorded),
    and its weights noted in ``used``."""
    if states is not None:
        recorded = {
            k[len(prefix) :]: torch.from_numpy(v)
            for k, v in states.items()
            if k.startswith(prefix)
        }
        module.load_state_dict(recorded, strict=True)
    for k, v in module.state_dict().items():
        used[prefix + k] = v.detach().numpy().copy()
    return module


def _seeded(make, seed=0):
    torch.manual_seed(seed)
    return make().double().eval()


def _modules(states=None, used=None):
    """The untrained networks: seeded, or with their recorded weights."""
    used = {} if used is None else used
    modules = _seeded_modules()
    return {
        name: _with_state(module, f"module_{name}.", states, used)
        for name, module in modules.items()
    }


def _seeded_modules():
    from sk_margin.nets import MLP, SmallCNN

    return {
        "mlp1_relu": _seeded(lambda: MLP(64, 10, hidden_sizes=(32,))),
        "mlp1_softplus": _seeded(
            lambda: MLP(64, 10, hidden_sizes=(32,), activation="softplus", beta=5.0)
        ),
        "mlp2_tanh": _seeded(
            lambda: MLP(64, 10, hidden_sizes=(32, 16), activation="tanh")
        ),
        "cnn": _seeded(lambda: SmallCNN((1, 8, 8), 10, channels=(4,), hidden_size=16)),
        "bn_maxpool": _seeded(
            lambda: nn.Sequential(
                nn.Unflatten(1, (1, 8, 8)),
                nn.Conv2d(1, 3, 3, stride=2, padding=1),
                nn.BatchNorm2d(3),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Flatten(),
                nn.Linear(12, 10),
            )
        ),
    }


def _kernel(out, X, Xt, y, states, used):
    from sk_margin import MarginKernelLogReg

    for reg in ("cross_lipschitz", "rkhs"):
        clf = MarginKernelLogReg(
            lam=1e-2 if reg == "cross_lipschitz" else 1e-4,
            regularizer=reg,
            n_centers=120,
            random_state=0,
        ).fit(X, y)
        # The fit, compared with the recording's to what L-BFGS's stopping
        # rule allows.
        out[f"kernel_{reg}_dual_coef"] = clf.dual_coef_
        out[f"kernel_{reg}_decision"] = clf.decision_function(Xt)
        out[f"kernel_{reg}_predict"] = clf.predict(Xt)
        # Everything else from the recorded model (the same centres: rows of
        # X drawn by numpy's seeded generator).
        prefix = f"kernel_{reg}_"
        for name in ("dual_coef_", "intercept_", "gamma_"):
            if states is not None:
                setattr(clf, name, states[prefix + name].copy())
            used[prefix + name] = np.array(getattr(clf, name))
        clf.gamma_ = float(clf.gamma_)
        # Keys keep the former method names, under which they were recorded.
        for key, method in (
            ("auto", "auto"),
            ("prop21", "local_quadratic"),
            ("triangle", "local_triangle"),
            ("second_order", "second_order"),
        ):
            out[f"kernel_{reg}_certify_{key}"] = clf.certify(Xt[:20], method=method)
    return clf


def _nets(out, X, Xt, states, used):
    from sk_margin.nets import certify_network

    Xt = np.asarray(Xt, dtype=np.float64)
    for name, module in _modules(states, used).items():
        with torch.no_grad():
            out[f"net_{name}_logits"] = module(torch.from_numpy(Xt)).numpy()
        methods = {
            "auto": "auto",
            "pairwise": "global_pairwise",
            "tsuzuku": "global_l2",
            "kesidis": "global_linf",
        }
        if name.startswith("mlp1"):
            methods["local"] = "local_quadratic"
        for key, method in methods.items():
            out[f"net_{name}_certify_{key}"] = certify_network(
                module, Xt, (64,), method
            )


def _bounds(out, states):
    from sk_margin.nets import (
        PowerIterationLipschitz,
        layer_lipschitz_bounds,
        network_lipschitz_bounds,
    )

    for name, module in _modules(states).items():
        l2, linf, pair = network_lipschitz_bounds(module, (64,))
        out[f"bound_{name}_l2"] = np.array(l2)
        out[f"bound_{name}_linf"] = np.array(linf)
        out[f"bound_{name}_pairwise"] = pair
        out[f"bound_{name}_layers"] = np.array(
            [b for _, _, b in layer_lipschitz_bounds(module, (64,))]
        )
        torch.manual_seed(1)
        estimator = PowerIterationLipschitz()
        X = torch.rand(4, 64, dtype=torch.float64)
        values = [float(estimator(module, X).detach()) for _ in range(15)]
        out[f"power_{name}"] = np.array(values)


def _losses(out, states, used):
    from sk_margin.nets.losses import LOSSES as REGISTRY

    for name in LOSSES:
        cls = REGISTRY[name]
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 4)).double()
        deep = nn.Sequential(
            nn.Linear(6, 8), nn.Softplus(), nn.Linear(8, 5), nn.Tanh(), nn.Linear(5, 4)
        ).double()
        # The same seeded weights for every loss: recorded once.
        net = _with_state(net, "loss_net_shallow.", states, used)
        deep = _with_state(deep, "loss_net_deep.", states, used)
        # float64 draws, the same under every CPU kernel.
        X = torch.randn(10, 6, dtype=torch.float64)
        y = torch.randint(0, 4, (10,))
        w = torch.rand(10, dtype=torch.float64)
        for tag, module in (("shallow", net), ("deep", deep)):
            loss = cls()
            for weighted in (False, True):
                for _ in range(3):  # power iteration moves on from call to call
                    module.zero_grad()
                    Xi = X.clone().requires_grad_(loss.needs_input_grad)
                    features = module[:-1](Xi)
                    logits = module[-1](features)
                    value = loss(
                        logits,
                        y,
                        X=Xi,
                        module=module,
                        features=features if loss.needs_features else None,
                        sample_weight=w if weighted else None,
                    )
                    value.backward()
                key = f"loss_{name}_{tag}_{'weighted' if weighted else 'plain'}"
                out[key] = np.array(float(value.detach()))
                out[key + "_grad"] = module[0].weight.grad.numpy().copy()


def _trained_nets(out, X, Xt, y):
    from sk_margin.nets import MarginNetClassifier, MarginStatistics
    from sk_margin.nets.losses import LOSSES as REGISTRY

    for name in LOSSES:
        # Kesidis losses: a first round of 2 epochs and one re-weighting round
        # of 2 (max_epochs is their whole budget), as these outputs recorded.
        rounds = 2 if hasattr(REGISTRY[name](), "mu") else 1
        net = MarginNetClassifier(
            criterion=name,
            module__hidden_sizes=(16,),
            max_epochs=2 * rounds,
            reweight_epochs=2,
            max_reweight_rounds=1,
            random_state=0,
            callbacks=[("margins", MarginStatistics())],
        ).fit(X[:150], y[:150])
        out[f"trained_{name}_train_loss"] = np.array(net.history[:, "train_loss"])
        out[f"trained_{name}_avg_margin"] = np.array(net.history[:, "train_avg_margin"])
        out[f"trained_{name}_decision"] = net.decision_function(Xt)
        out[f"trained_{name}_certify"] = net.certify(Xt[:20])
    return net


def _attacks_and_metrics(out, clf, net, X, Xt, y, yt):
    from sk_margin import (
        MarginHistogramDisplay,
        MarginPValueDetector,
        box_constrained_attack,
        certified_radii,
        robust_accuracy,
    )
    from sk_margin.attacks import generate_adversarial

    for p in (1, 2, np.inf):
        X_adv, success = box_constrained_attack(clf, Xt[:15], p=p)
        out[f"box_attack_p{p}"] = X_adv
        out[f"box_attack_p{p}_success"] = success
    raw = Xt * 16.0
    pipe = make_pipeline(MinMaxScaler(), FrozenEstimator(clf)).fit(X * 16.0, y)
    out["pipeline_box"] = generate_adversarial(pipe, raw[:10], attack="box")
    out["pipeline_radii"] = certified_radii(pipe, raw[:10])
    out["art_deepfool_kernel"] = generate_adversarial(
        clf, Xt[:10], attack="deepfool", clip_values=(0.0, 1.0)
    )
    out["robust_accuracy_pgd_net"] = robust_accuracy(
        net, Xt, yt, attack="pgd", eps=[0.3, 1.0], max_iter=10
    )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    disp = MarginHistogramDisplay.from_estimator(
        pipe, X * 16.0, y, X_held_out=raw, y_held_out=yt, bins=10
    )
    out["histogram_counts"] = np.stack(list(disp.counts.values()))
    plt.close("all")
    det = MarginPValueDetector(FrozenEstimator(clf), random_state=0).fit(X, y)
    out["detector_scores"] = det.score_samples(Xt)
    det = MarginPValueDetector(
        FrozenEstimator(clf), margin="certified", random_state=0
    ).fit(X[:100], y[:100])
    out["detector_certified_scores"] = det.score_samples(Xt[:10])


def compute(states=None):
    """Every reference output, and the model states it was computed from.

    Parameters
    ----------
    states : dict of ndarray or None, default=None
        Recorded states (:func:`load_states`) to compute from; None: the
        seeded initialisations and fits of this machine (to record).

    Returns
    -------
    outputs, states : dict of ndarray
    """
    X, Xt, y, yt = _digits()
    out, used = {}, {}
    clf = _kernel(out, X, Xt, y, states, used)
    _nets(out, X, Xt, states, used)
    _bounds(out, states)
    _losses(out, states, used)
    net = _trained_nets(out, X, Xt, y)
    _attacks_and_metrics(out, clf, net, X, Xt, y, yt)
    return {k: np.asarray(v) for k, v in out.items()}, used


if __name__ == "__main__":
    PATH.parent.mkdir(exist_ok=True)
    outputs, states = compute()
    np.savez_compressed(PATH, **outputs)
    np.savez_compressed(STATES_PATH, **states)
    print(f"wrote {PATH} and {STATES_PATH}")
