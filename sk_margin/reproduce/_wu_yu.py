"""Wu & Yu: the trade-off between minimum and average margin, and AMR.

Two experiments of K. Wu and Y. Yu, "Understanding adversarial robustness:
the trade-off between minimum and average margin" (2019), on a one-hidden-layer
ReLU network (their MNIST-MLP, 784-1024-10):

(a) Section 5.2, Fig. 2 (CIFAR-10) and Fig. 6 (its MNIST counterpart, Appendix
    C): the minimum margin ``min_i m(x_i, y_i)`` and the average margin
    ``(1/n) sum_i |m(x_i, y_i)|`` (Section 2, eq. 6) after every epoch of
    standard training. The paper finds that the minimum margin keeps
    increasing while the average margin keeps decreasing. We record both with
    :class:`~sk_margin.nets.MarginStatistics`, whose per-sample margin is the
    input-space estimate ``min_{j != y} (f_y - f_j)(x) / L_yj`` with the
    global cross-Lipschitz bound ``L_yj`` of Hein & Andriushchenko (a sound
    lower bound of the distance to the boundary for a correctly classified
    ``x``), where the paper uses Theorem 3 (eq. 16) with a sampled local
    Lipschitz estimate.
(b) Section 5.3, Table 1 (MNIST, MLP rows): standard training, the
    orthogonality penalty ``beta sum_l ||W_l W_l^T - I||_F^2`` alone (their
    "Lipschitz constant regularisation", LCR) and the average-margin
    regulariser with that penalty (AMR, eq. 15; ``criterion="amr"``): clean
    accuracy, accuracy under l2 PGD at eps = 0.5, 1.0, 1.5, 2.0, and the
    average margin, here bracketed by a sound lower bound (certified radii,
    :func:`~sk_margin.average_margin` of ``certify(method="global_pairwise")``)
    and an upper bound (DeepFool distances). The average margin of the three
    models along the epochs (their Fig. 3) is in the plot.

The paper's Table 1 (MNIST-MLP, full MNIST, 200 epochs): clean accuracy
98.24 / 95.99 / 96.01 %, robust accuracy at eps = 0.5 89.26 / 91.12 / 91.18,
at 1.0 49.23 / 80.62 / 81.01, at 1.5 15.78 / 60.56 / 62.93, at 2.0 5.06 /
34.07 / 38.44 %, average margin 0.80 / 1.36 / 1.41, for standard training /
LCR / AMR.
"""

import math

import numpy as np

from sk_margin.reproduce._base import (
    Claim,
    Reproduction,
    mnist_subset,
    settings_table,
)

_EPS = (0.5, 1.0, 1.5, 2.0)
# (label, criterion, criterion parameters, paper: clean accuracy %, robust
# accuracy % at each of _EPS, average margin). lam, tau and beta are the
# paper's (Appendix F: lambda = 0.1, beta = 1e-3, tau = 5 for MNIST-MLP; the
# same beta for LCR).
_MODELS = (
    ("standard", "cross_entropy", {}, 98.24, (89.26, 49.23, 15.78, 5.06), 0.80),
    (
        "orthogonality penalty (LCR)",
        "amr",
        {"lam": 0.0, "tau": 5.0, "beta": 1e-3},
        95.99,
        (91.12, 80.62, 60.56, 34.07),
        1.36,
    ),
    (
        "AMR",
        "amr",
        {"lam": 0.1, "tau": 5.0, "beta": 1e-3},
        96.01,
        (91.18, 81.01, 62.93, 38.44),
        1.41,
    ),
)
# n_train, n_test, hidden width, epochs, digits attacked (test) and watched
# per epoch (train and test), PGD parameters (None: the library's defaults,
# 100 iterations of step 2.5 eps / 100).
_SIZES = {
    "smoke": (300, 100, 64, 2, 50, {"max_iter": 10}),
    "default": (4000, 1000, 256, 100, 500, None),
    "full": (4000, 1000, 1024, 200, 1000, {"max_iter": 1000, "eps_step": 0.01}),
}
_BOX = (0.0, 1.0)
_PAPER_STEPS = math.ceil(60_000 / 128)  # SGD steps in one of the paper's epochs


