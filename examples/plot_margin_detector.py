"""
Flagging attacked inputs by their margin p-value
================================================

An evasion attack moves an input just across the decision boundary, so the
attacked input is classified with an unusually small margin. Kesidis, Miller &
Xiang (Section V) turn this into a test: fit, per class, a Gaussian mixture to
the log-margins of the correctly classified training samples, and give every
test input the probability that a clean sample of its predicted class has a
smaller margin, its *margin p-value*. :class:`~sk_margin.MarginPValueDetector`
implements it with scikit-learn's outlier-detector API.

Here a margin-trained network is fitted on ``load_digits``, the detector is
fitted on the clean training data, test digits are attacked with DeepFool and
PGD-l2 (from the Adversarial Robustness Toolbox), and the detector's ROC AUC
and false-positive rate at its threshold are printed. Three plots are saved:
the margin histograms, the margin trajectory during training and the
certified accuracy as a function of the radius.
"""

# %%
# Data and network
# ----------------
# Pixels are scaled to [0, 1]. The network is the default MLP (128 ReLU
# units) trained with the LC-LMT loss; :class:`~sk_margin.MarginStatistics`
# records the minimum and average margin of Wu & Yu after every epoch.
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import MinMaxScaler

from sk_margin import (
    CertifiedAccuracyDisplay,
    MarginHistogramDisplay,
    MarginNetClassifier,
    MarginPValueDetector,
    MarginStatistics,
    MarginTrajectoryDisplay,
)
from sk_margin.attacks import generate_adversarial

start = time.perf_counter()
output = Path("example_output")
output.mkdir(exist_ok=True)

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
# A calibration split, held out from training, for the detector's threshold.
X_train, X_cal, y_train, y_cal = train_test_split(
    X_train, y_train, test_size=0.3, stratify=y_train, random_state=0
)
scaler = MinMaxScaler(clip=True).fit(X_train)
X_train, X_cal, X_test = (scaler.transform(Z) for Z in (X_train, X_cal, X_test))
print(f"{len(X_train)} training, {len(X_cal)} calibration, {len(X_test)} test digits")

eps = 0.1
common = dict(module__hidden_sizes=(128,), max_epochs=30, lr=1e-2, random_state=0)
net = MarginNetClassifier(
    criterion="lc_lmt",
    criterion__eps=eps,
    callbacks=[MarginStatistics(X_test, y_test, eps=eps)],
    **common,
).fit(X_train, y_train)
print(f"test accuracy: {net.score(X_test, y_test):.3f}")

# %%
# The detector
# ------------
# The network is already fitted, so it is handed over frozen (scikit-learn's
# :class:`~sklearn.frozen.FrozenEstimator`): the detector fits only the
# margin mixtures, on the correctly classified calibration digits, and sets
# ``offset_`` so that at most ``fpr`` = 5% of them are flagged. A network's
# training margins are larger than its margins on new data, so calibrated on
# the training digits (as in the paper) it flags more than 5% of clean test
# digits; calibrated on held-out digits (``X_val``, ``y_val``) it keeps the
# promise. (Given an unfitted classifier, the detector holds margins out by
# itself: out-of-fold, ``cv=5``.)
detectors = {
    "calibrated on training data": MarginPValueDetector(
        FrozenEstimator(net), fpr=0.05, random_state=0
    ).fit(X_train, y_train),
    "calibrated on held-out data": MarginPValueDetector(
        FrozenEstimator(net), fpr=0.05, random_state=0
    ).fit(X_train, y_train, X_val=X_cal, y_val=y_cal),
}
detector = detectors["calibrated on held-out data"]
print("mixture components per class:", detector.n_components_)

# %%
# Attacks
# -------
# Only correctly classified test digits are attacked, and only attacks that
# changed the prediction count as attacked samples. DeepFool looks for the
# nearest point across the boundary; PGD searches an l2 ball for a
# misclassified point: with a budget well above DeepFool's distances it goes
# deep into the other class.
correct = net.predict(X_test) == y_test
X_clean, y_clean = X_test[correct], y_test[correct]
attacked = {}
for name, params in {
    "DeepFool": dict(attack="deepfool"),
    "PGD-l2, eps=0.75": dict(attack="pgd", eps=0.75, max_iter=40),
    "PGD-l2, eps=1.5": dict(attack="pgd", eps=1.5, max_iter=40),
}.items():
    X_adv = generate_adversarial(net, X_clean, y_clean, clip_values=(0, 1), **params)
    fooled = net.predict(X_adv) != y_clean
    attacked[name] = X_adv[fooled]
    dist = np.linalg.norm(X_adv[fooled] - X_clean[fooled], axis=1)
    print(
        f"{name}: {fooled.mean():.1%} of {len(X_clean)} digits fooled, "
        f"median l2 distance {np.median(dist):.3f}"
    )

