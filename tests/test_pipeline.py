"""The one see-through of pipelines, shared by metrics, attacks and Displays."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from sk_margin import MarginHistogramDisplay, MarginKernelLogReg, certified_radii
from sk_margin._pipeline import (
    final_estimator,
    pipeline_leaves,
    prefix_steps,
    transform_prefix,
)
from sk_margin.attacks import generate_adversarial


@pytest.fixture(scope="module")
def nested(digits_split):
    X_train, X_test, y_train, _ = digits_split
    X_train, X_test = 16 * X_train[:200], 16 * X_test[:10]
    inner = make_pipeline(StandardScaler(), MinMaxScaler())
    pipe = Pipeline(
        [
            ("scale", inner),
            ("nothing", "passthrough"),
            ("clf", MarginKernelLogReg(n_centers=40, random_state=0)),
        ]
    ).fit(X_train, y_train[:200])
    return pipe, X_test


def test_leaves_open_nested_and_frozen_pipelines(nested):
    pipe, X = nested
    names = [name for name, _ in pipeline_leaves(FrozenEstimator(pipe))]
    assert names == [
        "scale__standardscaler",
        "scale__minmaxscaler",
        "nothing",
        "clf",
    ]
    assert final_estimator(FrozenEstimator(pipe)) is pipe[-1]
    assert [name for name, _ in prefix_steps(pipe)] == names[:-1]
    assert_allclose(transform_prefix(pipe, X), pipe[:-1].transform(X))
    clf = pipe[-1]
    assert final_estimator(clf) is clf and prefix_steps(clf) == []
    assert transform_prefix(clf, X) is X


def test_metrics_attacks_and_displays_see_through_the_same_way(nested):
    pipe, X = nested
    frozen = FrozenEstimator(pipe)
    assert_allclose(certified_radii(frozen, X), certified_radii(pipe, X))
    X_adv = generate_adversarial(pipe, X, attack="box")
    assert_allclose(generate_adversarial(frozen, X, attack="box"), X_adv)
    assert np.mean(pipe.predict(X_adv) != pipe.predict(X)) >= 0.8
    disp = MarginHistogramDisplay.from_estimator(frozen, X, bins=5)
    inner = pipe[-1].margins(pipe[:-1].transform(X))
    assert disp.counts["training"].sum() == len(X)
    assert_allclose(disp.bin_edges[[0, -1]], [inner.min(), inner.max()])
