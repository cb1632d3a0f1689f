"""How much a busy core slows the library down, with default threads and with one.

Each workload runs in a fresh process, four times: on an idle machine and
with one core kept busy by a bounded busy loop that this script starts and
stops itself, each with the environment's default threading (no thread
variables set: torch and each BLAS start one thread per core) and with one
thread (``OMP_NUM_THREADS=1``, ``OPENBLAS_NUM_THREADS=1``,
``MKL_NUM_THREADS=1``). The table gives the wall-clock seconds and the
slowdown of the busy runs against the idle ones.

Workloads: a kernel fit (``MarginKernelLogReg``, 2,000 MNIST-5k digits, 500
centres), its ``certify`` on 1,000 test digits, a network fit (784-256-10,
3 epochs on 4,000 digits), its ``certify`` on 100 digits, and ``sk-margin
demo --max-epochs 5 --n-centers 200`` (``--with-demo``).

Run::

    python benchmarks/bench_threads.py [--with-demo]
"""

import argparse
import multiprocessing
import os
import subprocess
import sys
import time

import pandas as pd

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
# Longest a busy loop may run, whatever happens to this script.
BUSY_LIMIT_SECONDS = 1800

_WORKLOADS = {
    "kernel fit": """
from sk_margin import MarginKernelLogReg
from sk_margin.datasets import load_mnist_5k
X, y = load_mnist_5k(return_X_y=True)
start = time.perf_counter()
MarginKernelLogReg(n_centers=500, random_state=0).fit(X[:2000], y[:2000])
""",
    "kernel certify": """
from sk_margin import MarginKernelLogReg
from sk_margin.datasets import load_mnist_5k
X, y = load_mnist_5k(return_X_y=True)
Xt, _ = load_mnist_5k(split="test", return_X_y=True)
clf = MarginKernelLogReg(n_centers=500, random_state=0).fit(X[:2000], y[:2000])
start = time.perf_counter()
clf.certify(Xt)
""",
    "net fit": """
import numpy as np
from sk_margin import MarginNetClassifier
from sk_margin.datasets import load_mnist_5k
X, y = load_mnist_5k(return_X_y=True)
X = X.astype(np.float32)
start = time.perf_counter()
MarginNetClassifier(module__hidden_sizes=(256,), max_epochs=3, random_state=0).fit(X, y)
""",
    "net certify": """
import numpy as np
from sk_margin import MarginNetClassifier
from sk_margin.datasets import load_mnist_5k
X, y = load_mnist_5k(return_X_y=True)
X = X.astype(np.float32)
net = MarginNetClassifier(module__hidden_sizes=(256,), max_epochs=3, random_state=0)
net.fit(X, y)
start = time.perf_counter()
net.certify(X[:100])
""",
    "demo": """
import contextlib, io
from sk_margin.__main__ import main
start = time.perf_counter()
with contextlib.redirect_stdout(io.StringIO()):
    main(["demo", "--max-epochs", "5", "--n-centers", "200"])
""",
}


def _busy(deadline):
    while time.time() < deadline:
        pass


def run(name, threads):
    code = "import time\n" + _WORKLOADS[name] + "\nprint(time.perf_counter() - start)"
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARS}
    if threads == "one":
        env.update({k: "1" for k in THREAD_VARS})
    res = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return float(res.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--with-demo", action="store_true")
    args = parser.parse_args(argv)
    names = [n for n in _WORKLOADS if n != "demo" or args.with_demo]
    print(f"{os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}")
    rows = []
    for name in names:
        row = {"workload": name}
        for threads in ("default", "one"):
            row[f"idle, {threads} (s)"] = run(name, threads)
            busy = multiprocessing.Process(
                target=_busy, args=(time.time() + BUSY_LIMIT_SECONDS,), daemon=True
            )
            busy.start()
            try:
                row[f"busy, {threads} (s)"] = run(name, threads)
            finally:
                busy.terminate()
                busy.join()
            row[f"slowdown, {threads}"] = (
                row[f"busy, {threads} (s)"] / row[f"idle, {threads} (s)"]
            )
        rows.append(row)
        print(row, flush=True)
    table = pd.DataFrame(rows)
    pd.set_option("display.width", 200)
    with pd.option_context("display.float_format", "{:.2f}".format):
        print("\n" + table.to_string(index=False))


if __name__ == "__main__":
    main()
