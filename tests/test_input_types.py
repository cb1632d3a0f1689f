"""The input types scikit-learn users pass, for the three public estimators.

One row per (estimator, input type): X dtypes and memory layouts, pandas
DataFrames and their feature names, read-only and memory-mapped arrays, lists
of lists, the label types that must round-trip through ``classes_``, and the
errors of ``check_array`` for complex and 1-D inputs.

Every row runs with UserWarning and RuntimeWarning as errors: an input that
scikit-learn accepts silently must not make these estimators warn either.
"""

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import make_blobs
from sklearn.preprocessing import StandardScaler
from sklearn.utils._testing import create_memmap_backed_data

from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector

pytestmark = [
    pytest.mark.filterwarnings("error::UserWarning"),
    pytest.mark.filterwarnings("error::RuntimeWarning"),
]


def _kernel():
    return MarginKernelLogReg(n_centers=30, random_state=0)


def _net():
    return MarginNetClassifier(max_epochs=3, lr=1e-2, random_state=0)


def _detector():
    return MarginPValueDetector(cv=2, random_state=0)


def _net64():
    return MarginNetClassifier(max_epochs=3, lr=1e-2, random_state=0, dtype=np.float64)


FACTORIES = {"kernel": _kernel, "net": _net, "net64": _net64, "detector": _detector}
ESTIMATORS = ["kernel", "net", "detector"]
CLASSIFIERS = ["kernel", "net"]


def _rows(names, kinds, xfails=None):
    """``pytest.param(name, kind)`` for every pair, strict xfails as listed."""
    xfails = xfails or {}
    for name in names:
        for kind in kinds:
            marks = []
            if (name, kind) in xfails:
                marks.append(
                    pytest.mark.xfail(
                        strict=True, raises=UserWarning, reason=xfails[name, kind]
                    )
                )
            yield pytest.param(name, kind, marks=marks, id=f"{name}-{kind}")


@pytest.fixture(scope="module", autouse=True)
def _torch_warns_always():
    """Make torch repeat its once-per-process warnings (the non-writable array
    one among them), so that each row sees them whatever ran before it."""
    import torch

    before = torch.is_warn_always_enabled()
    torch.set_warn_always(True)
    yield
    torch.set_warn_always(before)


def _blobs(centers):
    X, y = make_blobs(n_samples=90, centers=centers, n_features=4, random_state=0)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def blobs3():
    return _blobs(3)


@pytest.fixture(scope="module")
def blobs2():
    return _blobs(2)


def _scores(name, est, X):
    if name == "detector":
        return est.score_samples(X)
    return est.decision_function(X)


def _check_outputs(name, est, X, n):
    """Predictions of the right shape and values; returns them."""
    pred = est.predict(X)
    assert pred.shape == (n,)
    if name == "detector":
        assert set(np.unique(pred).tolist()) <= {-1, 1}
        pvalues = est.score_samples(X)
        assert pvalues.shape == (n,)
        assert np.all((pvalues >= 0) & (pvalues <= 1))
    else:
        assert set(np.unique(pred).tolist()) <= set(est.classes_.tolist())
        assert est.predict_proba(X).shape == (n, len(est.classes_))
    return pred


# ------------------------------------------------------ X dtypes and layout
def _as_float32(X):
    return X.astype(np.float32)


def _float64(X):
    return _as_float32(X).astype(np.float64)


X_KINDS = {
    # float32-representable values throughout, so that every kind holds the
    # same numbers as its float64 C-ordered reference below.
    "float64-C-order": _float64,
    "float32": _as_float32,
    "int64": lambda X: np.round(X * 10).astype(np.int64),
    "float64-F-order": lambda X: np.asfortranarray(_float64(X)),
    "float64-strided": lambda X: np.repeat(_float64(X), 2, axis=1)[:, ::2],
}
LAYOUT = {
    "float64-F-order": "F_CONTIGUOUS",
    "float64-strided": None,  # neither C nor F contiguous
}

# How far a model fitted on a kind may be from the one fitted on its float64
# reference (0: bit for bit).
FIT_ATOL = {
    # LogisticRegression keeps float32 data in float32: the p-values agree to
    # float32 precision.
    ("detector", "float32"): 1e-5,
    # rbf_kernel of a non-C-ordered X differs from the C-ordered one in the
    # last bit (BLAS order of the distance sums); L-BFGS, stopped at tol=1e-4
    # on large cancelling Cross-Lipschitz coefficients, amplifies that to
    # 1e-4 in the scores (7e-6 at tol=1e-8). The same model scores every
    # layout alike (checked to 1e-10).
    ("kernel", "float64-F-order"): 1e-3,
    ("kernel", "float64-strided"): 1e-3,
}


