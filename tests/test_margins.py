import numpy as np
import pytest
from numpy.testing import assert_allclose

from sk_margin.margins import (
    first_order_margin,
    logit_margin,
    pairwise_lipschitz_margin,
    score_gaps,
    signed_margin,
)


def test_logit_margin_values_and_ties():
    scores = np.array([[3.0, 1.0, -2.0], [0.5, 2.5, 2.0], [1.0, 1.0, 0.0]])
    assert_allclose(logit_margin(scores), [2.0, 0.5, 0.0])


def test_signed_margin_is_negative_when_misclassified():
    scores = np.array([[3.0, 1.0, -2.0], [0.5, 2.5, 2.0]])
    assert_allclose(signed_margin(scores, np.array([0, 0])), [2.0, -2.0])


def test_signed_margin_rejects_out_of_range_labels():
    with pytest.raises(ValueError, match="outside"):
        signed_margin(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer column index"):
        signed_margin(np.zeros((2, 3)), np.array([0.0, 1.0]))


def test_score_gaps_masks_reference_by_index():
    gaps, c = score_gaps(np.array([[1.0, 1.0, 0.0]]))
    assert c[0] == 0
    assert gaps[0, 0] == np.inf
    assert gaps[0, 1] == 0.0  # a tie is a zero gap, not a masked entry


def test_scores_must_be_2d():
    with pytest.raises(ValueError, match="n_classes >= 2"):
        logit_margin(np.zeros(4))


def test_first_order_margin_is_exact_distance_for_linear_models():
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(4, 6)), rng.normal(size=4)
    X = rng.normal(size=(20, 6))
    scores = X @ W.T + b
    jac = np.broadcast_to(W, (20, 4, 6))
    margin = first_order_margin(scores, jac)
    # Independent check: distance to every hyperplane f_c = f_j, by projection.
    c = scores.argmax(1)
    for i in range(20):
        dists = []
        for j in range(4):
            if j == c[i]:
                continue
            w = W[c[i]] - W[j]
            off = b[c[i]] - b[j]
            proj = X[i] - (w @ X[i] + off) / (w @ w) * w
            assert_allclose(w @ proj + off, 0.0, atol=1e-10)
            dists.append(np.linalg.norm(proj - X[i]))
        assert_allclose(margin[i], min(dists), rtol=1e-12)


def test_first_order_margin_l1_dual_norm_and_edge_cases():
    scores = np.array([[2.0, 0.0], [1.0, 1.0], [1.0, 0.0]])
    jac = np.array([[[1.0, 1.0], [0.0, 0.0]], [[1.0, 0], [0, 1]], [[0, 0], [0, 0]]])
    m = first_order_margin(scores, jac, q=1)
    assert_allclose(m, [1.0, 0.0, np.inf])
    with pytest.raises(ValueError, match="jacobian must have shape"):
        first_order_margin(scores, jac[:, :, 0])


def test_pairwise_lipschitz_margin_of_a_linear_model_is_the_signed_distance():
    # For f = W x + b the pair bound ||w_y - w_j|| is exact: the margin is the
    # signed distance to the nearest pairwise boundary of the true class.
    rng = np.random.default_rng(0)
    W, b = rng.standard_normal((3, 2)), rng.standard_normal(3)
    X = rng.standard_normal((20, 2))
    y = rng.integers(0, 3, 20)
    pair = np.linalg.norm(W[:, None] - W[None], axis=2)
    got = pairwise_lipschitz_margin(X @ W.T + b, y, pair)
    for i in range(20):
        dists = [
            (X[i] @ (W[y[i]] - W[j]) + b[y[i]] - b[j]) / pair[y[i], j]
            for j in range(3)
            if j != y[i]
        ]
        assert np.isclose(got[i], min(dists))


def test_pairwise_lipschitz_margin_with_zero_bounds():
    pair = np.zeros((2, 2))
    got = pairwise_lipschitz_margin(
        [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], [0, 0, 0], pair
    )
    np.testing.assert_array_equal(got, [np.inf, -np.inf, 0.0])
