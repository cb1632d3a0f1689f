"""Fit time of a Kesidis margin loss with re-weighting, against cross-entropy.

On the stratified MNIST-5k split (4,000 train / 1,000 test; nothing is
downloaded), an MLP 784-256-10 (Adam 1e-3, batch 128, one thread) fitted
with cross-entropy for ``--epochs`` epochs, with ``margin_hinge`` (``mu=5``)
and the default re-weighting (3 rounds sharing the ``max_epochs`` budget,
``reweight_epochs="auto"``), and with the schedule before issue 21 (every
round a full ``--epochs`` run: ``max_epochs = 4 * epochs``,
``reweight_epochs = epochs``). Printed: fit time, its ratio to
cross-entropy's, epochs trained and test accuracy.

Target (issue 21): a margin network's fit close to one ``max_epochs`` of
training, not up to four.

Run::

    python benchmarks/bench_reweighting.py [--epochs 10]
"""

import argparse
import time

import pandas as pd
import torch
from bench_net_losses import load_split

from sk_margin import MarginNetClassifier


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X_train, X_test, y_train, y_test = load_split("mnist", 4000, 1000, 0)
    e = args.epochs
    kesidis = {"criterion": "margin_hinge", "criterion__mu": 5.0}
    runs = {
        "cross-entropy": {"max_epochs": e},
        "margin_hinge, rounds share max_epochs": {"max_epochs": e, **kesidis},
        "margin_hinge, a full run per round (before)": {
            "max_epochs": 4 * e,
            "reweight_epochs": e,
            **kesidis,
        },  # fmt: skip
    }
    # torch's first fit in a process pays its warm-up: not part of any row.
    MarginNetClassifier(max_epochs=1, random_state=0).fit(X_train[:256], y_train[:256])
    rows = []
    for name, params in runs.items():
        net = MarginNetClassifier(module__hidden_sizes=(256,), random_state=0, **params)
        start = time.perf_counter()
        net.fit(X_train, y_train)
        rows.append(
            {
                "run": name,
                "fit (s)": time.perf_counter() - start,
                "epochs": len(net.history),
                "test accuracy": net.score(X_test, y_test),
            }
        )
    table = pd.DataFrame(rows).set_index("run")
    table["x cross-entropy"] = table["fit (s)"] / table["fit (s)"].iloc[0]
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
