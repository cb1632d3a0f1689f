import numpy as np
import pytest
import torch
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from skorch.dataset import Dataset, ValidSplit

from sk_margin.nets import MarginNetClassifier, MarginStatistics

KEYS = ["train_min_margin", "train_avg_margin", "lipschitz_bound"]
NAMES = np.array(["a", "b", "c"])


@pytest.fixture(scope="module")
def blobs(blobs_2d):
    X, y = blobs_2d
    # The net trains on float32 inputs: compare on the same rounded values.
    return X.astype(np.float32).astype(np.float64), NAMES[y]


def _linear_net(callback, **kwargs):
    """A net that is one nn.Linear layer: there ``L_yj = ||w_y - w_j||`` exactly."""
    params = dict(module__hidden_sizes=(), max_epochs=3, lr=0.05, random_state=0)
    params.update(kwargs)
    callbacks = None if callback is None else [("margins", callback)]
    return MarginNetClassifier(callbacks=callbacks, **params)


def _expected(net, X, y):
    """Signed distance ``min_j (f_y - f_j) / ||w_y - w_j||`` of a linear net."""
    scores = net.decision_function(X)
    W = net.module_[-1].weight.detach().double().numpy()
    y_idx = np.searchsorted(net.classes_, y)
    rows = np.arange(len(X))
    gaps = scores[rows, y_idx][:, None] - scores
    gaps[rows, y_idx] = np.inf  # minima over j != y
    norms = np.linalg.norm(W[y_idx][:, None, :] - W[None, :, :], axis=2)
    norms[rows, y_idx] = 1.0
    return (gaps / norms).min(axis=1), gaps.min(axis=1), np.linalg.norm(W, 2)


def test_records_every_epoch_with_criterion_eps(blobs):
    X, y = blobs
    net = _linear_net(
        MarginStatistics(), criterion="lc_lmt", criterion__eps=0.1, max_epochs=4
    ).fit(X, y)
    for row in net.history:
        for key in [*KEYS, "required_margin_share"]:
            assert key in row
        assert "valid_avg_margin" not in row
        assert row["train_min_margin"] <= row["train_avg_margin"]
        assert 0.0 <= row["required_margin_share"] <= 1.0
    assert len(net.history[:, "train_avg_margin"]) == 4


def test_every_k_epochs(blobs):
    X, y = blobs
    net = _linear_net(MarginStatistics(every=2), max_epochs=5).fit(X, y)
    recorded = [row["epoch"] for row in net.history if "train_avg_margin" in row]
    assert recorded == [2, 4]
    # Without an eps the required-margin share is skipped.
    assert not any("required_margin_share" in row for row in net.history)


def test_linear_net_margins_are_exact_signed_distances(blobs):
    X, y = blobs
    eps = 0.05
    net = _linear_net(MarginStatistics(eps=eps)).fit(X, y)
    margin, logit, spectral = _expected(net, X, y)
    last = net.history[-1]
    assert_allclose(last["train_min_margin"], margin.min(), rtol=1e-8)
    assert_allclose(last["train_avg_margin"], np.abs(margin).mean(), rtol=1e-8)
    assert_allclose(last["lipschitz_bound"], spectral, rtol=1e-8)
    assert_allclose(logit, net.margins(X, y), atol=1e-12)
    share = np.mean(logit >= np.sqrt(2) * last["lipschitz_bound"] * eps)
    assert_allclose(last["required_margin_share"], share)
    assert 0.0 <= share <= 1.0
    # Correctly classified points: moving by the margin towards the closest
    # class lands exactly on the decision boundary (so it is the distance).
    y_idx = np.searchsorted(net.classes_, y)
    W = net.module_[-1].weight.detach().double().numpy()
    scores = net.decision_function(X)
    for i in np.flatnonzero(margin > 0):
        gaps = (scores[i, y_idx[i]] - scores[i]) / np.linalg.norm(
            W[y_idx[i]] - W, axis=1
        ).clip(1e-300)
        gaps[y_idx[i]] = np.inf
        j = np.argmin(gaps)
        step = (W[j] - W[y_idx[i]]) / np.linalg.norm(W[j] - W[y_idx[i]])
        moved = net.decision_function((X[i] + margin[i] * step)[None])[0]
        assert_allclose(moved[y_idx[i]], moved[j], atol=1e-9)
        assert moved.max() <= moved[j] + 1e-9


def test_validation_data_and_string_labels(blobs):
    X, y = blobs
    X_valid, y_valid = X[::3], y[::3]
    net = _linear_net(MarginStatistics(X_valid, y_valid)).fit(X, y)
    margin, _, _ = _expected(net, X_valid, y_valid)
    for row in net.history:
        assert "valid_min_margin" in row and "valid_avg_margin" in row
    last = net.history[-1]
    assert_allclose(last["valid_min_margin"], margin.min(), rtol=1e-8)
    assert_allclose(last["valid_avg_margin"], np.abs(margin).mean(), rtol=1e-8)


def test_internal_split_uses_the_training_part(blobs):
    X, y = blobs
    net = _linear_net(
        MarginStatistics(),
        train_split=ValidSplit(3),
        callbacks__valid_acc=None,  # skorch's scorer cannot read the dict inputs
    ).fit(X, y)
    y_idx = np.searchsorted(net.classes_, y)
    data = {"X": X.astype(np.float32), "sample_weight": np.ones(len(X), np.float32)}
    train, valid = net.get_split_datasets(data, y_idx)
    last = net.history[-1]
    for prefix, part in [("train", train), ("valid", valid)]:
        margin, _, _ = _expected(net, X[part.indices], y[part.indices])
        assert_allclose(last[f"{prefix}_avg_margin"], np.abs(margin).mean())
        assert_allclose(last[f"{prefix}_min_margin"], margin.min())


