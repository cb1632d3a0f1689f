"""Hyperparameter search over every estimator: all cores, and a Dask cluster."""

import os
import time
import uuid

import joblib
import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.stats import loguniform
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

from sk_margin import MarginKernelLogReg, MarginPValueDetector
from sk_margin.nets import MarginNetClassifier


@pytest.fixture(scope="module")
def small(digits_split):
    X_train, _, y_train, _ = digits_split
    return X_train[:240], y_train[:240]


def _kernel_search(n_jobs):
    return GridSearchCV(
        MarginKernelLogReg(n_centers=60, random_state=0),
        {"lam": [1e-3, 1e-1], "regularizer": ["cross_lipschitz", "rkhs"]},
        cv=2,
        n_jobs=n_jobs,
    )


def _net_search(n_jobs):
    net = MarginNetClassifier(
        criterion="amr",
        module__hidden_sizes=(16,),
        max_epochs=3,
        random_state=0,
    )
    grid = {
        "criterion__lam": loguniform(1e-3, 1.0),
        "criterion__tau": [1.0, 5.0],
    }
    return RandomizedSearchCV(net, grid, n_iter=3, cv=2, n_jobs=n_jobs, random_state=0)


def _calibration_error(detector, X, y):
    """Minus the distance of the share of flagged samples to the detector's fpr."""
    return -abs(np.mean(detector.predict(X) == -1) - detector.fpr)


def _detector_search(n_jobs):
    detector = MarginPValueDetector(
        MarginKernelLogReg(n_centers=60, random_state=0), random_state=0
    )
    grid = {"estimator__lam": [1e-3, 1e-1], "max_components": [1, 3]}
    return GridSearchCV(detector, grid, scoring=_calibration_error, cv=2, n_jobs=n_jobs)


class _ProcessRecordingScorer:
    """The search's own score, leaving one file holding the scoring process's pid.

    Module level, hence picklable: the workers of a parallel search are
    separate processes, so each call writes its own file into ``directory``.
    With ``wait_for=2`` a call waits (at most ``timeout`` seconds) until two
    processes have scored, so that a worker that starts late still gets a
    task and the test does not depend on how joblib spreads fast tasks.
    """

    def __init__(self, directory, scoring=None, wait_for=1, timeout=10.0):
        self.directory = directory
        self.scoring = scoring
        self.wait_for = wait_for
        self.timeout = timeout

    def _pids(self):
        return {f.read_text() for f in self.directory.iterdir()}

    def __call__(self, estimator, X, y):
        (self.directory / uuid.uuid4().hex).write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while len(self._pids()) < self.wait_for and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.scoring is None:
            return estimator.score(X, y)
        return self.scoring(estimator, X, y)


def _fit_recording_pids(search, X, y, directory, wait_for=1):
    """Fit ``search``, its scores computed as before; the pid of every score."""
    directory.mkdir()
    scorer = _ProcessRecordingScorer(directory, search.scoring, wait_for)
    search.set_params(scoring=scorer)
    search.fit(X, y)
    return search, [int(f.read_text()) for f in directory.iterdir()]


@pytest.mark.skipif(joblib.cpu_count() < 2, reason="needs at least 2 cores")
def test_searches_use_every_core_and_match_a_sequential_run(small, tmp_path):
    X, y = small
    for make in (_kernel_search, _net_search, _detector_search):
        name = make.__name__
        parallel, workers = _fit_recording_pids(
            make(-1), X, y, tmp_path / name, wait_for=2
        )
        sequential, here = _fit_recording_pids(make(1), X, y, tmp_path / f"{name}1")

        # One score per candidate and fold, each in a worker process, with at
        # least two workers; the sequential search scores in this process.
        n_scores = len(parallel.cv_results_["params"]) * parallel.n_splits_
        assert len(workers) == len(here) == n_scores
        assert os.getpid() not in workers
        assert len(set(workers)) >= 2
        assert set(here) == {os.getpid()}

        assert_allclose(
            parallel.cv_results_["mean_test_score"],
            sequential.cv_results_["mean_test_score"],
        )
        assert parallel.best_params_ == sequential.best_params_


@pytest.mark.slow
def test_the_same_search_runs_on_a_dask_cluster(small):
    distributed = pytest.importorskip("distributed")
    X, y = small
    expected = _kernel_search(1).fit(X, y).cv_results_["mean_test_score"]
    # Worker processes on this machine, no dashboard: nothing leaves it.
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        with distributed.get_task_stream(client) as tasks:
            with joblib.parallel_backend("dask"):
                search = _kernel_search(-1).fit(X, y)
        workers = set(client.scheduler_info()["workers"])
    ran_on = {task["worker"] for task in tasks.data}
    assert len(tasks.data) >= 8  # 4 candidates x 2 folds ran as Dask tasks
    assert ran_on and ran_on <= workers
    assert_allclose(search.cv_results_["mean_test_score"], expected)
    assert np.isfinite(search.best_score_)
