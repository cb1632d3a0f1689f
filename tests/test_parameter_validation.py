"""Every bad parameter value is an error before any work: one row per value.

Each row asserts the error type and that the message names the parameter
and the range or choices expected. For the networks, training is made to
fail loudly if it ever starts, so an error raised only after some epochs
would fail the row.
"""

import re

import numpy as np
import pytest
from sklearn.datasets import load_digits

from sk_margin import (
    MarginKernelLogReg,
    MarginNetClassifier,
    make_average_margin_scorer,
    make_certified_accuracy_scorer,
    make_robust_accuracy_scorer,
)
from sk_margin.__main__ import main

# (parameters, error type, fragments the message must contain)
NET_ROWS = [
    ({"lr": 0}, ValueError, ["'lr' parameter", "(0.0, inf)"]),
    ({"lr": -1e-3}, ValueError, ["'lr' parameter", "(0.0, inf)"]),
    ({"max_epochs": 0}, ValueError, ["'max_epochs' parameter", "[1, inf)"]),
    ({"batch_size": 0}, ValueError, ["'batch_size' parameter", "[1, inf)", "-1"]),
    ({"max_reweight_rounds": -1}, ValueError, ["'max_reweight_rounds'", "[0, inf)"]),
    ({"reweight_delta": 0.5}, ValueError, ["'reweight_delta'", "(1.0, inf)"]),
    ({"dtype": np.float16}, ValueError, ["'dtype' parameter", "np.float64"]),
    ({"dtype": "double precision"}, ValueError, ["'dtype' parameter", "np.float32"]),
    ({"dtype": None}, ValueError, ["'dtype' parameter", "np.float32", "None"]),
    ({"criterion": "lc_lmtt"}, ValueError, ["Unknown loss 'lc_lmtt'", "'lc_lmt'?"]),
    (
        {"criterion": "lmt", "criterion__eps": -1},
        ValueError,
        ["criterion__eps", "criterion='lmt'", "[0.0, inf)"],
    ),
    (
        {"criterion": "lc_lmt", "criterion__eps": -1},
        ValueError,
        ["criterion__eps", "criterion='lc_lmt'", "[0.0, inf)"],
    ),
    (
        {"criterion": "margin_hinge", "criterion__mu": -1},
        ValueError,
        ["criterion__mu", "[0.0, inf)"],
    ),
    (
        {"criterion": "margin_softmax", "criterion__mu": -1},
        ValueError,
        ["criterion__mu", "[0.0, inf)"],
    ),
    (
        {"criterion": "gradient_margin", "criterion__C": -1},
        ValueError,
        ["criterion__C", "[0.0, inf)"],
    ),
    (
        {"criterion": "cross_lipschitz", "criterion__lam": -1},
        ValueError,
        ["criterion__lam", "[0.0, inf)"],
    ),
    (
        {"criterion": "amr", "criterion__lam": -1},
        ValueError,
        ["criterion__lam", "[0.0, inf)"],
    ),
    (
        {"criterion": "lc_lmt", "criterion__mu": 1.0},
        ValueError,
        ["criterion__mu is not a parameter", "criterion__eps", "criterion__clip"],
    ),
    (
        {"criterion": "margin_ratio", "criterion__m": 1.0},
        ValueError,
        ["criterion__m is not a parameter", "Did you mean criterion__mu"],
    ),
    ({"criterion": "hinge"}, ValueError, ["Unknown loss 'hinge'", "margin_hinge"]),
]

KERNEL_ROWS = [
    ({"lam": -1.0}, ValueError, ["'lam' parameter", "[0.0, inf)"]),
    ({"gamma": 0.0}, ValueError, ["'gamma' parameter", "(0.0, inf)", "knn"]),
    ({"gamma_scale": -1.0}, ValueError, ["'gamma_scale' parameter", "(0.0, inf)"]),
    ({"n_centers": 0}, ValueError, ["'n_centers' parameter", "[1, inf)"]),
    ({"n_neighbors": 0}, ValueError, ["'n_neighbors' parameter", "[1, inf)"]),
    ({"max_iter": 0}, ValueError, ["'max_iter' parameter", "[1, inf)"]),
    ({"tol": -1e-4}, ValueError, ["'tol' parameter", "[0.0, inf)"]),
    ({"regularizer": "l2"}, ValueError, ["'regularizer' parameter", "cross_lipschitz"]),
]

