"""What certified detection guarantees on MNIST-5k, and what it costs.

On the MNIST-5k split of :func:`sk_margin.datasets.load_mnist_5k` (4,000
training digits, of which ``--n-cal`` are held out to calibrate the
detector; the 1,000 test digits to measure), for a ``LipschitzMLP``
784-256-256-10 trained with ``certified_margin`` (``--epochs`` epochs) and a
``MarginKernelLogReg`` (RKHS, 1,000 centres), with a
``MarginPValueDetector(margin="certified")``:

* its radius thresholds ``tau_`` at ``fpr=0.05`` (smallest, largest) and the
  share of clean test digits it flags (of all, of the correctly classified);
* at each radius ``eps``: the plain certified accuracy; the certified
  accuracy with detection (:func:`certified_detection_accuracy`) with the
  detector's own thresholds; and with the rejection rule
  ``reject_radius=eps / 2``, with the share of clean test digits that rule
  flags.

Run::

    python benchmarks/bench_certified_detection.py [--epochs 30]
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split

from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector
from sk_margin.datasets import load_mnist_5k
from sk_margin.metrics import certified_accuracy, certified_detection_accuracy
from sk_margin.nets import LipschitzMLP

EPS = (0.3, 1.0, 1.58, 2.0, 3.0)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--n-cal", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y = load_mnist_5k(split="train", return_X_y=True)
    X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
    X_fit, X_cal, y_fit, y_cal = train_test_split(
        X, y, test_size=args.n_cal, stratify=y, random_state=0
    )
    classifiers = {
        "LipschitzMLP + certified_margin": MarginNetClassifier(
            module=LipschitzMLP,
            module__hidden_sizes=(256, 256),
            criterion="certified_margin",
            max_epochs=args.epochs,
            lr=1e-3,
            batch_size=64,
            random_state=0,
        ),
        "MarginKernelLogReg, RKHS, 1,000 centres": MarginKernelLogReg(
            lam=1e-4, regularizer="rkhs", n_centers=1000, random_state=0
        ),
    }
    rows, summary = [], []
    for name, clf in classifiers.items():
        start = time.perf_counter()
        clf.fit(X_fit.astype(np.float32), y_fit)
        det = MarginPValueDetector(
            FrozenEstimator(clf), margin="certified", random_state=0
        ).fit(X_cal, y_cal)
        r = clf.certify(X_test)
        pred = clf.predict(X_test)
        guaranteed = det.guaranteed_radius(X_test)
        accepted = det.predict(X_test) == 1
        summary.append(
            {
                "classifier": name,
                "clean accuracy": np.mean(pred == y_test),
                "min tau_": det.tau_.min(),
                "max tau_": det.tau_.max(),
                "clean flagged": np.mean(~accepted),
                "correct ones flagged": np.mean(~accepted[pred == y_test]),
                "time (s)": time.perf_counter() - start,
            }
        )
        for eps in EPS:
            reject = MarginPValueDetector(
                FrozenEstimator(clf), margin="certified", reject_radius=eps / 2
            ).fit(X_cal, y_cal)
            kept = reject.predict(X_test) == 1
            rows.append(
                {
                    "classifier": name,
                    "eps": eps,
                    "certified": certified_accuracy(y_test, pred, r, eps),
                    "with the detector (fpr 0.05)": certified_detection_accuracy(
                        y_test, pred, guaranteed, eps, accepted=accepted
                    ),
                    "reject_radius = eps / 2": certified_detection_accuracy(
                        y_test,
                        pred,
                        reject.guaranteed_radius(X_test),
                        eps,
                        accepted=kept,
                    ),  # fmt: skip
                    "flagged by it": np.mean(~kept),
                }
            )
        print(summary[-1], flush=True)
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print()
        print(pd.DataFrame(summary).set_index("classifier").to_string(
            float_format=lambda v: f"{v:.3f}"))  # fmt: skip
        print()
        print(pd.DataFrame(rows).set_index(["classifier", "eps"]).to_string(
            float_format=lambda v: f"{v:.3f}"))  # fmt: skip


if __name__ == "__main__":
    main()
