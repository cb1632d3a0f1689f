"""Detection of strong and adaptive attacks on MNIST-5k, against the baselines.

What is measured, in one process, on a stratified split of the training part
of :func:`sk_margin.datasets.load_mnist_5k` (``--n-train`` digits to fit the
classifier, ``--n-cal`` held-out digits to calibrate the detectors; nothing is
downloaded) and the first ``--n-test`` test digits, for four classifiers:

* ``mlp_ce``: MLP 784-256-10, cross-entropy;
* ``cnn_ce``: the default ``SmallCNN``, cross-entropy;
* ``mlp_lipschitz``: ``LipschitzMLP`` 784-256-256-10, ``certified_margin``;
* ``kernel``: ``MarginKernelLogReg`` (RKHS, 1,000 centres).

Each is attacked on its correctly classified test digits by

* ``minimal``: ART's DeepFool (ends just beyond the decision boundary);
* ``pgd 0.5`` / ``pgd 1.0`` / ``pgd 2.0``: ART's PGD-l2 with 100 steps;
* ``adaptive (margin)`` at ``--adaptive-eps``: l2-PGD that knows the
  margin detector: it minimises ``relu(kappa_t - m_t(x'))``, ``m_t`` the
  logit margin of the runner-up class ``t`` at the clean input and
  ``kappa_t`` the median margin of clean calibration digits of class ``t``:
  misclassified with a typical margin;
* ``adaptive (ours)``: the same plus ``c * relu(s_t - log P(t | x'))``, the
  input model's log-posterior of ``t`` pushed to the median ``s_t`` of
  clean calibration digits of class ``t``, for ``c`` in ``{0.3, 3, 30}``
  and two targets ``t`` (the runner-up logit, and the class other than the
  true one that the input model finds most likely); per digit, the
  misclassified candidate with the highest p-value of the detector is kept.

Adversarial examples stay in [0, 1]. Only the misclassified ones count.
The detectors, each calibrated on the held-out digits at ``fpr=0.05``
(``FrozenEstimator`` of the fitted classifier, ``X_val``):

* ``margin``: ``MarginPValueDetector`` as in the paper (logit margins);
* ``ours``: the same with ``representations="input"``;
* ``ours, layer -1`` and ``ours, input and -1``: with the classifier's last
  hidden representation instead, or both (the adaptive attack targets
  ``ours`` only);

and the baselines, scored on the same inputs: ``max-softmax`` (the largest
class probability, as its logarithm from ``predict_log_proba``, in float64,
so that confident predictions do not tie) and ``mahalanobis`` (Lee et al. 2018: class
means and a shared covariance of the penultimate activations, or the kernel
features, of the training digits; the score is the largest negative
Mahalanobis distance; no input preprocessing, one layer). Reported: the AUC
of telling successful adversarial inputs from clean correctly classified
test digits, the share of adversarial inputs flagged at each detector's
threshold (baselines: their 5% quantile on the calibration digits), and
the share of clean test digits each flags.

Targets (issue 20): AUC >= 0.95 against every non-adaptive attack on the
cross-entropy and Lipschitz MLPs, ahead of max-softmax and Mahalanobis on
each row; against the adaptive attack, >= 0.8 (aim); clean false positives
within 0.02 of ``fpr``.

Run::

    python benchmarks/bench_detector_attacks.py [--n-test 500] [--threads 1]
"""

import argparse
import copy
import os
import time

import numpy as np
import pandas as pd
import torch
from sklearn.covariance import EmpiricalCovariance
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector
from sk_margin.attacks import generate_adversarial
from sk_margin.datasets import load_mnist_5k
from sk_margin.nets import LipschitzMLP, SmallCNN

FPR = 0.05
NET = {"lr": 1e-3, "batch_size": 64, "random_state": 0}
CLASSIFIERS = {
    "mlp_ce": lambda: MarginNetClassifier(
        module__hidden_sizes=(256,), max_epochs=20, **NET
    ),
    "cnn_ce": lambda: MarginNetClassifier(
        module=SmallCNN, module__input_shape=(1, 28, 28), max_epochs=10, **NET
    ),
    "mlp_lipschitz": lambda: MarginNetClassifier(
        module=LipschitzMLP,
        module__hidden_sizes=(256, 256),
        criterion="certified_margin",
        max_epochs=20,
        **NET,
    ),
    "kernel": lambda: MarginKernelLogReg(
        lam=1e-4, regularizer="rkhs", n_centers=1000, random_state=0
    ),
}
C_VALUES = (0.3, 3.0, 30.0)


