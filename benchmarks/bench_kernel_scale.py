"""MarginKernelLogReg at MNIST's scale: fit time, peak memory and accuracy.

Fits ``MarginKernelLogReg(regularizer="cross_lipschitz", n_centers=m)`` on
``n`` rows of ``sk_margin.datasets.make_augmented_mnist`` (the 4,000 real
training digits of MNIST-5k and shifted, elastically deformed copies of them;
nothing is downloaded) for every ``n`` in ``--n`` and ``m`` in ``--m``, and
scores it on the 1,000 real, held-out test digits of MNIST-5k. With
``--baseline``, scikit-learn's ``Nystroem(gamma=gamma_, n_components=m) +
LogisticRegression`` is fitted beside it on the same rows, with the gamma the
model resolved, and SciPy's BLAS pool kept at one thread during its L-BFGS as
the model's fit does (without that, both are up to 3x slower on 2 cores).

Each fit runs in a fresh process, so that its peak resident memory
(``VmHWM``) is its own; the table gives it and the resident memory just
before the fit (the data), and how time and memory grow from one ``n`` (or
``m``) to the next, as the exponent ``log(t2 / t1) / log(n2 / n1)``.

Targets: ``n = 60,000, m = 5,000`` fitted in under 10 minutes on 2 cores with
a peak under 8 GB.

Run::

    python benchmarks/bench_kernel_scale.py [--n 2500 10000 30000 60000]
        [--m 1000 2500 5000] [--threads 2] [--baseline]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

TARGET_SECONDS = 600.0
TARGET_GB = 8.0


def _status_gb(field):
    """A memory figure of this process from /proc/self/status, in GB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024 / 1e9
    raise RuntimeError(f"no {field} in /proc/self/status")


def child(args):
    """Fit one model in this process and print a JSON line of its figures."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.kernel_approximation import Nystroem
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from threadpoolctl import threadpool_limits

    from sk_margin import MarginKernelLogReg
    from sk_margin._threads import limit_scipy_blas

    # Only the rows used are read into memory.
    X = np.array(
        np.load(os.path.join(args.data, "X.npy"), mmap_mode="r")[: args.child_n]
    )
    y = np.load(os.path.join(args.data, "y.npy"))[: args.child_n]
    X_test = np.load(os.path.join(args.data, "X_test.npy"))
    y_test = np.load(os.path.join(args.data, "y_test.npy"))
    before = _status_gb("VmRSS")
    with threadpool_limits(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start = time.perf_counter()
        if args.child_model == "CL":
            est = MarginKernelLogReg(
                args.lam, n_centers=args.child_m, random_state=0
            ).fit(X, y)
            n_iter = est.n_iter_
        else:
            est = make_pipeline(
                Nystroem(gamma=args.gamma, n_components=args.child_m, random_state=0),
                LogisticRegression(max_iter=1000),
            )
            # The same thread-pool care as MarginKernelLogReg's fit takes, so
            # that the comparison is of the algorithms, not of the threading.
            with limit_scipy_blas():
                est.fit(X, y)
            n_iter = int(np.max(est[-1].n_iter_))
        seconds = time.perf_counter() - start
    # VmHWM, not ru_maxrss: the latter keeps the high-water mark of the
    # parent that was forked before exec.
    peak = _status_gb("VmHWM")
    out = {
        "seconds": seconds,
        "peak_gb": peak,
        "data_gb": before,
        "accuracy": float(est.score(X_test, y_test)),
        "n_iter": int(n_iter),
        "gamma": float(getattr(est, "gamma_", args.gamma)),
    }
    print(json.dumps(out))


def run_child(args, data, model, n, m, gamma=0.0):
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--child",
        "--data",
        data,
        "--child-model",
        model,
        "--child-n",
        str(n),
        "--child-m",
        str(m),
        "--threads",
        str(args.threads),
        "--lam",
        str(args.lam),
        "--gamma",
        str(gamma),
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def growth(table, key, by):
    """Exponents of growth of ``key`` between consecutive values of ``by``."""
    other = "m" if by == "n" else "n"
    rows = []
    for value, group in table.groupby(other):
        group = group.sort_values(by)
        for (_, a), (_, b) in zip(
            group.iloc[:-1].iterrows(), group.iloc[1:].iterrows(), strict=True
        ):
            rows.append(
                {
                    other: value,
                    f"{by}: from": int(a[by]),
                    "to": int(b[by]),
                    f"{key} exponent": np.log(b[key] / a[key]) / np.log(b[by] / a[by]),
                }
            )
    return pd.DataFrame(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, nargs="+", default=[2500, 10000, 30000, 60000])
    parser.add_argument("--m", type=int, nargs="+", default=[1000, 2500, 5000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--lam", type=float, default=1e-2)
    parser.add_argument("--baseline", action="store_true")
    # Internal: one fit in a child process.
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--child-model", help=argparse.SUPPRESS)
    parser.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-m", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--gamma", type=float, default=0.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    from sk_margin.datasets import load_mnist_5k, make_augmented_mnist

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; "
        f"{args.threads} thread(s) per fit; lam={args.lam:g}"
    )
    start = time.perf_counter()
    X, y = make_augmented_mnist(max(args.n), random_state=0, return_X_y=True)
    X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
    print(f"augmented MNIST: {X.shape[0]} rows in {time.perf_counter() - start:.1f} s")
    rows = []
    with tempfile.TemporaryDirectory() as data:
        for name, arr in (("X", X), ("y", y), ("X_test", X_test), ("y_test", y_test)):
            np.save(os.path.join(data, f"{name}.npy"), arr)
        del X
        for m in sorted(args.m):
            for n in sorted(args.n):
                if m > n:
                    continue
                cl = run_child(args, data, "CL", n, m)
                row = {
                    "n": n,
                    "m": m,
                    "fit (s)": cl["seconds"],
                    "peak (GB)": cl["peak_gb"],
                    "data (GB)": cl["data_gb"],
                    "accuracy (%)": 100 * cl["accuracy"],
                    "n_iter": cl["n_iter"],
                }
                if args.baseline:
                    nys = run_child(args, data, "NYS", n, m, gamma=cl["gamma"])
                    row.update(
                        {
                            "Nystroem+LR (s)": nys["seconds"],
                            "ratio": cl["seconds"] / nys["seconds"],
                            "NYS peak (GB)": nys["peak_gb"],
                            "NYS accuracy (%)": 100 * nys["accuracy"],
                        }
                    )
                rows.append(row)
                print(json.dumps(row), flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    with pd.option_context("display.float_format", "{:.2f}".format):
        print("\n" + table.to_string(index=False))
        for key in ("fit (s)", "peak (GB)"):
            for by in ("n", "m"):
                g = growth(table, key, by)
                if len(g):
                    print(f"\ngrowth of {key} with {by}:")
                    print(g.to_string(index=False))
    big = table[(table["n"] == 60000) & (table["m"] == 5000)]
    if len(big):
        t, peak = float(big["fit (s)"].iloc[0]), float(big["peak (GB)"].iloc[0])
        print(
            f"\nn=60,000, m=5,000: {t:.0f} s (target < {TARGET_SECONDS:.0f} s), "
            f"peak {peak:.2f} GB (target < {TARGET_GB:.0f} GB)"
        )


if __name__ == "__main__":
    main()
