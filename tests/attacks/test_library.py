import functools
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.special import log_softmax
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from sk_margin import MarginKernelLogReg
from sk_margin._pipeline import InputSpaceModel
from sk_margin.attacks import generate_adversarial
from sk_margin.attacks._art import _scores_classifier_class
from sk_margin.metrics import certified_accuracy, robust_accuracy


@pytest.fixture(scope="module")
def digits(digits_split):
    X_train, X_test, y_train, y_test = digits_split
    return X_train[:300], X_test[:60], y_train[:300], y_test[:60]


@pytest.fixture(scope="module")
def kernel_clf(digits):
    X, _, y, _ = digits
    return MarginKernelLogReg(n_centers=100, random_state=0).fit(X, y)


def _linear_pair(W, b):
    W, b = np.asarray(W, float), np.asarray(b, float)
    return (
        lambda X: np.asarray(X) @ W.T + b,
        lambda X: np.broadcast_to(W, (len(X),) + W.shape).copy(),
    )


def test_numpy_adapter_gradients_match_finite_differences(kernel_clf, digits):
    pytest.importorskip("art")
    _, X, _, y = digits
    x, onehot = X[:4], np.eye(10)[y[:4]]
    clf = _scores_classifier_class()(
        kernel_clf.decision_function, kernel_clf.input_jacobian, (64,), 10, None
    )
    assert_allclose(clf.predict(x), kernel_clf.decision_function(x))
    assert clf.class_gradient(x).shape == (4, 10, 64)
    assert_allclose(clf.class_gradient(x, label=3)[:, 0], clf.class_gradient(x)[:, 3])
    assert_allclose(
        clf.class_gradient(x, label=y[:4])[:, 0],
        clf.class_gradient(x)[np.arange(4), y[:4]],
    )

    def loss(z):
        return -np.sum(log_softmax(kernel_clf.decision_function(z), axis=1) * onehot)

    h, grad = 1e-6, clf.loss_gradient(x, onehot)
    for i in (10, 20, 30):
        step = np.zeros_like(x)
        step[:, i] = h
        numeric = (loss(x + step) - loss(x - step)) / (2 * h)
        assert_allclose(grad[:, i].sum(), numeric, rtol=1e-5, atol=1e-8)
    assert_allclose(clf.loss_gradient(x, y[:4]), grad)  # indices or one-hot


def test_binary_scores_become_two_columns(digits):
    pytest.importorskip("art")
    X, X_test, y, y_test = digits
    keep, keep_test = np.isin(y, [3, 8]), np.isin(y_test, [3, 8])
    clf = MarginKernelLogReg(n_centers=50, random_state=0).fit(X[keep], y[keep])
    Xb, yb = X_test[keep_test], y_test[keep_test]
    curve = robust_accuracy(clf, Xb, yb, attack="pgd", eps=[0.0, 1.0, 3.0])
    assert curve[0] == clf.score(Xb, yb) > curve[2]
    X_adv = generate_adversarial(clf, Xb, attack="deepfool")
    assert np.all(clf.predict(X_adv) != clf.predict(Xb))


@pytest.mark.parametrize(
    "first, jacobian",
    [
        (MinMaxScaler(), lambda step: np.diag(step.scale_)),
        (PCA(20, random_state=0), lambda step: step.components_),
    ],
)
def test_pipeline_jacobian_is_exact_for_affine_steps(digits, first, jacobian):
    X, X_test, y, _ = digits
    pipe = make_pipeline(first, MarginKernelLogReg(n_centers=50, random_state=0))
    pipe.fit(X, y)
    inner = pipe[-1].input_jacobian(pipe[0].transform(X_test[:3]))
    view = InputSpaceModel(pipe, X_test)
    J = jacobian(pipe[0])
    assert_allclose(view.input_jacobian(X_test[:3]), inner @ J, atol=1e-12)

    def chain_rule(Z):
        return pipe[-1].input_jacobian(pipe[0].transform(Z)) @ J

    X_adv = generate_adversarial(pipe, X_test[:10], attack="box")
    reference = (pipe.decision_function, chain_rule)
    expected = generate_adversarial(reference, X_test[:10], attack="box")
    assert_allclose(X_adv, expected, atol=1e-12)
    assert np.mean(pipe.predict(X_adv) != pipe.predict(X_test[:10])) >= 0.5


def test_deepfool_in_a_box_takes_plain_steps():
    """ART scales DeepFool's steps by the box width; the adapter undoes it."""
    pytest.importorskip("art")
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 5)), np.array([0.0, 0.3, -0.2])
    X = rng.normal(size=(20, 5))
    s = X @ W.T + b
    c = np.argmax(s, axis=1)
    gaps = s[np.arange(20), c][:, None] - s
    norms = np.linalg.norm(W[c][:, None] - W[None], axis=2)
    with np.errstate(invalid="ignore"):  # 0 / 0 at the predicted class
        ratio = np.where(np.arange(3) == c[:, None], np.inf, gaps / norms)
    exact = ratio.min(axis=1)
    for clip in (None, (-20, 20)):  # a box that never binds: 40 times wider
        X_adv = generate_adversarial(
            _linear_pair(W, b), X, attack="deepfool", clip_values=clip
        )
        assert np.all(np.argmax(X_adv @ W.T + b, axis=1) != c)
        distance = np.linalg.norm(X_adv - X, axis=1)
        assert_allclose(distance, 1.02 * exact, rtol=1e-3)  # overshoot 0.02