class _KernelModule(torch.nn.Module):
    """A fitted Gaussian expansion ``f(x) = K(x, C) alpha^T + b`` in torch."""

    def __init__(self, model):
        super().__init__()
        as_t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
        self.centers = as_t(model.centers_)
        self.coef = as_t(model.dual_coef_)
        self.bias = as_t(model.intercept_)
        self.gamma = float(model.gamma_)

    def forward(self, x):
        x = x.to(self.centers.dtype).reshape(len(x), -1)
        sq = (x**2).sum(1, keepdim=True) - 2 * x @ self.centers.T
        sq = sq + (self.centers**2).sum(1)
        return torch.exp(-self.gamma * sq.clamp_min(0.0)) @ self.coef.T + self.bias


class _TorchView:
    """What ART's attacks need of a classifier: a torch ``module_`` and classes."""

    def __init__(self, module, classes):
        self.module_ = module
        self.classes_ = classes

    def predict(self, X):
        with torch.no_grad():
            out = self.module_(torch.tensor(np.asarray(X, dtype=np.float64)))
        return self.classes_[out.argmax(1).numpy()]


def torch_logits(clf):
    """A float64 eval-mode torch function of the classifier's logits."""
    if isinstance(clf, MarginKernelLogReg):
        return _KernelModule(clf).eval()
    return copy.deepcopy(clf.module_).double().eval()


def input_posterior(model):
    """``log P(c | x)`` of the detector's input model, differentiable in torch.

    Built from the fitted attributes (principal components, per-class
    mixtures with their Cholesky factors of the precisions, log-priors).
    """
    t = lambda a: torch.tensor(np.asarray(a, dtype=np.float64))  # noqa: E731
    mean, comps = t(model.pca_.mean_), t(model.pca_.components_)
    classes = []
    for c, mix in enumerate(model.mixtures_):
        if mix is None:
            classes.append(None)
            continue
        classes.append(
            (
                t(np.log(mix.weights_)) + float(model.log_prior_[c]),
                t(mix.means_),
                t(mix.precisions_cholesky_),
            )
        )

    def log_posterior(x, target):
        w = (x.reshape(len(x), -1) - mean) @ comps.T
        k = w.shape[1]
        joint = []
        for entry in classes:
            if entry is None:
                joint.append(torch.full((len(w),), -torch.inf, dtype=w.dtype))
                continue
            log_w, means, chol = entry
            y = torch.einsum("nk,mkj->nmj", w, chol) - torch.einsum(
                "mk,mkj->mj", means, chol
            )
            logdet = torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(1)
            comp = -0.5 * (k * np.log(2 * np.pi) + (y**2).sum(2)) + logdet + log_w
            joint.append(torch.logsumexp(comp, dim=1))
        joint = torch.stack(joint, dim=1)
        picked = joint.gather(1, target[:, None])[:, 0]
        return picked - torch.logsumexp(joint, dim=1)

    return log_posterior


def adaptive_attack(logits, X, y_idx, eps, kappa, stat=None, s_typ=None, c=0.0,
                    steps=100, target=None):  # fmt: skip
    """l2-PGD on ``relu(kappa_t - m_t) + c relu(s_t - stat_t)`` (see module).

    ``target``: the class ``t`` of each row (default: the runner-up logit).
    """
    x0 = torch.tensor(X, dtype=torch.float64)
    if target is None:
        with torch.no_grad():
            masked = logits(x0).clone()
        masked[torch.arange(len(X)), torch.as_tensor(y_idx)] = -torch.inf
        target = masked.argmax(1)
    target = torch.as_tensor(target)
    kap = torch.tensor(kappa)[target]
    s_t = None if s_typ is None else torch.tensor(s_typ)[target]
    alpha = 2.5 * eps / steps
    delta = torch.zeros_like(x0, requires_grad=True)
    for _ in range(steps):
        x = (x0 + delta).clamp(0.0, 1.0)
        f = logits(x)
        other = f.clone()
        other[torch.arange(len(X)), target] = -torch.inf
        margin = f.gather(1, target[:, None])[:, 0] - other.max(1).values
        loss = torch.relu(kap - margin)
        if c > 0:
            loss = loss + c * torch.relu(s_t - stat(x, target))
        (grad,) = torch.autograd.grad(loss.sum(), delta)
        with torch.no_grad():
            norm = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta -= alpha * grad / norm.reshape(-1, *([1] * (grad.ndim - 1)))
            size = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta *= (eps / size).clamp(max=1.0).reshape(-1, *([1] * (grad.ndim - 1)))
            delta.copy_((x0 + delta).clamp(0.0, 1.0) - x0)
    return (x0 + delta).clamp(0.0, 1.0).detach().numpy()


