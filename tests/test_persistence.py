"""Nothing lost: fitted estimators survive pickle, joblib and cloudpickle
bitwise, a fixed random_state gives bitwise the same results in two fresh
processes, and a network saved with save_params reloads."""

import io
import pickle
import subprocess
import sys
import textwrap

import joblib
import numpy as np
import pytest
from numpy.testing import assert_array_equal
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector
from sk_margin.nets import LipschitzMLP

cloudpickle = pytest.importorskip("cloudpickle")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    return X[:300], y[:300], X[300:340]


def _joblib_round_trip(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


ROUND_TRIPS = {
    "pickle": lambda obj: pickle.loads(pickle.dumps(obj)),
    "joblib": _joblib_round_trip,
    "cloudpickle": lambda obj: cloudpickle.loads(cloudpickle.dumps(obj)),
}


@pytest.fixture(scope="module")
def fitted(digits):
    X, y, _ = digits
    net = {"max_epochs": 3, "batch_size": 64, "random_state": 0}
    return {
        "kernel": MarginKernelLogReg(n_centers=60, random_state=0).fit(X, y),
        "net": MarginNetClassifier(module__hidden_sizes=(32,), **net).fit(X, y),
        "lipschitz net": MarginNetClassifier(
            LipschitzMLP,
            module__hidden_sizes=(32,),
            criterion="certified_margin",
            **net,
        ).fit(X, y),
        "detector": MarginPValueDetector(
            MarginKernelLogReg(n_centers=40, random_state=0), cv=3, random_state=0
        ).fit(X, y),
        "representation detector": MarginPValueDetector(
            MarginKernelLogReg(n_centers=40, random_state=0),
            representations=["input", -1],
            cv=2,
            random_state=0,
        ).fit(X, y),
        "search": GridSearchCV(
            MarginKernelLogReg(n_centers=40, random_state=0),
            {"lam": [1e-3, 1e-1]},
            cv=2,
        ).fit(X, y),
    }


def _outputs(name, est, X):
    """Everything a user reads off a fitted estimator, as arrays."""
    if name.endswith("detector"):
        return [est.score_samples(X), est.predict(X), est.decision_function(X)]
    out = [est.predict(X), est.predict_proba(X)]
    model = est.best_estimator_ if name == "search" else est
    out += [model.margins(X), model.certify(X)]
    return out


@pytest.mark.parametrize("how", list(ROUND_TRIPS))
@pytest.mark.parametrize(
    "name",
    ["kernel", "net", "lipschitz net", "detector", "representation detector", "search"],
)
def test_round_trips_give_bitwise_identical_outputs(name, how, fitted, digits):
    X = digits[2]
    est = fitted[name]
    restored = ROUND_TRIPS[how](est)
    for got, expected in zip(
        _outputs(name, restored, X), _outputs(name, est, X), strict=True
    ):
        assert_array_equal(got, expected)


_SCRIPT = textwrap.dedent(
    """
    import hashlib
    import numpy as np
    from sklearn.datasets import load_digits
    from sk_margin import MarginKernelLogReg, MarginNetClassifier, MarginPValueDetector

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype(np.float32)
    X, y, X_new = X[:300], y[:300], X[300:340]
    digest = hashlib.sha256()
    for est in (
        MarginKernelLogReg(n_centers=60, random_state=0),
        MarginNetClassifier(module__hidden_sizes=(32,), max_epochs=3, random_state=0),
    ):
        est.fit(X, y)
        for arr in (est.predict_proba(X_new), est.certify(X_new)):
            digest.update(np.ascontiguousarray(arr).tobytes())
    det = MarginPValueDetector(
        MarginKernelLogReg(n_centers=40, random_state=0), cv=3, random_state=0
    ).fit(X, y)
    digest.update(det.score_samples(X_new).tobytes())
    print(digest.hexdigest())
    """
)


def test_a_fixed_random_state_gives_the_same_bits_in_two_fresh_processes():
    runs = [
        subprocess.run(
            [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert len(runs[0]) == 64 and runs[0] == runs[1]


def test_a_net_saved_with_save_params_reloads(fitted, digits, tmp_path):
    X, y, X_new = digits
    net = fitted["net"]
    path = tmp_path / "params.pt"
    net.save_params(f_params=path)
    fresh = MarginNetClassifier(
        module__hidden_sizes=(32,), max_epochs=3, random_state=1
    )
    fresh.fit(X, y)  # other weights, the same architecture and classes
    assert not np.array_equal(fresh.predict_proba(X_new), net.predict_proba(X_new))
    fresh.load_params(f_params=path)
    assert_array_equal(fresh.predict_proba(X_new), net.predict_proba(X_new))
    assert_array_equal(fresh.certify(X_new), net.certify(X_new))


def test_a_net_pickled_by_the_previous_release_loads(fitted, digits):
    # Its state had skorch's history_, initialized_ and virtual_params_ as
    # public attributes, and no dtype: rebuild such a state and load it.
    _, _, X_test = digits
    net = fitted["net"]
    state = net.__getstate__()
    for private in ("_initialized", "_history", "_virtual_params"):
        state[private[1:] + "_"] = state.pop(private)
    del state["dtype"]
    old = MarginNetClassifier.__new__(MarginNetClassifier)
    old.__setstate__(state)
    assert old.initialized_ and old.dtype is np.float32
    assert not {"initialized_", "history_", "virtual_params_"} & set(vars(old))
    assert len(old.history_) == len(net.history_)
    pairs = zip(_outputs("net", old, X_test), _outputs("net", net, X_test), strict=True)
    for a, b in pairs:
        assert_array_equal(a, b)


_LOAD_OLD_PICKLE = textwrap.dedent(
    """
    import pickle, sys
    import numpy as np
    nets, X, expected = pickle.load(open(sys.argv[1], "rb"))
    for net, (proba, radii) in zip(nets, expected, strict=True):
        assert np.array_equal(net.predict_proba(X), proba)
        assert np.array_equal(net.certify(X), radii)
    print(sorted({type(net.module_).__module__ for net in nets}))
    """
)


def test_a_net_pickled_before_nets_split_loads(fitted, digits, tmp_path):
    # Before nets/ split into layers/ and certify/, a pickle named the
    # module classes (and a Lipschitz-margin loss's estimator) by their old
    # modules; a fresh process must still find them there.
    from sk_margin.nets import certify, layers

    X, y, X_new = digits
    lmt = MarginNetClassifier(
        module__hidden_sizes=(16,), criterion="lmt", max_epochs=1, random_state=0
    ).fit(X, y)
    assert isinstance(lmt.criterion_._estimator, certify.PowerIterationLipschitz)
    nets = [fitted["net"], fitted["lipschitz net"], lmt]
    expected = [(net.predict_proba(X_new), net.certify(X_new)) for net in nets]
    old_modules = {
        layers.MLP: "sk_margin.nets._modules",
        layers.LipschitzMLP: "sk_margin.nets._lipschitz_modules",
        layers.MaxMin: "sk_margin.nets._lipschitz_modules",
        certify.PowerIterationLipschitz: "sk_margin.nets._power_iteration",
    }
    with pytest.MonkeyPatch.context() as patch:
        for cls, module in old_modules.items():
            patch.setattr(cls, "__module__", module)
        data = pickle.dumps((nets, X_new, expected))
    assert all(module.encode() in data for module in old_modules.values())
    path = tmp_path / "old.pkl"
    path.write_bytes(data)
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_OLD_PICKLE, str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "sk_margin.nets.layers._modules" in out.stdout
