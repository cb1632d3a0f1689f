"""
Robustness of kernel classifiers: Cross-Lipschitz vs RKHS regularisation
========================================================================

A laptop-scale version of the kernel table of Hein & Andriushchenko (2017,
Section 5) on scikit-learn's ``load_digits``. Gaussian-kernel logistic
regression (:class:`~sk_margin.MarginKernelLogReg`) is fitted without
regularisation, with the usual RKHS-norm penalty (Kernel-LogReg) and with the
Cross-Lipschitz penalty (Kernel-CL). For each model we report the test error,
the mean l2 distance to adversarial examples found by the attack of Section 4
(:func:`~sk_margin.box_constrained_attack`, an *upper* bound on the distance
to the decision boundary) and the mean certified l2 radius (a *lower* bound).
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
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import MinMaxScaler

from sk_margin import MarginKernelLogReg, box_constrained_attack

start = time.perf_counter()
X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
scaler = MinMaxScaler(clip=True).fit(X_train)
X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
print(f"{len(X_train)} training and {len(X_test)} test points")

# %%
# Choosing the regularisation strength
# ------------------------------------
# As in the paper, ``lam`` is chosen for test accuracy only, on the training
# split (3-fold cross-validation), from the paper's grids scaled to this
# problem. The kernel width rule ``gamma = gamma_scale / rho_knn40^2`` of the
# paper is kept with ``gamma_scale=1``; 500 random centres keep fits short.
common = dict(gamma_scale=1.0, n_centers=500, random_state=0)
searches = {
    "Kernel-LogReg (RKHS)": ("rkhs", [1e-5, 1e-4, 1e-3]),
    "Kernel-CL (Cross-Lipschitz)": ("cross_lipschitz", [1e-3, 1e-2, 1e-1, 1.0]),
}
models = {"No Reg. (lam=0)": MarginKernelLogReg(0.0, regularizer="none", **common)}
for name, (regularizer, lams) in searches.items():
    search = GridSearchCV(
        MarginKernelLogReg(regularizer=regularizer, **common), {"lam": lams}, cv=3
    ).fit(X_train, y_train)
    print(f"{name}: chosen lam = {search.best_params_['lam']:g}")
    models[name] = search.best_estimator_  # refitted on the whole training split
models["No Reg. (lam=0)"].fit(X_train, y_train)

# %%
# Attack and certify
# ------------------
# Robustness is measured on the correctly classified points among the first
# 200 test points. The attack returns a point across the decision boundary, so
# its distance bounds the distance to the boundary from above; a certified
# radius bounds it from below, so no radius may exceed its attack distance.
# ``method="auto"`` takes, per point, the best of several sound certificates;
# ``method="local_quadratic"`` is the paper's own guarantee (Theorem 2.1 with
# Proposition 2.1), much slower, so it is evaluated on the first 20 points only.
N_EVAL, N_LOCAL = 200, 20

rows, per_point = [], {}
n_violations = 0
for name, clf in models.items():
    X_eval, y_eval = X_test[:N_EVAL], y_test[:N_EVAL]
    correct = clf.predict(X_eval) == y_eval
    X_ok, y_ok = X_eval[correct], y_eval[correct]

    X_adv, success = box_constrained_attack(clf, X_ok, y_ok, p=2, bounds=(0.0, 1.0))
    X_ok, X_adv = X_ok[success], X_adv[success]
    distance = np.linalg.norm(X_adv - X_ok, axis=1)
    radius = clf.certify(X_ok, method="auto")
    radius_local = clf.certify(X_ok[:N_LOCAL], method="local_quadratic")
    n_violations += np.sum(radius > distance)
    n_violations += np.sum(radius_local > distance[:N_LOCAL])
    per_point[name] = (distance, radius)

    rows.append(
        {
            "model": name,
            "lam": clf.lam,
            "test error (%)": 100.0 * (1.0 - clf.score(X_test, y_test)),
            "points": len(distance),
            "adv. l2 dist.": distance.mean(),
            "cert. radius (auto)": radius.mean(),
            f"cert. radius (local_quadratic, {N_LOCAL} pts)": radius_local.mean(),
            "cert. / adv. (auto)": np.mean(radius / distance),
        }
    )

table = pd.DataFrame(rows).set_index("model")
with pd.option_context("display.width", 200, "display.max_columns", None):
    print(table.to_string(float_format=lambda v: f"{v:.4g}"))

# Soundness check: a certified radius above the distance of an adversarial
# example found by the attack would be a bug. This count must be 0.
print(f"certified radii exceeding their attack distance: {n_violations}")
print(f"total time: {time.perf_counter() - start:.1f} s")

# %%
# Certified radius vs adversarial distance
# ----------------------------------------
# Each dot is one test point. Certificates are lower bounds and attacks upper
# bounds on the distance to the decision boundary, so every dot lies below the
# dashed line ``y = x``; the closer to it, the tighter the pair of bounds.
names = ["Kernel-LogReg (RKHS)", "Kernel-CL (Cross-Lipschitz)"]
top = max(per_point[name][0].max() for name in names)
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
for ax, name in zip(axes, names, strict=True):
    distance, radius = per_point[name]
    ax.scatter(distance, radius, s=10, alpha=0.6)
    ax.plot([0, top], [0, top], "k--", lw=1, label="y = x")
    ax.set_title(name)
    ax.set_xlabel("adversarial l2 distance (attack)")
    ax.legend(loc="upper left")
axes[0].set_ylabel('certified l2 radius (method="auto")')
fig.suptitle("Certified radius against attack distance, per test digit")
fig.tight_layout()
# Saved for a headless run (python examples/...); shown where a display is.
output = Path("example_output")
output.mkdir(exist_ok=True)
fig.savefig(output / "kernel_robustness.png", dpi=100)
plt.show()

# %%
# What the table shows
# --------------------
# The table has the shape of the paper's. Cross-Lipschitz regularisation keeps
# the test error within a point of the RKHS baseline while pushing adversarial
# examples further away: its mean adversarial distance is the largest, the
# paper's main finding for kernel methods. The unregularised model (restricted
# to 500 centres, which is itself a regulariser on this small problem) can be as
# accurate, but its adversarial examples are the closest. As in the paper, the
# larger adversarial distances do not carry over to the certified radii, which
# are smaller for Kernel-CL than for Kernel-LogReg: certificates are loose lower
# bounds, not estimates of the distance. They are sound (no dot above the line,
# no violation counted above), and the ``"auto"`` certificate reaches about
# half the attack distance, three to seven times the paper's Proposition 2.1
# bound alone: its second-order and global RKHS bounds see the large,
# cancelling coefficients that the Cross-Lipschitz model has.