SCORER_ROWS = [
    (make_average_margin_scorer, {"eps": 0.05}, TypeError, ["'eps'", "make_certified"]),
    (
        make_certified_accuracy_scorer,
        {"eps": -0.1},
        ValueError,
        ["eps", "non-negative"],
    ),
    (
        make_certified_accuracy_scorer,
        {"eps": 0.1, "methd": "auto"},
        TypeError,
        ["'methd'", "Did you mean method"],
    ),
    (
        make_certified_accuracy_scorer,
        {"eps": 0.1, "n_steps": 0},
        ValueError,
        ["n_steps", ">= 1"],
    ),
    (
        make_average_margin_scorer,
        {"misclassified": "drop"},
        ValueError,
        ["misclassified", "'distance' or 'zero'"],
    ),
    (make_robust_accuracy_scorer, {"eps": -1.0}, ValueError, ["eps", "non-negative"]),
]

CLI_ROWS = [
    (["demo", "--n-centers", "0"], ["--n-centers", ">= 1"]),
    (["demo", "--max-epochs", "-3"], ["--max-epochs", ">= 1"]),
    (["demo", "--random-state", "-1"], ["--random-state", ">= 0"]),
    (["demo", "--n-centers", "many"], ["--n-centers", "expected an integer"]),
    (["reproduce", "hein-kernel", "--random-state", "x"], ["--random-state"]),
    (["reproduce", "no-such-paper"], ["invalid choice", "hein-kernel"]),
]


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return (X[:120] / 16.0).astype(np.float32), y[:120]


def _assert_message(err, fragments):
    for fragment in fragments:
        assert fragment in str(err), (fragment, str(err))


@pytest.mark.parametrize(
    "params, error, fragments", NET_ROWS, ids=[str(r[0]) for r in NET_ROWS]
)
def test_bad_net_parameters_fail_before_training(
    params, error, fragments, digits, monkeypatch
):
    def no_training(*args, **kwargs):
        raise AssertionError("training started before the parameters were checked")

    monkeypatch.setattr(MarginNetClassifier, "run_single_epoch", no_training)
    with pytest.raises(error) as info:
        MarginNetClassifier(**params).fit(*digits)
    _assert_message(info.value, fragments)


@pytest.mark.parametrize(
    "params, error, fragments", KERNEL_ROWS, ids=[str(r[0]) for r in KERNEL_ROWS]
)
def test_bad_kernel_parameters_fail_before_fitting(params, error, fragments, digits):
    with pytest.raises(error) as info:
        MarginKernelLogReg(**params).fit(*digits)
    _assert_message(info.value, fragments)


@pytest.mark.parametrize(
    "factory, params, error, fragments",
    SCORER_ROWS,
    ids=[f"{r[0].__name__}-{r[1]}" for r in SCORER_ROWS],
)
def test_bad_scorer_arguments_fail_when_the_scorer_is_made(
    factory, params, error, fragments
):
    with pytest.raises(error) as info:
        factory(**params)
    _assert_message(info.value, fragments)


@pytest.mark.parametrize(
    "argv, fragments", CLI_ROWS, ids=[" ".join(r[0]) for r in CLI_ROWS]
)
def test_bad_command_line_arguments_are_usage_errors(argv, fragments, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2  # argparse's usage error, not a traceback
    err = capsys.readouterr().err
    assert err.startswith("usage: sk-margin")
    _assert_message(err, fragments)


def test_version_is_printed(capsys):
    import sk_margin

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert re.fullmatch(
        rf"sk-margin {re.escape(sk_margin.__version__)}\n", capsys.readouterr().out
    )