# %%
# Detection
# ---------
# The clean test digits are the negatives, the successful attacks the
# positives; a low p-value means "attacked", so the ROC curve is computed on
# ``-score_samples``. The false-positive rate at the threshold is the share
# of the correctly classified clean test digits that ``predict`` flags (-1);
# misclassified clean digits have small margins too and are often flagged.
# The detection rate is the share of attacked digits flagged.
for label, det in detectors.items():
    flagged = det.predict(X_test) == -1
    print(
        f"\n{label}: false-positive rate {flagged[correct].mean():.3f} "
        f"({flagged.mean():.3f} counting misclassified clean digits)"
    )
    clean_scores = det.score_samples(X_test)
    for name, X_adv in attacked.items():
        scores = np.concatenate([clean_scores, det.score_samples(X_adv)])
        is_attacked = np.r_[np.zeros(len(X_test)), np.ones(len(X_adv))]
        auc = roc_auc_score(is_attacked, -scores)
        tpr = np.mean(det.predict(X_adv) == -1)
        print(f"  {name:17s} ROC AUC {auc:.3f}, detection rate {tpr:.3f}")

# %%
# Attacks that stop at the boundary (DeepFool, or PGD with a budget close to
# the distance to the boundary) leave tiny margins and are flagged. A large
# PGD budget carries the digit well into the other class, where its margin is
# as large as a clean digit's: the lower-tail p-value cannot see it (an AUC
# below 0.5 means such attacks look *more* typical than clean digits).
# ``tail="two_sided"`` also flags unusually large margins, at the cost of
# flagging confidently classified clean digits.

# %%
# Plots
# -----
# Margin histograms as in Kesidis et al.'s Fig. 1: training, held-out and
# DeepFool-attacked digits (the attacked ones are scored by their predicted
# class, so their margins are positive and small). The vertical line is the
# logit margin LC-LMT asks of every training digit, ``sqrt(2) L eps`` (Ono et
# al., eq. 3), with ``L`` the network's certified Lipschitz bound.
required = np.sqrt(2) * net.lipschitz_constant() * eps
print(f"\nrequired logit margin sqrt(2) L eps = {required:.2f}")
fig, ax = plt.subplots(figsize=(6, 4))
MarginHistogramDisplay.from_estimator(
    net,
    X_train,
    y_train,
    X_held_out=X_test,
    y_held_out=y_test,
    X_attacked=attacked["DeepFool"],
    required_margin=required,
    density=True,
    ax=ax,
)
ax.set_title("LC-LMT logit margins: training, held-out and attacked digits")
fig.tight_layout()
fig.savefig(output / "margin_histogram.png", dpi=100)

# %%
# Wu & Yu's minimum and average margin per epoch, on the training data and on
# the held-out digits given to :class:`~sk_margin.MarginStatistics`.
fig, ax = plt.subplots(figsize=(6, 4))
MarginTrajectoryDisplay.from_estimator(net, subset="train", ax=ax)
MarginTrajectoryDisplay.from_estimator(net, subset="valid", ax=ax)
ax.set_title("Minimum and average margin per epoch (Wu & Yu)")
fig.tight_layout()
fig.savefig(output / "margin_trajectory.png", dpi=100)

# %%
# Certified accuracy: the share of test digits classified correctly with a
# certified radius of at least ``eps``, for the LC-LMT network and for the
# same network trained with plain cross-entropy.
baseline = MarginNetClassifier(criterion="cross_entropy", **common)
baseline.fit(X_train, y_train)
fig, ax = plt.subplots(figsize=(6, 4))
eps_grid = np.linspace(0, 1.0, 101)
CertifiedAccuracyDisplay.from_estimator(
    net, X_test, y_test, eps=eps_grid, name=f"lc_lmt (eps={eps})", ax=ax
)
CertifiedAccuracyDisplay.from_estimator(
    baseline, X_test, y_test, eps=eps_grid, name="cross_entropy", ax=ax
)
ax.set_title("Certified accuracy on the test digits (l2)")
fig.tight_layout()
fig.savefig(output / "certified_accuracy.png", dpi=100)
print(f"\nplots saved in {output.resolve()}")
print(f"total time: {time.perf_counter() - start:.1f} s")
