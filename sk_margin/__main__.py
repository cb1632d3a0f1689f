"""The ``sk-margin`` command line.

Run ``sk-margin demo`` (or ``python -m sk_margin demo``) for a short end-to-end
demo on scikit-learn's ``load_digits``: it fits :class:`MarginKernelLogReg` with
the RKHS and the Cross-Lipschitz regulariser and compares, for each, the test
error, the l2 distance to adversarial examples found by
:func:`box_constrained_attack`, and the certified l2 radius.
"""

import argparse
import time

# Regularisation strength for each regulariser compared by the demo.
RKHS_LAM = 1e-4
CROSS_LIPSCHITZ_LAM = 1e-2
DEMO_SETTINGS = (("rkhs", RKHS_LAM), ("cross_lipschitz", CROSS_LIPSCHITZ_LAM))

# Robustness is measured on the correctly classified points among the first
# N_EVAL test points.
N_EVAL = 200


def run_demo(*, n_centers=500, random_state=0):
    """Fit, attack and certify on ``load_digits``; print a table.

    Parameters
    ----------
    n_centers : int, default=500
        Number of kernel centres passed to :class:`MarginKernelLogReg`.
    random_state : int, default=0
        Seed for the train/test split and the estimators.

    Returns
    -------
    results : pandas.DataFrame
        One row per regulariser.
    """
    import numpy as np
    import pandas as pd
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    from sk_margin import MarginKernelLogReg, box_constrained_attack

    start = time.perf_counter()
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, stratify=y, random_state=random_state
    )
    # Fit on train only; clip so test points also lie in the attack's box.
    scaler = MinMaxScaler(clip=True).fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    X_eval, y_eval = X_test[:N_EVAL], y_test[:N_EVAL]
    print(
        f"load_digits: {len(X_train)} train / {len(X_test)} test points; "
        f"robustness on the correctly classified of the first {len(X_eval)}."
    )

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

        test_error = 100.0 * (1.0 - clf.score(X_test, y_test))
        correct = clf.predict(X_eval) == y_eval
        X_ok, y_ok = X_eval[correct], y_eval[correct]

        X_adv, success = box_constrained_attack(clf, X_ok, y_ok, p=2, bounds=(0.0, 1.0))
        X_adv = np.asarray(X_adv, dtype=float)
        found = np.asarray(success, dtype=bool) & np.isfinite(X_adv).all(axis=1)
        distances = np.linalg.norm(X_adv[found] - X_ok[found], axis=1)
        radii = np.asarray(clf.certify(X_ok), dtype=float)

        rows.append(
            {
                "regularizer": regularizer,
                "lam": lam,
                "test error (%)": test_error,
                "points": int(correct.sum()),
                "attack success (%)": 100.0 * found.mean() if found.size else np.nan,
                "mean adv. l2 dist.": distances.mean() if distances.size else np.nan,
                "mean cert. l2 radius": radii.mean() if radii.size else np.nan,
                "fit time (s)": fit_time,
            }
        )

    results = pd.DataFrame(rows).set_index("regularizer")
    with pd.option_context("display.width", 120, "display.max_columns", None):
        print(results.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"Total elapsed: {time.perf_counter() - start:.1f} s")
    return results


def build_parser():
    """Return the :class:`argparse.ArgumentParser` of ``sk-margin``."""
    parser = argparse.ArgumentParser(
        prog="sk-margin",
        description="Margin-based adversarial robustness for scikit-learn.",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    demo = subparsers.add_parser(
        "demo",
        help="fit, attack and certify MarginKernelLogReg on load_digits",
        description=(
            "Fit MarginKernelLogReg with the RKHS and the Cross-Lipschitz "
            "regulariser on load_digits and print test error, mean l2 "
            "adversarial distance, mean certified l2 radius and fit time."
        ),
    )
    demo.add_argument(
        "--n-centers",
        type=int,
        default=500,
        help="number of kernel centres (default: %(default)s)",
    )
    demo.add_argument(
        "--random-state",
        type=int,
        default=0,
        help="seed for the split and the estimators (default: %(default)s)",
    )
    return parser


def main(argv=None):
    """Run the ``sk-margin`` command line; return the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        run_demo(n_centers=args.n_centers, random_state=args.random_state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