def test_subsample_is_fixed_by_random_state(blobs):
    X, y = blobs
    net = _linear_net(MarginStatistics(subsample=20, random_state=3)).fit(X, y)
    keep = np.sort(np.random.RandomState(3).choice(len(X), 20, replace=False))
    margin, _, _ = _expected(net, X[keep], y[keep])
    assert_allclose(net.history[-1, "train_avg_margin"], np.abs(margin).mean())
    assert_allclose(net.history[-1, "train_min_margin"], margin.min())


def test_logit_kind_needs_no_lipschitz_bound(blobs):
    X, y = blobs
    net = _linear_net(MarginStatistics(kind="logit")).fit(X, y)
    logit = net.margins(X, y)
    last = net.history[-1]
    assert_allclose(last["train_avg_margin"], np.abs(logit).mean(), rtol=1e-8)
    assert_allclose(last["train_min_margin"], logit.min(), rtol=1e-8)
    assert "lipschitz_bound" not in last
    assert "required_margin_share" not in last


def test_nonlinear_net_margin_is_a_lower_bound_of_the_logit_ratio(digits_split):
    X, _, y, _ = digits_split
    X, y = X[:300], y[:300]
    net = MarginNetClassifier(
        module__hidden_sizes=(16,),
        criterion="lmt",
        criterion__eps=0.1,
        callbacks=[("margins", MarginStatistics())],
        max_epochs=2,
        random_state=0,
    ).fit(X, y)
    last = net.history[-1]
    # L_yj = ||W^T (e_y - e_j)|| prod_{l<L} L_l <= sqrt(2) L, so every
    # |margin| is at least |logit margin| / (sqrt(2) L).
    logit = np.abs(net.margins(X, y)).mean()
    assert last["train_avg_margin"] >= logit / (np.sqrt(2) * last["lipschitz_bound"])
    assert last["train_min_margin"] <= last["train_avg_margin"]


def test_module_mode_parameters_and_training_are_unchanged(blobs):
    X, y = blobs
    plain = _linear_net(None, max_epochs=2).fit(X, y)
    net = _linear_net(MarginStatistics(eps=0.1), max_epochs=2).fit(X, y)
    for a, b in zip(plain.module_.parameters(), net.module_.parameters(), strict=True):
        assert torch.equal(a, b)

    y_idx = np.searchsorted(net.classes_, y)
    dataset = Dataset({"X": X.astype(np.float32)}, y_idx)
    before = [p.detach().clone() for p in net.module_.parameters()]
    callback = MarginStatistics(eps=0.1)
    for training in (True, False):
        net.module_.train(training)
        callback.on_epoch_end(net, dataset_train=dataset)
        assert all(m.training == training for m in net.module_.modules())
    after = list(net.module_.parameters())
    assert all(p.dtype == torch.float32 for p in after)
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=True))


def test_any_dataset_is_read_by_iteration(blobs):
    X, y = blobs
    net = _linear_net(MarginStatistics(), max_epochs=1).fit(X, y)
    y_idx = np.searchsorted(net.classes_, y)
    X32 = torch.as_tensor(X, dtype=torch.float32)

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(X)

        def __getitem__(self, i):
            return {"X": X32[i]}, y_idx[i]

    callback = MarginStatistics()
    net.history.new_epoch()
    callback.on_epoch_end(net, dataset_train=Pairs())
    margin, _, _ = _expected(net, X, y)
    assert_allclose(net.history[-1, "train_avg_margin"], np.abs(margin).mean())


def test_clone_and_grid_search_keep_the_parameters(blobs):
    X, y = blobs
    callback = MarginStatistics(kind="logit", eps=0.3, every=2, subsample=10)
    net = _linear_net(callback, max_epochs=2)
    cloned = dict(clone(net).callbacks)["margins"]
    assert cloned is not callback
    assert cloned.get_params() == callback.get_params()

    search = GridSearchCV(net, {"callbacks__margins__every": [1]}, cv=2).fit(X, y)
    best = search.best_estimator_
    assert [row["epoch"] for row in best.history if "train_avg_margin" in row] == [
        1,
        2,
    ]
    assert "required_margin_share" in best.history[-1]
    params = best.get_params()
    assert params["callbacks__margins__every"] == 1
    assert params["callbacks__margins__subsample"] == 10
    assert params["callbacks__margins__eps"] == 0.3
    assert callback.every == 2  # the search changed its clones only


@pytest.mark.parametrize(
    "params, match",
    [
        ({"kind": "distance"}, "kind must be one of"),
        ({"every": 0}, "every must be a positive int"),
        ({"subsample": 1.5}, "subsample must be None or a positive int"),
        ({"eps": -1.0}, "eps must be None or > 0"),
        ({"X_valid": np.zeros((2, 2))}, "X_valid and y_valid must be given together"),
    ],
)
def test_invalid_parameters_raise_at_fit(blobs, params, match):
    X, y = blobs
    with pytest.raises(ValueError, match=match):
        _linear_net(MarginStatistics(**params), max_epochs=1).fit(X, y)


def test_unknown_validation_label_raises(blobs):
    X, y = blobs
    callback = MarginStatistics(X[:2], np.array(["a", "z"]))
    with pytest.raises(ValueError, match="y_valid contains labels not seen"):
        _linear_net(callback, max_epochs=1).fit(X, y)