@pytest.mark.slow
def test_margin_net_robust_accuracy_through_torch(digits):
    pytest.importorskip("art")
    from sk_margin.nets import MarginNetClassifier

    X, X_test, y, y_test = digits
    net = MarginNetClassifier(
        module__hidden_sizes=(32,), max_epochs=10, lr=3e-3, random_state=0
    ).fit(X, y)
    radii = net.certify(X_test)
    eps = [0.0, float(np.median(radii)), 1.0]
    for attack in ("pgd", "deepfool", "fgsm"):
        curve = robust_accuracy(net, X_test, y_test, attack=attack, eps=eps)
        assert curve[0] == net.score(X_test, y_test) > curve[2]
        assert np.all(
            curve >= certified_accuracy(y_test, net.predict(X_test), radii, eps)
        )
    # DeepFool in a box that does not bind equals the unbounded one.
    free = generate_adversarial(net, X_test, attack="deepfool")
    boxed = generate_adversarial(net, X_test, attack="deepfool", clip_values=(-9, 9))
    assert_allclose(boxed, free, atol=1e-4)


@pytest.mark.slow
def test_image_inputs_through_torch():
    pytest.importorskip("art")
    from sklearn.datasets import load_digits

    from sk_margin.nets import MarginNetClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 1, 8, 8)[:300]
    net = MarginNetClassifier(max_epochs=20, lr=3e-3, random_state=0).fit(X, y[:300])
    curve = robust_accuracy(
        net, X[:40], y[:40], attack="pgd", eps=[0.0, 2.0], clip_values=(0.0, 1.0)
    )
    assert curve[0] == net.score(X[:40], y[:40]) > curve[1]
    X_adv = generate_adversarial(net, X[:5], attack="deepfool", clip_values=(0, 1))
    assert X_adv.shape == (5, 1, 8, 8) and X_adv.min() >= 0 and X_adv.max() <= 1


def test_art_attack_given_as_a_factory_matches_the_named_one(kernel_clf, digits):
    pytest.importorskip("art")
    from art.attacks.evasion import ProjectedGradientDescent

    _, X, _, y = digits
    params = {"eps_step": 0.05, "max_iter": 20}
    factory = functools.partial(
        ProjectedGradientDescent, norm=2, eps=0.4, verbose=False, **params
    )
    by_factory = robust_accuracy(kernel_clf, X, y, attack=factory, eps=0.4)
    by_name = robust_accuracy(kernel_clf, X, y, attack="pgd", eps=0.4, **params)
    assert by_factory == by_name < kernel_clf.score(X, y)


def test_string_labels(digits):
    pytest.importorskip("art")
    X, X_test, y, y_test = digits
    names = np.array(list("abcdefghij"))
    clf = MarginKernelLogReg(n_centers=50, random_state=0).fit(X, names[y])
    score = robust_accuracy(clf, X_test, names[y_test], attack="pgd", eps=[0, 0.5])
    assert score[0] == clf.score(X_test, names[y_test]) > score[1]


def test_errors(kernel_clf, digits):
    _, X, _, y = digits
    with pytest.raises(ValueError, match="attack must be one of"):
        robust_accuracy(kernel_clf, X, y, attack="cw", eps=0.0)
    with pytest.raises(ValueError, match="eps must be a non-negative"):
        robust_accuracy(kernel_clf, X, y, attack="box", eps=-1.0)
    with pytest.raises(ValueError, match="X must lie inside clip_values"):
        robust_accuracy(kernel_clf, X, y, attack="box", eps=0.1, clip_values=(0, 0.5))
    with pytest.raises(ValueError, match="clip_values must be a pair"):
        generate_adversarial(kernel_clf, X, attack="box", clip_values=(0, 1, 2))
    with pytest.raises(ValueError, match="norm must be one of"):
        robust_accuracy(kernel_clf, X, y, attack="box", eps=0.1, norm=3)
    with pytest.raises(ValueError, match="'pgd' needs a radius eps"):
        generate_adversarial(kernel_clf, X, attack="pgd")
    with pytest.raises(
        TypeError,
        match="cannot use LogisticRegression: it has no method input_jacobian",
    ):
        generate_adversarial(LogisticRegression().fit(X, y), X, attack="deepfool")


def test_art_attacks_check_their_norm(kernel_clf, digits):
    pytest.importorskip("art")
    _, X, _, y = digits
    with pytest.raises(ValueError, match="'deepfool' is an l2 attack"):
        robust_accuracy(kernel_clf, X, y, attack="deepfool", eps=0.1, norm=np.inf)


def test_missing_art_gives_an_install_hint(kernel_clf, digits, monkeypatch):
    _, X, _, y = digits
    monkeypatch.setitem(sys.modules, "art", None)
    with pytest.raises(ImportError, match="pip install adversarial-robustness-tool"):
        robust_accuracy(kernel_clf, X, y, attack="pgd", eps=0.1)
    # The library's own attack needs no extra package.
    assert robust_accuracy(kernel_clf, X, y, attack="box", eps=0.1) > 0
