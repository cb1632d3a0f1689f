"""Does MarginPValueDetector keep its false-positive promise on unseen data?

For each data set (``load_digits`` scaled to [0, 1]; the MNIST-5k split of
:func:`sk_margin.datasets.load_mnist_5k`) and classifier (a cross-entropy MLP
with one hidden layer of 256 units, the same MLP trained with ``lc_lmt``, and
an RKHS ``MarginKernelLogReg``), the detector is calibrated four ways:

* **in-sample**: a ``FrozenEstimator`` of the classifier fitted on the
  training data, the mixtures and threshold fitted on the same training data
  (the behaviour before held-out calibration);
* **cv=5** (the default): out-of-fold margins of the training data;
* **X_val**: the mixtures and threshold on a held-out fifth of the training
  data, the classifier on the other four fifths;
* **unlabelled**: a ``FrozenEstimator`` of the classifier fitted on those
  four fifths, calibrated with ``fit(X)`` on the held-out fifth without its
  labels (misclassified samples count too, under their predicted class).

The table gives, on the correctly classified *test* digits (never seen by
the classifier or the detector), the share of p-values below 0.01, 0.05 and
0.1 (nominal: those levels) and the share flagged at ``fpr=0.05``.

Run::

    python benchmarks/bench_detector_calibration.py [--epochs 10] [--quick]
"""

import argparse
import time
import warnings

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from threadpoolctl import threadpool_limits

from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector

LEVELS = (0.01, 0.05, 0.1)


def datasets(quick):
    X, y = load_digits(return_X_y=True)
    splits = {
        "digits": train_test_split(
            (X / 16.0).astype(np.float32), y, test_size=0.3, stratify=y, random_state=0
        )
    }
    if not quick:
        from sk_margin.datasets import load_mnist_5k

        X_train, y_train = load_mnist_5k(split="train", return_X_y=True)
        X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
        splits["MNIST-5k"] = (
            X_train.astype(np.float32),
            X_test.astype(np.float32),
            y_train,
            y_test,
        )
    return splits


def classifiers(epochs, n_train):
    net = {"module__hidden_sizes": (256,), "max_epochs": epochs, "batch_size": 64}
    return {
        "MLP, cross-entropy": MarginNetClassifier(random_state=0, **net),
        "MLP, lc_lmt eps=0.3": MarginNetClassifier(
            criterion="lc_lmt", criterion__eps=0.3, random_state=0, **net
        ),
        "kernel, RKHS": MarginKernelLogReg(
            lam=1e-4,
            regularizer="rkhs",
            n_centers=min(1000, n_train // 2),
            random_state=0,
        ),
    }


def calibrations(clf, X, y):
    """The four detectors of the module docstring, fitted."""
    X_fit, X_val, y_fit, y_val = train_test_split(
        X, y, test_size=0.2, stratify=y, random_state=0
    )
    frozen = FrozenEstimator(clone(clf).fit(X, y))
    return {
        "in-sample": MarginPValueDetector(frozen, random_state=0).fit(X, y),
        "cv=5": MarginPValueDetector(clone(clf), random_state=0).fit(X, y),
        "X_val": MarginPValueDetector(clone(clf), random_state=0).fit(
            X_fit, y_fit, X_val=X_val, y_val=y_val
        ),
        "unlabelled": MarginPValueDetector(
            FrozenEstimator(clone(clf).fit(X_fit, y_fit)), random_state=0
        ).fit(X_val),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="digits only")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)
    rows = []
    with threadpool_limits(args.threads):
        for data, (X, X_test, y, y_test) in datasets(args.quick).items():
            for name, clf in classifiers(args.epochs, len(X)).items():
                start = time.perf_counter()
                for how, det in calibrations(clf, X, y).items():
                    clean = det.estimator_.predict(X_test) == y_test
                    p = det.score_samples(X_test[clean])
                    row = {"data": data, "classifier": name, "calibration": how}
                    for level in LEVELS:
                        row[f"p < {level:g}"] = np.mean(p < level)
                    row["flagged at fpr=0.05"] = np.mean(
                        det.predict(X_test[clean]) == -1
                    )
                    rows.append(row)
                print(
                    f"{data}, {name}: {time.perf_counter() - start:.1f} s", flush=True
                )
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    print()
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    held_out = table[table["calibration"] != "in-sample"]
    worst = (held_out["p < 0.05"] - 0.05).abs().max()
    print(f"\nheld-out calibration: share of p < 0.05 within {worst:.3f} of 0.05")


if __name__ == "__main__":
    main()
