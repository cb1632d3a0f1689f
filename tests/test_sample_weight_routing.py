"""sample_weight through Pipeline, GridSearchCV and the scorers.

Without metadata routing, ``Pipeline.fit(..., clf__sample_weight=w)`` and
``GridSearchCV.fit(..., sample_weight=w)``; with it, ``set_fit_request`` and
``set_score_request``, as for scikit-learn's own estimators and scorers.
"""

import numpy as np
import pytest
import sklearn
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sk_margin import MarginKernelLogReg, MarginNetClassifier
from sk_margin.metrics import certified_accuracy, make_certified_accuracy_scorer

ESTIMATORS = {
    "kernel": lambda: MarginKernelLogReg(n_centers=40, random_state=0),
    "net": lambda: MarginNetClassifier(
        module__hidden_sizes=(32,), max_epochs=3, lr=1e-2, random_state=0
    ),
}


@pytest.fixture(scope="module")
def data(digits_split):
    X, _, y, _ = digits_split
    X, y = X[:200] * 16.0, y[:200]  # raw pixel scale: the scaler has work to do
    w = np.random.default_rng(0).integers(0, 4, 200).astype(float)
    w[y == 1] *= 5.0  # weights that move the fit
    return X, y, w


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_pipeline_passes_step_weights(name, data):
    X, y, w = data
    est = ESTIMATORS[name]()
    pipe = make_pipeline(MinMaxScaler(), est)
    step = pipe.steps[-1][0]
    pipe.fit(X, y, **{f"{step}__sample_weight": w})
    direct = clone(est).fit(MinMaxScaler().fit_transform(X), y, sample_weight=w)
    assert_array_equal(
        pipe.predict_proba(X), direct.predict_proba(pipe[0].transform(X))
    )
    unweighted = clone(pipe).fit(X, y)
    assert not np.allclose(unweighted.predict_proba(X), pipe.predict_proba(X))


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_grid_search_routes_weights_to_fit_and_scorer(name, data):
    X, y, w = data
    cv = StratifiedKFold(2, shuffle=True, random_state=0)
    with sklearn.config_context(enable_metadata_routing=True):
        est = ESTIMATORS[name]().set_fit_request(sample_weight=True)
        pipe = make_pipeline(MinMaxScaler(), est)
        scorer = make_certified_accuracy_scorer(0.02).set_score_request(
            sample_weight=True
        )
        step = pipe.steps[-1][0]
        grid = {f"{step}__random_state": [0, 1]}
        search = GridSearchCV(pipe, grid, cv=cv, scoring=scorer, refit=True)
        search.fit(X, y, sample_weight=w)
    # Each fold's score: a weighted fit on its training part, scored with
    # the test part's weights.
    for k, (train, test) in enumerate(cv.split(X, y)):
        fold = clone(pipe).set_params(**search.cv_results_["params"][0])
        fold.fit(X[train], y[train], **{f"{step}__sample_weight": w[train]})
        expected = certified_accuracy(
            y[test],
            fold.predict(X[test]),
            fold[-1].certify(fold[0].transform(X[test])),
            0.02,
            sample_weight=w[test],
        )
        assert_allclose(search.cv_results_[f"split{k}_test_score"][0], expected)
    refit = clone(pipe).set_params(**search.best_params_)
    refit.fit(X, y, **{f"{step}__sample_weight": w})
    assert_array_equal(search.predict_proba(X), refit.predict_proba(X))


def test_unrequested_weights_are_an_error_naming_the_scorer(data):
    X, y, w = data
    with sklearn.config_context(enable_metadata_routing=True):
        est = ESTIMATORS["kernel"]().set_fit_request(sample_weight=True)
        search = GridSearchCV(
            est, {"lam": [1e-2]}, cv=2, scoring=make_certified_accuracy_scorer(0.02)
        )
        with pytest.raises(UnsetMetadataPassedError, match="certified_accuracy_scorer"):
            search.fit(X, y, sample_weight=w)


def test_score_request_needs_routing_enabled():
    with pytest.raises(RuntimeError, match="enable_metadata_routing=True"):
        make_certified_accuracy_scorer(0.1).set_score_request(sample_weight=True)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_grid_search_without_routing_passes_weights_to_fit(name, data):
    X, y, w = data
    est = ESTIMATORS[name]()
    search = GridSearchCV(est, {"random_state": [0]}, cv=2).fit(X, y, sample_weight=w)
    direct = clone(est).fit(X, y, sample_weight=w)
    assert_array_equal(search.predict_proba(X), direct.predict_proba(X))