def run(size="default", random_state=0):
    """Run the reproduction (see the module docstring)."""
    import pandas as pd
    import torch

    from sk_margin import average_margin, robust_accuracy
    from sk_margin.attacks import generate_adversarial
    from sk_margin.nets import MLP, MarginNetClassifier, MarginStatistics

    n_train, n_test, width, epochs, n_eval, pgd = _SIZES[size]
    X_train, X_test, y_train, y_test = mnist_subset(n_train, n_test, random_state)
    X_eval, y_eval = X_test[:n_eval], y_test[:n_eval]
    every = max(1, epochs // 100)
    # The epoch by which we have taken as many SGD steps as the paper's first
    # (60,000 digits in batches of 128): where its curves begin.
    start = math.ceil(_PAPER_STEPS / math.ceil(n_train / 128))
    rows, histories = [], {}
    for label, criterion, params, clean, robust, margin in _MODELS:
        stats = MarginStatistics(
            X_eval, y_eval, every=every, subsample=n_eval, random_state=random_state
        )
        net = MarginNetClassifier(
            MLP,
            module__hidden_sizes=(width,),
            criterion=criterion,
            optimizer=torch.optim.SGD,
            lr=0.01,
            optimizer__momentum=0.9,
            optimizer__nesterov=True,
            batch_size=128,
            max_epochs=epochs,
            callbacks=[("margins", stats)],
            random_state=random_state,
            **{f"criterion__{k}": v for k, v in params.items()},
        ).fit(X_train, y_train)
        histories[label] = [
            {k: row[k] for k in row if k.endswith("margin") or k == "epoch"}
            for row in net.history
        ]
        y_pred = net.predict(X_eval)
        scores = robust_accuracy(
            net, X_eval, y_eval, attack="pgd", eps=list(_EPS), norm=2,
            clip_values=_BOX, **(pgd or {}),
        )  # fmt: skip
        radii = net.certify(X_eval, method="global_pairwise")
        X_adv = generate_adversarial(
            net, X_eval, attack="deepfool", clip_values=_BOX,
            **({"max_iter": 10} if size == "smoke" else {}),
        )  # fmt: skip
        fooled = net.predict(X_adv) != y_pred
        distances = np.linalg.norm(X_adv - X_eval, axis=1)
        row = {
            "model": label,
            "clean (%)": 100.0 * np.mean(y_pred == y_eval),
            "clean (%) (paper)": clean,
        }
        for eps, ours, theirs in zip(_EPS, scores, robust, strict=True):
            row[f"PGD eps={eps} (%)"] = 100.0 * ours
            row[f"PGD eps={eps} (%) (paper)"] = theirs
        row["avg margin"] = average_margin(y_eval, y_pred, radii)
        row["avg margin (paper)"] = margin
        row["avg margin, DeepFool"] = (
            average_margin(y_eval[fooled], y_pred[fooled], distances[fooled])
            if fooled.any()
            else float("nan")
        )
        row["avg margin, DeepFool (paper)"] = float("nan")
        row["DeepFool failures"] = int(np.sum(~fooled))
        rows.append(row)
    table = pd.DataFrame(rows).set_index("model")
    pgd_text = (
        "l2, 100 iterations of step 2.5 eps / 100 (ART)"
        if pgd is None
        else f"l2, {pgd['max_iter']} iterations"
        + (f" of step {pgd['eps_step']}" if "eps_step" in pgd else "")
    )
    return Reproduction(
        name="wu-yu-amr",
        title=(
            "Wu & Yu: minimum vs average margin during standard training (Fig. "
            "2 / 6), and standard vs orthogonality penalty vs AMR (Table 1, "
            "MNIST-MLP)"
        ),
        table=table,
        settings=settings_table(
            {
                "data": (
                    "MNIST, 60,000 train / 10,000 test",
                    f"MNIST-5k, {n_train:,} train / {n_test:,} test",
                ),
                "network": (
                    "784-1024-10, ReLU, no biases",
                    f"784-{width}-10, ReLU, with biases (sk_margin.nets.MLP)",
                ),
                "optimiser": (
                    "SGD lr 0.01, momentum 0.9, Nesterov, batch 128",
                    "the same",
                ),
                "epochs": ("200", f"{epochs}"),
                "AMR (eq. 15)": (
                    "lambda 0.1, tau 5, beta 1e-3",
                    "the same (criterion='amr')",
                ),
                "orthogonality penalty alone (LCR)": (
                    "beta 1e-3",
                    "criterion='amr' with lam=0, beta 1e-3",
                ),
                "PGD": ("l2, 1000 iterations of step 0.01", pgd_text),
                "input box": ("not stated", "[0, 1] (PGD and DeepFool)"),
                "evaluated on": (
                    "test set",
                    f"the first {n_eval:,} test digits",
                ),
                "average margin (table)": (
                    "Theorem 3 (eq. 16): min_k (f_c - f_k) / L_k, capped at r = 5, "
                    "L_k the largest sampled gradient-difference norm in the ball "
                    "B(x, 5) (1024 x 50 samples)",
                    "lower bound: certified radii certify(method='global_pairwise'), "
                    "L_ck = ||w_c - w_k|| Lip(hidden layer); upper bound: DeepFool "
                    "distances; c the predicted class",
                ),
                "margins per epoch (figure)": (
                    "Theorem 3 at epochs 1, 10, 20, ..., 200, on 500 train / 500 "
                    "test digits",
                    "MarginStatistics(kind='lipschitz'): min_j (f_y - f_j) / L_yj, "
                    f"global L_yj as above, y the label, every {every} epoch(s), "
                    f"on {min(n_eval, n_train)} train / {n_eval} test digits; "
                    f"trends from epoch {start}, when we have taken the "
                    f"{_PAPER_STEPS} SGD steps of the paper's first epoch",
                ),
            }
        ),
        claims=_claims(table, histories["standard"], start),
        figure=_figure(histories, start),
        notes=[
            "Margins (Wu & Yu, eq. 6) are input-space l2 distances to the "
            "decision boundary, not computable exactly for a network. Both of "
            "our estimates use the global cross-Lipschitz bound L_ck = "
            "||w_c - w_k|| * ||W_1||_2 (Hein & Andriushchenko, Section 5), a "
            "sound lower bound of the distance for a correctly classified "
            "digit: the table's (certify) measures from the predicted class "
            "c, as eq. 6 does, the per-epoch one (MarginStatistics) from the "
            "label y, so for a misclassified digit its |m| lower-bounds the "
            "distance to making y the top class. The paper's estimate uses a "
            "sampled estimate of the local Lipschitz constant, so it bounds the "
            "distance in neither direction: compare the ordering of the "
            "models, not the values.",
            "The 'DeepFool' average margin is the mean distance of the DeepFool "
            "points that changed the prediction, an upper bound of each "
            "distance; 'DeepFool failures' counts the digits left out.",
            "Robust accuracy counts a misclassified clean digit as broken; PGD "
            "gives an upper bound of the accuracy under the worst perturbation.",
            "Our network has biases; the AMR margin term uses the normalised "
            "rows of the last layer only, as eq. 14 (the paper's network has "
            "none). The orthogonality penalty covers both layers.",
            f"With {n_train:,} training digits and far fewer SGD steps than "
            "the paper's 60,000 x 200 epochs, the clean accuracies are lower; "
            "compare directions, not levels.",
            "The paper's Fig. 2 shows CIFAR-10 models; its MNIST-MLP curves are "
            "in Fig. 6 (Appendix C).",
        ],
    )


def _trajectory(history, key):
    rows = [(r["epoch"], r[key]) for r in history if key in r]
    return np.array(rows, dtype=float).reshape(-1, 2)


def _claims(table, history, start):
    std, lcr, amr = (
        table.loc[m] for m in ("standard", "orthogonality penalty (LCR)", "AMR")
    )
    cols = [f"PGD eps={eps} (%)" for eps in _EPS]
    claims = []
    for subset, name in (("train", "training"), ("valid", "test")):
        for key, text, sign in (
            ("min", "raises the minimum margin", 1.0),
            ("avg", "lowers the average margin", -1.0),
        ):
            curve = _trajectory(history, f"{subset}_{key}_margin")
            later = np.flatnonzero(curve[:, 0] >= start)
            k = later[0] if later.size and later[0] < len(curve) - 1 else 0
            (e0, v0), (e1, v1) = curve[k], curve[-1]
            claims.append(
                Claim(
                    f"standard training {text} ({name} digits, from epoch {int(e0)})",
                    bool(sign * (v1 - v0) > 0),
                    f"epoch {int(e0)}: {v0:.3f}, epoch {int(e1)}: {v1:.3f}; "
                    f"epoch {int(curve[0, 0])}: {curve[0, 1]:.3f}",
                )
            )
    claims += [
        Claim(
            "AMR raises the average margin over standard training and LCR",
            bool(amr["avg margin"] > max(std["avg margin"], lcr["avg margin"])),
            "lower bound "
            + " / ".join(f"{m['avg margin']:.3f}" for m in (std, lcr, amr))
            + ", DeepFool "
            + " / ".join(f"{m['avg margin, DeepFool']:.3f}" for m in (std, lcr, amr)),
        ),  # fmt: skip
        Claim(
            "AMR is more robust than standard training at every eps",
            bool(all(amr[c] > std[c] for c in cols)),
            " ; ".join(f"{std[c]:.1f} vs {amr[c]:.1f}" for c in cols),
        ),
        Claim(
            "AMR is more robust than LCR at the large eps (1.5, 2.0)",
            bool(all(amr[c] > lcr[c] for c in cols[2:])),
            " ; ".join(f"{lcr[c]:.1f} vs {amr[c]:.1f}" for c in cols[2:]),
        ),
        Claim(
            "LCR alone is more robust than standard training at eps = 0.5",
            bool(lcr[cols[0]] > std[cols[0]]),
            f"{std[cols[0]]:.1f} vs {lcr[cols[0]]:.1f}",
        ),
        Claim(
            "LCR and AMR cost clean accuracy",
            bool(max(lcr["clean (%)"], amr["clean (%)"]) < std["clean (%)"]),
            " / ".join(f"{m['clean (%)']:.1f}" for m in (std, lcr, amr)) + " %",
        ),
    ]
    return claims


def _figure(histories, start):
    import matplotlib.pyplot as plt

    from sk_margin import MarginTrajectoryDisplay

    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(11, 4))
    standard = histories["standard"]
    MarginTrajectoryDisplay.from_history(standard, subset="train", ax=ax_a)
    mins = _trajectory(standard, "valid_min_margin")
    avgs = _trajectory(standard, "valid_avg_margin")
    MarginTrajectoryDisplay(
        epochs=mins[:, 0], min_margin=mins[:, 1], avg_margin=avgs[:, 1], subset="test"
    ).plot(ax_a)
    ax_a.axhline(0.0, color="grey", lw=0.6)
    for ax in (ax_a, ax_b):
        ax.axvline(start, color="grey", lw=0.6, ls=":")
    ax_a.set_title("(a) standard training (Fig. 2 / 6)")
    for label, history in histories.items():
        curve = _trajectory(history, "valid_avg_margin")
        ax_b.plot(curve[:, 0], curve[:, 1], label=label)
    ax_b.set(xlabel="Epoch", ylabel="Average margin (test)")
    ax_b.set_title("(b) average margin by training (Fig. 3)")
    ax_b.legend()
    fig.suptitle(
        "Margins per epoch: min_j (f_y - f_j) / L_yj, global cross-Lipschitz L"
    )
    fig.tight_layout()
    return fig
