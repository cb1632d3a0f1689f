"""
Margin losses for neural networks: accuracy, certified radii and cost
=====================================================================

:class:`~sk_margin.MarginNetClassifier` trains a skorch network with any of the
margin losses of :mod:`sk_margin.nets.losses`, chosen by name (``criterion="lmt"``)
and tuned through skorch's routing (``criterion__eps=0.1``). Here the same
small MLP is trained on scikit-learn's ``load_digits`` with plain
cross-entropy (the baseline) and with every margin loss, and each model is
compared on test accuracy, on its certified l2 radii (sound lower bounds of
the distance to the decision boundary, :meth:`~sk_margin.MarginNetClassifier.certify`)
and on the cost of a training epoch.
"""

# %%
# Data
# ----
# Pixels are scaled to [0, 1] by a scaler fitted on the training split; with
# ``clip=True`` the test points also lie in the box the attack searches.
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from sk_margin import MarginNetClassifier, box_constrained_attack

start = time.perf_counter()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
scaler = MinMaxScaler(clip=True).fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
print(f"{len(X_train)} training and {len(X_test)} test points")

# %%
# One network, ten losses
# ------------------------
# Every model is the same MLP (one hidden layer of 128 ReLU units) trained
# with Adam for 25 epochs from the same seed; only the criterion changes. The
# hyperparameters were picked by hand from two or three values each, for test
# accuracy close to the baseline's. The four losses of Kesidis, Miller & Xiang
# (those with a margin ``mu``) also run re-weighting rounds that up-weight the
# training points whose margin constraint is violated; one round (25 more
# epochs) keeps this example short.
common = dict(
    module__hidden_sizes=(128,),
    module__activation="relu",
    max_epochs=25,
    lr=1e-2,
    batch_size=128,
    max_reweight_rounds=1,
    random_state=0,
)
losses = {
    "cross_entropy": {},
    "lmt": {"eps": 0.1},
    "lc_lmt": {"eps": 0.1},
    "margin_ratio": {"mu": 1.0},
    "margin_softmax": {"mu": 1.0},
    "normalized_margin": {"mu": 0.5},
    "margin_hinge": {"mu": 3.0},
    "amr": {"lam": 0.1, "tau": 5.0, "beta": 1e-4},
    "gradient_margin": {"C": 0.03},
    "cross_lipschitz": {"lam": 1e-3},
}
nets = {}
for name, params in losses.items():
    routed = {f"criterion__{key}": value for key, value in params.items()}
    nets[name] = MarginNetClassifier(criterion=name, **routed, **common).fit(
        X_train, y_train
    )

# %%
# Accuracy, certified radii and cost
# ----------------------------------
# The certified accuracy at radius ``r`` is the fraction of test points that
# are correctly classified *and* have a certified radius of at least ``r``: no
# l2 perturbation smaller than ``r`` can change their (correct) prediction.
# ``method="auto"`` takes, per point, the largest of the network certificates
# (all sound). The epoch-time ratio is the median of skorch's per-epoch ``dur``
# divided by the baseline's (a median, because one slow epoch on a busy
# machine would dominate a mean of 15 ms epochs); on such a small problem it is
# only indicative (``benchmarks/bench_net_losses.py`` measures it on MNIST).
R1, R2 = 0.1, 0.3
radii, rows = {}, []
base_dur = np.median(nets["cross_entropy"].history[:, "dur"])
for name, net in nets.items():
    correct = net.predict(X_test) == y_test
    radius = net.certify(X_test, method="auto")
    radii[name] = np.where(correct, radius, -np.inf)  # misclassified: never counts
    hyper = ", ".join(f"{k}={v:g}" for k, v in losses[name].items())
    rows.append(
        {
            "loss": name,
            "hyperparameters": hyper or "-",
            "test acc. (%)": 100.0 * correct.mean(),
            "mean cert. radius": radius.mean(),
            f"cert. acc. r={R1:g} (%)": 100.0 * np.mean(radii[name] >= R1),
            f"cert. acc. r={R2:g} (%)": 100.0 * np.mean(radii[name] >= R2),
            "epoch time / CE": np.median(net.history[:, "dur"]) / base_dur,
        }
    )
