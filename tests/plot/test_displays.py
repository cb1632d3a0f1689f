"""Tests of the Display classes: what is drawn, not only that it runs."""

import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sk_margin.kernel import MarginKernelLogReg
from sk_margin.metrics import certified_radii
from sk_margin.nets import MarginNetClassifier, MarginStatistics
from sk_margin.plot import (
    CertifiedAccuracyDisplay,
    MarginHistogramDisplay,
    MarginTrajectoryDisplay,
)


@pytest.fixture(autouse=True)
def plt():
    """pyplot on the headless Agg backend; every figure is closed afterwards."""
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    """300 training and 150 test digits, scaled to [0, 1]."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return X[:300], y[:300], X[300:450], y[300:450]


@pytest.fixture(scope="module")
def kernel(data):
    X, y, _, _ = data
    return MarginKernelLogReg(n_centers=50, random_state=0).fit(X, y)


@pytest.fixture(scope="module")
def net(data):
    """A tiny net whose history holds training and validation margins."""
    X, y, X_test, y_test = data
    callback = MarginStatistics(X_test, y_test, kind="logit", eps=0.1)
    return MarginNetClassifier(
        module__hidden_sizes=(16,),
        max_epochs=3,
        max_reweight_rounds=0,
        callbacks=[("margins", callback)],
        random_state=0,
    ).fit(X, y)


def _legend_labels(ax):
    return [text.get_text() for text in ax.get_legend().get_texts()]


# ------------------------------------------------------------- histograms
def test_histogram_from_predictions_draws_counts_line_and_labels():
    rng = np.random.default_rng(0)
    margins = {"training": rng.normal(3, 1, 200), "held-out": rng.normal(1, 2, 70)}
    disp = MarginHistogramDisplay.from_predictions(
        margins, required_margin=1.5, bins=12
    )
    assert len(disp.bars_) == 2
    for bar, (group, values) in zip(disp.bars_, margins.items(), strict=True):
        heights, edges = bar.get_data().values, bar.get_data().edges
        assert_array_equal(edges, disp.bin_edges)  # shared bins
        assert len(edges) == 13
        assert heights.sum() == len(values)
        assert_array_equal(heights, np.histogram(values, bins=disp.bin_edges)[0])
        assert bar.get_label() == group
    assert disp.bin_edges[0] == min(m.min() for m in margins.values())
    assert disp.bin_edges[-1] == max(m.max() for m in margins.values())
    assert_allclose(disp.required_line_.get_xdata(), [1.5, 1.5])
    assert _legend_labels(disp.ax_) == [
        "training",
        "held-out",
        "required margin = 1.5",
    ]
    assert disp.ax_.get_xlabel() == "Margin"
    assert disp.ax_.get_ylabel() == "Number of samples"
    assert disp.figure_ is disp.ax_.figure


def test_histogram_density_integrates_to_one_and_log_scale():
    rng = np.random.default_rng(1)
    margins = {"a": rng.normal(0, 1, 100), "b": rng.normal(2, 0.5, 30)}
    disp = MarginHistogramDisplay.from_predictions(
        margins, density=True, log_scale=True
    )
    for bar in disp.bars_:
        data = bar.get_data()
        assert_allclose(np.sum(data.values * np.diff(data.edges)), 1.0)
    assert disp.ax_.get_ylabel() == "Density"
    assert disp.ax_.get_yscale() == "log"
    assert disp.required_line_ is None


def test_histogram_single_array_existing_axis_and_name(plt):
    fig, ax = plt.subplots()
    disp = MarginHistogramDisplay.from_predictions(
        [0.1, 0.2, 0.2, 0.9], bins=[0, 0.5, 1], name="CE", ax=ax
    )
    assert disp.ax_ is ax and disp.figure_ is fig
    assert_array_equal(disp.bars_[0].get_data().values, [3, 1])
    assert _legend_labels(ax) == ["CE: samples"]
    # plot again on the same axis with another name: both drawn there
    disp.plot(ax=ax, name="other")
    assert len(ax.patches) == 2
    assert _legend_labels(ax) == ["CE: samples", "other: samples"]


def test_histogram_from_estimator_groups_match_estimator_margins(kernel, data):
    X, y, X_test, y_test = data
    X_adv = np.clip(
        X_test + np.random.default_rng(0).normal(0, 0.2, X_test.shape), 0, 1
    )
    disp = MarginHistogramDisplay.from_estimator(
        kernel,
        X,
        y,
        X_held_out=X_test,
        y_held_out=y_test,
        X_attacked=X_adv,
        required_margin=0.5,
    )
    expected = {
        "training": kernel.margins(X, y),
        "held-out": kernel.margins(X_test, y_test),
        "attacked": kernel.margins(X_adv),  # unlabelled: predicted class, >= 0
    }
    assert list(disp.counts) == list(expected)
    for bar, margins in zip(disp.bars_, expected.values(), strict=True):
        heights = bar.get_data().values
        assert_array_equal(heights, np.histogram(margins, bins=disp.bin_edges)[0])
        assert heights.sum() == len(margins)
    assert expected["attacked"].min() >= 0
    assert disp.ax_.get_xlabel() == "Logit margin"
    assert_allclose(disp.required_line_.get_xdata(), [0.5, 0.5])


def test_histogram_from_estimator_certified_signed_by_correctness(kernel, data):
    _, _, X_test, y_test = data
    disp = MarginHistogramDisplay.from_estimator(
        kernel,
        X_held_out=X_test,
        y_held_out=y_test,
        margin="certified",
        certify_params={"method": "local_triangle"},
    )
    radii = kernel.certify(X_test, method="local_triangle")
    correct = kernel.predict(X_test) == y_test
    assert not correct.all()  # so that the sign matters
    signed = np.where(correct, radii, -radii)
    heights = disp.bars_[0].get_data().values
    assert_array_equal(heights, np.histogram(signed, bins=disp.bin_edges)[0])
    assert disp.bars_[0].get_label() == "held-out"
    assert disp.ax_.get_xlabel() == "Certified l2 radius"


def test_histogram_from_estimator_pipeline(data):
    X, y, X_test, y_test = data
    pipe = make_pipeline(
        MinMaxScaler(), MarginKernelLogReg(n_centers=50, random_state=0)
    ).fit(X * 16, y)
    disp = MarginHistogramDisplay.from_estimator(pipe, X_test * 16, y_test)
    margins = pipe[-1].margins(pipe[0].transform(X_test * 16), y_test)
    heights = disp.bars_[0].get_data().values
    assert_array_equal(heights, np.histogram(margins, bins=disp.bin_edges)[0])
    disp = MarginHistogramDisplay.from_estimator(pipe, X_test * 16, margin="certified")
    assert disp.bars_[0].get_data().values.sum() == len(X_test)
    frozen = MarginHistogramDisplay.from_estimator(
        FrozenEstimator(pipe), X_test * 16, y_test
    )
    assert_array_equal(frozen.counts["training"], np.histogram(margins, bins=30)[0])


@pytest.mark.parametrize(
    "margins, match",
    [
        ({}, "empty dict"),
        ([], r"margins\['samples'\] is empty"),
        ({"a": [0.1, np.nan]}, "contains NaN"),
        ({"a": [0.1, np.inf]}, "infinite"),
        ({"a": [[0.1, 0.2]]}, "must be 1-D"),
    ],
)
def test_histogram_from_predictions_invalid(margins, match):
    with pytest.raises(ValueError, match=match):
        MarginHistogramDisplay.from_predictions(margins)


def test_histogram_from_estimator_invalid(kernel, data):
    X, y, _, _ = data
    with pytest.raises(ValueError, match="needs X, X_held_out or X_attacked"):
        MarginHistogramDisplay.from_estimator(kernel)
    with pytest.raises(ValueError, match="margin must be one of"):
        MarginHistogramDisplay.from_estimator(kernel, X, margin="radius")
    logreg = LogisticRegression(max_iter=200).fit(X, y)
    with pytest.raises(TypeError, match="margins method.*LogisticRegression"):
        MarginHistogramDisplay.from_estimator(make_pipeline(MinMaxScaler(), logreg), X)
    with pytest.raises(TypeError, match="LogisticRegression has no certify method"):
        MarginHistogramDisplay.from_estimator(logreg, X, margin="certified")
    with pytest.raises(ValueError, match="same length"):
        MarginHistogramDisplay.from_estimator(kernel, X, y[:-1], margin="certified")


# ----------------------------------------------------------- trajectories
@pytest.mark.parametrize("subset", ["train", "valid"])
def test_trajectory_lines_equal_history(net, subset):
    disp = MarginTrajectoryDisplay.from_estimator(net, subset=subset)
    history = net.history_
    assert_array_equal(disp.min_line_.get_xdata(), [1, 2, 3])
    assert_allclose(disp.min_line_.get_ydata(), history[:, f"{subset}_min_margin"])
    assert_allclose(disp.avg_line_.get_ydata(), history[:, f"{subset}_avg_margin"])
    assert disp.min_line_.get_linestyle() == "--"
    assert disp.min_line_.get_color() == disp.avg_line_.get_color()
    assert _legend_labels(disp.ax_) == [
        f"average margin ({subset})",
        f"minimum margin ({subset})",
    ]
    assert disp.ax_.get_xlabel() == "Epoch"
    assert disp.ax_.get_ylabel() == "Margin"
    assert disp.figure_ is disp.ax_.figure


def test_trajectory_from_history_skips_epochs_without_record_and_shares_axis(plt):
    history = [
        {"epoch": 1, "train_loss": 1.0},
        {"epoch": 2, "train_min_margin": -1.0, "train_avg_margin": 2.0},
        {"epoch": 3, "train_loss": 0.5},
        {"epoch": 4, "train_min_margin": 0.5, "train_avg_margin": 1.5},
    ]
    fig, ax = plt.subplots()
    disp = MarginTrajectoryDisplay.from_history(history, name="A", ax=ax)
    assert disp.ax_ is ax and disp.figure_ is fig
    assert_array_equal(disp.avg_line_.get_xdata(), [2, 4])
    assert_array_equal(disp.min_line_.get_ydata(), [-1.0, 0.5])
    raw = MarginTrajectoryDisplay(epochs=[1, 2], min_margin=[0, 1], avg_margin=[2, 2])
    raw.plot(ax=ax, name="B")
    assert len(ax.get_lines()) == 4
    assert _legend_labels(ax) == [
        "A: average margin (train)",
        "A: minimum margin (train)",
        "B: average margin",
        "B: minimum margin",
    ]


def test_trajectory_errors(kernel, data):
    X, y, _, _ = data
    plain = MarginNetClassifier(
        module__hidden_sizes=(8,), max_epochs=1, max_reweight_rounds=0, random_state=0
    ).fit(X, y)
    with pytest.raises(ValueError, match="'train_min_margin'.*MarginStatistics"):
        MarginTrajectoryDisplay.from_estimator(plain)
    with pytest.raises(ValueError, match="'valid_min_margin'.*X_valid"):
        MarginTrajectoryDisplay.from_history(
            [{"train_min_margin": 0.0}], subset="valid"
        )
    with pytest.raises(ValueError, match="subset must be one of"):
        MarginTrajectoryDisplay.from_estimator(plain, subset="test")
    with pytest.raises(ValueError, match="fitted skorch net.*MarginNetClassifier"):
        MarginTrajectoryDisplay.from_estimator(MarginNetClassifier())
    with pytest.raises(ValueError, match="MarginKernelLogReg without a history_"):
        MarginTrajectoryDisplay.from_estimator(kernel)
    raw = MarginTrajectoryDisplay(
        epochs=[1, 2, 3], min_margin=[0, 1], avg_margin=[1, 2]
    )
    with pytest.raises(ValueError, match="same length.*epochs: 3, min_margin: 2"):
        raw.plot()


# ----------------------------------------------------- certified accuracy
def test_certified_accuracy_hand_computed():
    y_true = [0, 1, 2, 1, 0]
    y_pred = [0, 1, 1, 1, 0]  # the third is wrong
    radii = [0.3, 0.1, 0.9, 0.0, np.inf]
    disp = CertifiedAccuracyDisplay.from_predictions(
        y_true, y_pred, radii, eps=[0.2, 0.0, 0.1, 0.3, 1.0], name="toy"
    )
    # correct with radius >= eps, over 5 samples; eps sorted ascending
    assert_allclose(disp.line_.get_xdata(), [0.0, 0.1, 0.2, 0.3, 1.0])
    assert_allclose(disp.line_.get_ydata(), [4 / 5, 3 / 5, 2 / 5, 2 / 5, 1 / 5])
    assert_allclose(disp.certified_accuracy, disp.line_.get_ydata())
    assert disp.ax_.get_xlabel() == "l2 radius eps"
    assert disp.ax_.get_ylabel() == "Certified accuracy"
    assert _legend_labels(disp.ax_) == ["toy"]


def test_certified_accuracy_default_grid():
    disp = CertifiedAccuracyDisplay.from_predictions(
        [0, 1, 1], [0, 1, 1], [0.5, 2.0, np.inf]
    )
    eps = disp.line_.get_xdata()
    assert len(eps) == 100
    assert eps[0] == 0.0 and eps[-1] == 2.0  # largest finite radius
    assert disp.ax_.get_legend() is None  # no name, no legend
    zeros = CertifiedAccuracyDisplay.from_predictions([0, 1], [0, 0], [0.0, 0.0])
    assert zeros.eps[-1] == 1.0
    assert_allclose(zeros.certified_accuracy[[0, 1]], [0.5, 0.0])


def test_certified_accuracy_two_estimators_on_one_axis(plt, kernel, data):
    X, y, X_test, y_test = data
    fig, ax = plt.subplots()
    first = CertifiedAccuracyDisplay.from_estimator(kernel, X_test, y_test, ax=ax)
    rkhs = MarginKernelLogReg(regularizer="rkhs", n_centers=50, random_state=0)
    second = CertifiedAccuracyDisplay.from_estimator(
        rkhs.fit(X, y), X_test, y_test, name="Kernel-LogReg", ax=ax
    )
    assert first.ax_ is ax and second.ax_ is ax and second.figure_ is fig
    assert len(ax.get_lines()) == 2
    assert _legend_labels(ax) == ["MarginKernelLogReg", "Kernel-LogReg"]
    for disp in (first, second):
        acc = disp.line_.get_ydata()
        assert np.all(np.diff(acc) <= 0)  # non-increasing in eps
        assert disp.line_.get_xdata()[0] == 0.0
    assert_allclose(first.certified_accuracy[0], kernel.score(X_test, y_test))


def test_certified_accuracy_from_estimator_matches_predictions(kernel, data):
    _, _, X_test, y_test = data
    eps = np.linspace(0, 0.5, 11)
    disp = CertifiedAccuracyDisplay.from_estimator(
        kernel, X_test, y_test, eps=eps, certify_params={"method": "local_triangle"}
    )
    radii = kernel.certify(X_test, method="local_triangle")
    correct = kernel.predict(X_test) == y_test
    expected = [np.mean(correct & (radii >= e)) for e in eps]
    assert_allclose(disp.line_.get_ydata(), expected)


def test_certified_accuracy_net_and_pipeline(net, data):
    X, y, X_test, y_test = data
    disp = CertifiedAccuracyDisplay.from_estimator(net, X_test, y_test, eps=0.0)
    assert_allclose(disp.line_.get_ydata(), [net.score(X_test, y_test)])
    pipe = make_pipeline(
        MinMaxScaler(), MarginKernelLogReg(n_centers=50, random_state=0)
    ).fit(X * 16, y)
    disp = CertifiedAccuracyDisplay.from_estimator(pipe, X_test * 16, y_test)
    radii = certified_radii(pipe, X_test * 16)  # in the pipeline's input space
    assert_allclose(disp.eps[-1], radii.max())
    correct = pipe.predict(X_test * 16) == y_test
    assert_allclose(
        disp.certified_accuracy[-1], np.mean(correct & (radii >= radii.max()))
    )
    assert _legend_labels(disp.ax_) == ["MarginKernelLogReg"]


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        (([0, 1], [0, 1], [0.1]), {}, "inconsistent numbers of samples"),
        (([0, 1], [0, 1], [0.1, -0.2]), {}, "radii must be non-negative"),
        (([0, 1], [0, 1], [0.1, np.nan]), {}, "radii must be non-negative"),
        (([], [], []), {}, "0 sample"),
        (([0], [0], [0.1]), {"eps": [-0.1, 0.2]}, "eps must be a non-negative"),
        (([0], [0], [0.1]), {"eps": []}, "eps must be a non-negative"),
        (([0], [0], [0.1]), {"eps": [0.1, np.inf]}, "eps must be finite"),
    ],
)
def test_certified_accuracy_invalid(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        CertifiedAccuracyDisplay.from_predictions(*args, **kwargs)


def test_certified_accuracy_estimator_without_certify(data):
    X, y, _, _ = data
    logreg = make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=200)).fit(X, y)
    with pytest.raises(TypeError, match="LogisticRegression has no certify method"):
        CertifiedAccuracyDisplay.from_estimator(logreg, X, y)


def test_plot_without_matplotlib_says_how_to_install(monkeypatch):
    disp = CertifiedAccuracyDisplay(eps=[0.0, 1.0], certified_accuracy=[1.0, 0.5])
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="requires matplotlib.*pip install"):
        disp.plot()
