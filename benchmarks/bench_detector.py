"""Time of MarginPValueDetector's fit and scoring against its classifier's own.

What is measured, in one process on the MNIST-5k split of
:func:`sk_margin.datasets.load_mnist_5k` (4,000 train / 1,000 test; nothing
is downloaded), for two classifiers, a ``MarginNetClassifier`` (784-256-10,
cross-entropy, ``--epochs`` epochs) and a ``MarginKernelLogReg`` (1,000
centres):

* ``fit``: the classifier's own fit, and the detector's fit around a fresh
  copy of it (the classifier's fit, its margins on the training data, one
  Gaussian mixture per class with BIC order selection, the threshold); their
  difference is what the detector adds;
* scoring the 1,000 test digits: the classifier's ``predict`` against the
  detector's ``score_samples`` (p-values) and ``predict``, with the ratio;
* ``margin="certified"`` as well, where the margin is the certified radius
  (its cost is that of ``certify``);
* ``representations="input"``: the logit margin and a class-conditional
  model of the input (principal components, one mixture per class, fitted
  per fold).

Each time is the best of ``--repeat`` runs of ``time.perf_counter``. Torch
and BLAS run on ``--threads`` thread(s).

Run::

    python benchmarks/bench_detector.py [--epochs 10] [--repeat 3]
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector
from sk_margin.datasets import load_mnist_5k


def _best(func, repeat):
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = func()
        best = min(best, time.perf_counter() - start)
    return out, best


def measure(name, classifier, data, margin, repeat, representations=None):
    X, X_test, y = data
    fitted, t_fit = _best(lambda: clone(classifier).fit(X, y), 1)
    detector = MarginPValueDetector(
        clone(classifier), margin=margin, representations=representations
    )
    detector, t_detector = _best(lambda: clone(detector).fit(X, y), 1)
    _, t_predict = _best(lambda: fitted.predict(X_test), repeat)
    _, t_score = _best(lambda: detector.score_samples(X_test), repeat)
    _, t_flag = _best(lambda: detector.predict(X_test), repeat)
    n = len(X_test)
    return {
        "classifier": name,
        "margin": margin
        if representations is None
        else f"{margin} + {representations}",
        "classifier fit (s)": t_fit,
        "detector fit (s)": t_detector,
        "added by the detector (s)": t_detector - t_fit,
        "predict (ms/1000 rows)": 1e3 * t_predict * 1000 / n,
        "score_samples (ms/1000 rows)": 1e3 * t_score * 1000 / n,
        "score_samples / predict": t_score / t_predict,
        "detector predict / predict": t_flag / t_predict,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y = load_mnist_5k(split="train", return_X_y=True)
    X_test, _ = load_mnist_5k(split="test", return_X_y=True)
    X, X_test = X.astype(np.float32), X_test.astype(np.float32)
    classifiers = {
        "MarginNetClassifier 784-256-10": MarginNetClassifier(
            module__hidden_sizes=(256,),
            max_epochs=args.epochs,
            batch_size=64,
            random_state=0,
        ),
        "MarginKernelLogReg, 1000 centres": MarginKernelLogReg(
            lam=1e-4, regularizer="rkhs", n_centers=1000, random_state=0
        ),
    }
    rows = []
    with threadpool_limits(limits=args.threads):
        print(f"torch {torch.__version__}, {args.threads} thread(s)")
        for name, classifier in classifiers.items():
            for margin, reps in (
                ("logit", None),
                ("certified", None),
                ("logit", "input"),
            ):
                rows.append(
                    measure(name, classifier, (X, X_test, y), margin, args.repeat,
                            representations=reps)
                )  # fmt: skip
                print(rows[-1])
    table = pd.DataFrame(rows).set_index(["classifier", "margin"])
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print()
        print(table.to_string(float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