def mahalanobis_score(Z_train, y_train, classes):
    """Lee et al.'s score: the largest negative Mahalanobis distance to a class mean."""
    means = np.array([Z_train[y_train == c].mean(0) for c in classes])
    centred = Z_train - means[np.searchsorted(classes, y_train)]
    precision = EmpiricalCovariance(assume_centered=True).fit(centred).precision_

    def score(Z):
        d = np.stack(
            [np.einsum("ij,jk,ik->i", Z - m, precision, Z - m) for m in means], 1
        )
        return -d.min(1)

    return score


def _auc(clean, attacked):
    labels = np.r_[np.zeros(len(clean)), np.ones(len(attacked))]
    return roc_auc_score(labels, -np.r_[clean, attacked])


def evaluate(name, clf, data, args):
    X_train, y_train, X_cal, y_cal, X_test, y_test = data
    classes = clf.classes_
    detectors = {
        label: MarginPValueDetector(
            FrozenEstimator(clf),
            representations=reps,
            n_dims=args.n_dims,
            fpr=FPR,
            random_state=0,
        ).fit(X_train, y_train, X_val=X_cal, y_val=y_cal)
        for label, reps in (
            ("margin", None),
            ("ours", "input"),
            ("ours, layer -1", -1),
            ("ours, input and -1", ["input", -1]),
        )
    }
    logits = torch_logits(clf)
    maha = mahalanobis_score(clf.representation(X_train), y_train, classes)

    def baselines(X):
        return {
            # log of the largest probability, in float64: no ties at 1.0
            "max-softmax": clf.predict_log_proba(X).max(1),
            "mahalanobis": maha(clf.representation(X)),
        }

    def all_scores(X):
        out = {k: d.score_samples(X) for k, d in detectors.items()}
        return {**out, **baselines(X)}

    clean_cal = clf.predict(X_cal) == y_cal
    thresholds = {
        k: np.quantile(v, FPR) for k, v in baselines(X_cal[clean_cal]).items()
    }
    correct = clf.predict(X_test) == y_test
    Xc, yc = X_test[correct], y_test[correct]
    yc_idx = np.searchsorted(classes, yc)
    clean = all_scores(Xc)
    flagged_clean = {k: np.mean(detectors[k].predict(Xc) == -1) for k in detectors} | {
        k: np.mean(clean[k] < thresholds[k]) for k in thresholds
    }

    # Typical clean values of the calibration digits, per class.
    cal_pred = np.searchsorted(classes, clf.predict(X_cal[clean_cal]))
    cal_margin = np.sort(clf.decision_function(X_cal[clean_cal]), axis=1)
    cal_margin = cal_margin[:, -1] - cal_margin[:, -2]
    model = detectors["ours"].representation_models_[0]
    stat = input_posterior(model)
    cal_stat = model.log_posterior(X_cal[clean_cal], cal_pred)
    kappa = np.array(
        [np.median(cal_margin[cal_pred == k]) for k in range(len(classes))]
    )
    s_typ = np.array([np.median(cal_stat[cal_pred == k]) for k in range(len(classes))])
    # The torch posterior is the detector's own statistic.
    pred20 = np.searchsorted(classes, clf.predict(Xc[:20]))
    check = stat(torch.tensor(Xc[:20], dtype=torch.float64), torch.as_tensor(pred20))
    expected = model.log_posterior(Xc[:20], pred20)
    assert np.allclose(check.detach().numpy(), expected, atol=1e-6), "torch posterior"

    view = _TorchView(logits, classes)
    attacks = {}
    start = time.perf_counter()
    attacks["minimal"] = generate_adversarial(
        view, Xc, yc, attack="deepfool", clip_values=(0.0, 1.0)
    )
    for eps in (0.5, 1.0, 2.0):
        attacks[f"pgd {eps}"] = generate_adversarial(
            view, Xc, yc, attack="pgd", eps=eps, clip_values=(0.0, 1.0)
        )
    eps = args.adaptive_eps
    attacks[f"adaptive (margin) {eps}"] = adaptive_attack(
        logits, Xc, yc_idx, eps, kappa
    )
    best, best_p = Xc.copy(), np.full(len(Xc), -np.inf)
    # Two targets per digit: the runner-up logit, and the class other than
    # the true one that the input model finds most likely.
    joint = np.column_stack(
        [model.log_posterior(Xc, np.full(len(Xc), k)) for k in range(len(classes))]
    )
    joint[np.arange(len(Xc)), yc_idx] = -np.inf
    for c, target in [(c, t) for c in C_VALUES for t in (None, joint.argmax(1))]:
        cand = adaptive_attack(
            logits, Xc, yc_idx, eps, kappa, stat, s_typ, c, target=target
        )
        p = np.where(
            clf.predict(cand) != yc, detectors["ours"].score_samples(cand), -np.inf
        )
        better = p > best_p
        best[better], best_p[better] = cand[better], p[better]
    attacks[f"adaptive (ours) {eps}"] = best
    print(f"  attacks: {time.perf_counter() - start:.0f} s", flush=True)

    rows = []
    for attack, X_adv in attacks.items():
        fooled = clf.predict(X_adv) != yc
        row = {"classifier": name, "attack": attack, "fooled": int(fooled.sum())}
        if fooled.sum() < 2:
            rows.append(row)
            continue
        adv = all_scores(X_adv[fooled])
        dist = np.linalg.norm((X_adv - Xc)[fooled], axis=1)
        row["median l2"] = float(np.median(dist))
        for k in clean:
            row[f"AUC {k}"] = _auc(clean[k], adv[k])
        for k in detectors:
            row[f"flagged {k}"] = float(
                np.mean(detectors[k].predict(X_adv[fooled]) == -1)
            )
        for k in thresholds:
            row[f"flagged {k}"] = float(np.mean(adv[k] < thresholds[k]))
        rows.append(row)
    summary = {
        "classifier": name,
        "test accuracy": correct.mean(),
        "clean digits": len(Xc),
    }
    summary |= {f"clean flagged {k}": v for k, v in flagged_clean.items()}
    return rows, summary


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-cal", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--adaptive-eps", type=float, default=2.0)
    parser.add_argument("--n-dims", type=int, default=30, help="ours: n_dims")
    parser.add_argument("--classifiers", nargs="+", choices=list(CLASSIFIERS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}: {torch.get_num_threads()} thread(s)")
    if hasattr(os, "getloadavg"):
        print("load average (1, 5, 15 min): "
              + ", ".join(f"{v:.2f}" for v in os.getloadavg()))  # fmt: skip
    X, y = load_mnist_5k(split="train", return_X_y=True)
    X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
    X_train, X_cal, y_train, y_cal = train_test_split(
        X, y, train_size=args.n_train, test_size=args.n_cal, stratify=y,
        random_state=0,
    )  # fmt: skip
    data = (
        X_train,
        y_train,
        X_cal,
        y_cal,
        X_test[: args.n_test],
        y_test[: args.n_test],
    )
    rows, summaries = [], []
    for name in args.classifiers or list(CLASSIFIERS):
        start = time.perf_counter()
        clf = CLASSIFIERS[name]().fit(X_train.astype(np.float32), y_train)
        print(f"{name}: fitted in {time.perf_counter() - start:.0f} s", flush=True)
        r, s = evaluate(name, clf, data, args)
        rows += r
        summaries.append(s)
        print(pd.DataFrame(r).to_string(float_format=lambda v: f"{v:.3f}"), flush=True)
    table = pd.DataFrame(rows).set_index(["classifier", "attack"])
    with pd.option_context("display.width", 250, "display.max_columns", None):
        print()
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
        print()
        print(pd.DataFrame(summaries).set_index("classifier")
              .to_string(float_format=lambda v: f"{v:.3f}"))  # fmt: skip
    print()
    for name in ("mlp_ce", "mlp_lipschitz"):
        if name not in table.index.get_level_values(0):
            continue
        part = table.loc[name]
        plain = part[~part.index.str.startswith("adaptive")]
        worst = plain["AUC ours"].min()
        print(f"{'met   ' if worst >= 0.95 else 'MISSED'} AUC >= 0.95 against every "
              f"non-adaptive attack on {name} ({worst:.3f})")  # fmt: skip
        best_baseline = plain[["AUC max-softmax", "AUC mahalanobis"]].max(axis=1)
        ahead = bool(np.all(plain["AUC ours"] >= best_baseline))
        print(f"{'met   ' if ahead else 'MISSED'} ahead of max-softmax and Mahalanobis "
              f"on each row on {name}")  # fmt: skip
        adaptive = part[part.index.str.startswith("adaptive (ours)")]["AUC ours"]
        if len(adaptive):
            a = float(adaptive.iloc[0])
            print(f"{'met   ' if a >= 0.8 else 'MISSED'} AUC >= 0.8 against the "
                  f"adaptive attack on {name} ({a:.3f})")  # fmt: skip
    for s in summaries:
        share = s["clean flagged ours"]
        ok = abs(share - FPR) <= 0.02
        print(f"{'met   ' if ok else 'MISSED'} clean false positives within 0.02 of "
              f"fpr on {s['classifier']} ({share:.3f})")  # fmt: skip


if __name__ == "__main__":
    main()