@pytest.mark.parametrize(("name", "kind"), _rows(ESTIMATORS, X_KINDS))
def test_x_dtype_and_layout(name, kind, blobs3):
    X, y = blobs3
    Xk = X_KINDS[kind](X)
    layout = LAYOUT.get(kind, "C_CONTIGUOUS")
    for flag in ("C_CONTIGUOUS", "F_CONTIGUOUS"):
        assert Xk.flags[flag] == (flag == layout)
    before = Xk.copy()
    est = FACTORIES[name]().fit(Xk, y)
    pred = _check_outputs(name, est, Xk, len(y))
    assert_array_equal(Xk, before)  # neither fit nor predict wrote to X
    if name != "detector":
        assert np.mean(pred == y) > 0.8

    # The same values in float64, C-ordered: the same predictions from this
    # model, and the same model from a fit. The net trains in float32 and
    # the kernel model in float64, so each sees equal inputs (bit for bit
    # for the classifiers: float32 vs float64 predictions must agree).
    X64 = np.ascontiguousarray(Xk, dtype=np.float64)
    assert_array_equal(est.predict(X64), pred)
    # (LogisticRegression scores float32 data in float32.)
    atol = 1e-5 if name == "detector" else 1e-10
    assert_allclose(_scores(name, est, X64), _scores(name, est, Xk), atol=atol)
    ref = FACTORIES[name]().fit(X64, y)
    assert_allclose(
        _scores(name, est, Xk),
        _scores(name, ref, X64),
        rtol=0,
        atol=FIT_ATOL.get((name, kind), 0.0),
    )
    if name != "detector":
        assert_array_equal(pred, ref.predict(X64))


# ------------------------------------------------------------------ pandas
COLUMNS = ["alpha", "beta", "gamma", "delta"]


@pytest.mark.parametrize(
    ("name", "dtype"),
    _rows(
        ESTIMATORS,
        ["float64", "float32"],
    ),
)
def test_dataframe_x_and_series_y(name, dtype, blobs3):
    X, y = blobs3
    df = pd.DataFrame(X.astype(dtype), columns=COLUMNS)
    est = FACTORIES[name]().fit(df, pd.Series(y, name="target"))
    assert_array_equal(est.feature_names_in_, np.array(COLUMNS, dtype=object))
    assert est.n_features_in_ == len(COLUMNS)
    pred = _check_outputs(name, est, df, len(y))
    if name == "detector":
        # The classifier gets the frame as given, names included.
        assert_array_equal(est.estimator_.feature_names_in_, COLUMNS)
    else:
        assert np.mean(pred == y) > 0.8

    # A bare array of the same values: the same outputs, with scikit-learn's
    # warning that it has no feature names.
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        pred_np = est.predict(df.to_numpy())
    assert_array_equal(pred_np, pred)
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        scores_np = _scores(name, est, df.to_numpy())
    assert_array_equal(scores_np, _scores(name, est, df))

    # Columns reordered or renamed: validate_data refuses them.
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(df[COLUMNS[::-1]])
    with pytest.raises(ValueError, match="feature names should match"):
        est.predict(df.rename(columns={"beta": "b"}))


@pytest.mark.parametrize("name", ESTIMATORS)
def test_dataframe_after_fit_on_array_warns(name, blobs3):
    X, y = blobs3
    est = FACTORIES[name]().fit(X, y)
    assert not hasattr(est, "feature_names_in_")
    df = pd.DataFrame(X, columns=COLUMNS)
    with pytest.warns(UserWarning, match="fitted without feature names"):
        pred = est.predict(df)
    assert_array_equal(pred, est.predict(X))


# ---------------------------------------------------- read-only, memmapped
def _npy_memmap(X, tmp_path):
    path = tmp_path / "X.npy"
    np.save(path, X.astype(np.float32))
    return np.load(path, mmap_mode="r")


def _read_only(X, dtype):
    X = X.astype(dtype)
    X.setflags(write=False)
    return X


READ_ONLY_KINDS = {
    "memmap-float64": lambda X, tmp_path: create_memmap_backed_data(X),
    "npy-mmap-float32": _npy_memmap,
    "read-only-float64": lambda X, tmp_path: _read_only(X, np.float64),
    "read-only-float32": lambda X, tmp_path: _read_only(X, np.float32),
}


@pytest.mark.parametrize(
    ("name", "kind"),
    _rows(
        [*ESTIMATORS, "net64"],
        READ_ONLY_KINDS,
    ),
)
def test_read_only_x_fit_predict(name, kind, blobs3, tmp_path):
    X, y = blobs3
    Xr = READ_ONLY_KINDS[kind](X, tmp_path)
    assert not Xr.flags.writeable
    expected = np.array(Xr)
    est = FACTORIES[name]().fit(Xr, y)
    pred = _check_outputs(name, est, Xr, len(y))
    assert_array_equal(_scores(name, est, Xr), _scores(name, est, expected))
    assert_array_equal(Xr, expected)
    assert_array_equal(pred, FACTORIES[name]().fit(expected, y).predict(expected))