table = pd.DataFrame(rows).set_index("loss")
with pd.option_context("display.width", 200, "display.max_columns", None):
    print(table.to_string(float_format=lambda v: f"{v:.3g}"))

# %%
# Soundness check
# ---------------
# The attack of Hein & Andriushchenko (:func:`~sk_margin.box_constrained_attack`)
# returns points across the decision boundary, so its distance bounds the
# distance to the boundary from above, and no certified radius may exceed it.
# It is checked on the first 30 correctly classified test points of each model.
N_CHECK = 30
n_checked, violations = 0, {}
for name, net in nets.items():
    correct = net.predict(X_test) == y_test
    X_ok, y_ok = X_test[correct][:N_CHECK], y_test[correct][:N_CHECK]
    X_adv, success = box_constrained_attack(net, X_ok, y_ok, p=2, bounds=(0.0, 1.0))
    distance = np.linalg.norm(X_adv[success] - X_ok[success], axis=1)
    radius = net.certify(X_ok[success], method="auto")
    n_checked += len(distance)
    violations[name] = int(np.sum(radius > distance))
print(
    f"certified radii exceeding their attack distance: {sum(violations.values())} "
    f"(of {n_checked} attacked points)"
)
for name, count in violations.items():
    if count:  # a soundness bug: name the model
        print(f"  {name}: {count}")
print(f"total time: {time.perf_counter() - start:.1f} s")

# %%
# Certified accuracy as a function of the radius
# ----------------------------------------------
# Each curve starts at the test accuracy (radius 0) and decreases as the
# required radius grows; a curve above another certifies more correct
# predictions at that radius.
grid = np.linspace(0.0, max(r.max() for r in radii.values()), 200)
fig, ax = plt.subplots(figsize=(7, 4.5))
for name, radius in radii.items():
    curve = 100.0 * np.mean(radius[:, None] >= grid[None, :], axis=0)
    style = dict(color="k", lw=2.5) if name == "cross_entropy" else dict(lw=1.3)
    ax.plot(grid, curve, label=name, **style)
ax.set_xlabel('certified l2 radius r (method="auto")')
ax.set_ylabel("certified test accuracy at r (%)")
ax.set_ylim(0, 100)
ax.legend(fontsize=8, ncol=2)
ax.set_title("Certified accuracy of each margin loss on load_digits")
fig.tight_layout()
# Saved for a headless run (python examples/...); shown where a display is.
output = Path("example_output")
output.mkdir(exist_ok=True)
fig.savefig(output / "net_margin_losses.png", dpi=100)
plt.show()

# %%
# What the table shows
# --------------------
# All ten models reach between 96.7% and 98.0% test accuracy (baseline
# 97.8%); on 540 test points one point of accuracy is about five digits, and
# each model is a single run with hand-picked hyperparameters, so small
# differences should not be read as rankings.
#
# * Certified radii. AMR, margin_ratio, cross_lipschitz, lc_lmt and lmt have
#   a larger mean certified radius than the baseline, and AMR, cross_lipschitz
#   and lc_lmt also certify the most test points at ``r = 0.3`` (70-76% against
#   63%). gradient_margin is level with the baseline on both. margin_softmax,
#   normalized_margin and margin_hinge, which ask for a margin in logit units
#   and do not constrain the network's Lipschitz constant, certify *fewer*
#   points than the baseline at ``r = 0.3``: a larger logit margin does not by
#   itself give a larger certified radius in input space.
# * At ``r = 0.1`` the models are within about three points of each other
#   (91-95%); the differences show at larger radii, as in the figure.
# * Cost. The losses computed from the logits, the Lipschitz estimate or the
#   penultimate features cost 1.0-1.6 times a cross-entropy epoch here; the
#   two double-backprop losses (gradient_margin, cross_lipschitz), which need
#   one input gradient per class, cost several times more. The Kesidis losses
#   also train twice as many epochs (one re-weighting round), which the
#   per-epoch ratio does not show. These timings are of 15 ms epochs and vary
#   from run to run.
# * Soundness. No certified radius exceeded the distance of the adversarial
#   example the attack found for the same point.