@pytest.mark.parametrize(
    ("name", "kind"),
    _rows(
        [*CLASSIFIERS, "net64"],
        READ_ONLY_KINDS,
    ),
)
def test_read_only_x_certify(name, kind, blobs3, tmp_path):
    X, y = blobs3
    Xr = READ_ONLY_KINDS[kind](X, tmp_path)
    est = FACTORIES[name]().fit(np.array(Xr), y)
    radii = est.certify(Xr)
    assert_array_equal(radii, est.certify(np.array(Xr)))
    assert radii.shape == (len(y),)
    assert np.all(np.isfinite(radii) & (radii >= 0))


# ------------------------------------------------------------ lists of lists
@pytest.mark.parametrize("name", ESTIMATORS)
def test_list_of_lists(name, blobs3):
    X, y = blobs3
    X_list, y_list = X.tolist(), y.tolist()
    assert isinstance(X_list[0], list) and isinstance(X_list[0][0], float)
    est = FACTORIES[name]().fit(X_list, y_list)
    pred = _check_outputs(name, est, X_list, len(y))
    ref = FACTORIES[name]().fit(X, y)
    assert_array_equal(pred, ref.predict(X))
    assert_allclose(_scores(name, est, X_list), _scores(name, ref, X), rtol=1e-12)


# ------------------------------------------------------------------- labels
# Mappings whose sorted order differs from the blob index, so that a model
# that kept the labels in order of appearance, or unsorted, would be caught.
NAMES = np.array(["dog", "cat", "emu"])
LABELS = {
    "str": lambda y: NAMES[y],
    "object-str": lambda y: NAMES.astype(object)[y],
    "plus-minus-one": lambda y: np.array([1, -1])[y],
    "str-2-classes": lambda y: np.array(["yes", "no"])[y],
    "ints-3-7-11": lambda y: np.array([11, 3, 7])[y],
    "categorical": lambda y: pd.Categorical(NAMES[y]),
    "series-str": lambda y: pd.Series(NAMES[y], name="animal"),
}
BINARY = {"plus-minus-one", "str-2-classes"}


def _labelled(kind, blobs2, blobs3):
    X, y = blobs2 if kind in BINARY else blobs3
    return X, y, LABELS[kind](y)


@pytest.mark.parametrize(("name", "kind"), _rows(CLASSIFIERS, LABELS))
def test_labels_round_trip(name, kind, blobs2, blobs3):
    X, y_idx, y = _labelled(kind, blobs2, blobs3)
    y_arr = np.asarray(y)
    est = FACTORIES[name]().fit(X, y)
    assert_array_equal(est.classes_, np.unique(y_arr))
    assert est.classes_.dtype.kind == y_arr.dtype.kind

    pred = _check_outputs(name, est, X, len(y_arr))
    assert pred.dtype.kind == y_arr.dtype.kind
    assert np.mean(pred == y_arr) > 0.8  # the label mapping is not scrambled

    proba = est.predict_proba(X)
    assert_array_equal(est.classes_[np.argmax(proba, axis=1)], pred)
    scores = est.decision_function(X)
    if len(est.classes_) == 2:
        assert scores.shape == (len(y_arr),)
        assert_array_equal(scores > 0, pred == est.classes_[1])
    else:
        assert_array_equal(est.classes_[np.argmax(scores, axis=1)], pred)

    radii = est.certify(X)
    assert radii.shape == (len(y_arr),)
    assert np.all(np.isfinite(radii) & (radii >= 0))
    assert np.any(radii > 0)


@pytest.mark.parametrize("kind", list(LABELS))
def test_detector_labels(kind, blobs2, blobs3):
    X, y_idx, y = _labelled(kind, blobs2, blobs3)
    det = _detector().fit(X, y)
    assert_array_equal(det.estimator_.classes_, np.unique(np.asarray(y)))
    _check_outputs("detector", det, X, len(y_idx))
    # The labels only group the samples: integer codes give the same detector.
    ref = _detector().fit(X, y_idx)
    assert_allclose(det.score_samples(X), ref.score_samples(X), atol=1e-9)
    assert_array_equal(det.predict(X), ref.predict(X))


# ------------------------------------------------------------ input errors
BAD_X = {
    "complex": (lambda X: X + 1j * X, "Complex data not supported"),
    "1-D": (lambda X: X[:, 0], "reshape"),
}


@pytest.mark.parametrize(("name", "kind"), _rows(ESTIMATORS, BAD_X))
def test_invalid_x_raises(name, kind, blobs3):
    X, y = blobs3
    make_bad, match = BAD_X[kind]
    with pytest.raises(ValueError, match=match):
        FACTORIES[name]().fit(make_bad(X), y)
    est = FACTORIES[name]().fit(X, y)
    with pytest.raises(ValueError, match=match):
        est.predict(make_bad(X))
