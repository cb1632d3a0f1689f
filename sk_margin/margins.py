"""Margin formulas shared by every estimator.

All functions are pure: they take decision scores (never probabilities) and,
where needed, input gradients, and return margins per sample. The runner-up
class is always found by masking the predicted class *by index*, so a tie
between the two top scores gives a margin of exactly 0.
"""

import numpy as np

__all__ = [
    "first_order_margin",
    "label_margin",
    "logit_margin",
    "pairwise_lipschitz_margin",
    "score_gaps",
    "signed_margin",
]


def _check_scores(scores):
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2 or scores.shape[1] < 2:
        raise ValueError(
            "scores must be a 2-D array of shape (n_samples, n_classes) with "
            f"n_classes >= 2, got an array of shape {scores.shape}."
        )
    return scores


def score_gaps(scores, reference=None):
    """Differences ``f_c(x) - f_j(x)`` to every class, with class ``c`` masked.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores (logits).
    reference : array-like of shape (n_samples,) of int, default=None
        Column index ``c`` of the reference class per sample; the predicted
        class (``argmax``) when None.

    Returns
    -------
    gaps : ndarray of shape (n_samples, n_classes)
        ``scores[i, c_i] - scores[i, j]``, with ``+inf`` at ``j = c_i`` so that
        a minimum over the row runs over ``j != c_i`` only.
    reference : ndarray of shape (n_samples,)
        The reference class indices used.
    """
    scores = _check_scores(scores)
    n = scores.shape[0]
    if reference is None:
        reference = np.argmax(scores, axis=1)
    reference = np.asarray(reference, dtype=np.intp)
    rows = np.arange(n)
    gaps = scores[rows, reference][:, None] - scores
    gaps[rows, reference] = np.inf
    return gaps, reference


def logit_margin(scores):
    """Logit margin of the predicted class.

    ``mu(x) = f_c(x) - max_{i != c} f_i(x)`` with ``c = argmax_j f_j(x)``
    (Kesidis, Miller & Xiang, eq. 2). It is non-negative, and 0 exactly
    when the two top scores tie.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores (logits).

    Returns
    -------
    margin : ndarray of shape (n_samples,)
        Non-negative logit margins.

    Examples
    --------
    >>> from sk_margin.margins import logit_margin
    >>> logit_margin([[2.0, 0.5, -1.0], [1.0, 1.0, 0.0]])
    array([1.5, 0. ])
    """
    gaps, _ = score_gaps(scores)
    return gaps.min(axis=1)


def signed_margin(scores, y):
    """Signed margin of the true class.

    ``f_y(x) - max_{i != y} f_i(x)``: positive when ``x`` is classified
    correctly with a unique top score, negative when it is misclassified
    (Kesidis, Miller & Xiang, eq. 2, with the label in place of the
    prediction).

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores (logits).
    y : array-like of shape (n_samples,) of int
        Column index of the true class of each sample.

    Returns
    -------
    margin : ndarray of shape (n_samples,)
        Signed margins, negative for misclassified samples.
    """
    scores = _check_scores(scores)
    y = np.asarray(y)
    if y.shape != (scores.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "y must hold one integer column index per row of scores, got an "
            f"array of shape {y.shape} and dtype {y.dtype}."
        )
    if y.size and (y.min() < 0 or y.max() >= scores.shape[1]):
        raise ValueError(f"y holds column indices outside [0, {scores.shape[1] - 1}].")
    gaps, _ = score_gaps(scores, reference=y)
    return gaps.min(axis=1)


def first_order_margin(scores, jacobian, *, q=2):
    """Linearised input-space margin.

    ``min_{j != c} (f_c(x) - f_j(x)) / ||grad f_c(x) - grad f_j(x)||_q``: the
    distance, in the dual norm of ``q``, to the decision boundary of the
    first-order Taylor model of the classifier at ``x`` (Hein & Andriushchenko,
    Theorem 2.1 with the local constant replaced by its value at ``x``;
    Matyasko & Chau's first-order margin). It is exact for linear classifiers
    and an *estimate*, not a certificate, for nonlinear ones.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores (logits).
    jacobian : array-like of shape (n_samples, n_classes, n_features)
        Input gradients of each score.
    q : {1, 2, inf}, default=2
        Norm of the gradient differences (dual to the perturbation's norm).

    Returns
    -------
    margin : ndarray of shape (n_samples,)
        0 for tied top scores; ``inf`` where all gradient differences vanish.
    """
    gaps, c = score_gaps(scores)
    jacobian = np.asarray(jacobian, dtype=np.float64)
    if jacobian.ndim != 3 or jacobian.shape[:2] != gaps.shape:
        raise ValueError(
            "jacobian must have shape (n_samples, n_classes, n_features) = "
            f"({gaps.shape[0]}, {gaps.shape[1]}, d), got {jacobian.shape}."
        )
    diff = jacobian[np.arange(len(c)), c][:, None, :] - jacobian
    norms = np.linalg.norm(diff, ord=q, axis=2)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(gaps <= 0, 0.0, gaps / norms)
    ratio[np.arange(len(c)), c] = np.inf
    return ratio.min(axis=1)


def label_margin(scores, classes, y=None):
    """Margins of a classifier's scores, by prediction or by true label.

    The shared implementation of the estimators' ``margins(X, y=None)``:
    :func:`logit_margin` without labels, :func:`signed_margin` of the labels
    (looked up in ``classes``) with them.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores, columns in ``classes`` order.
    classes : ndarray of shape (n_classes,)
        Sorted class labels of the estimator.
    y : array-like of shape (n_samples,), default=None
        True labels.

    Returns
    -------
    margin : ndarray of shape (n_samples,)
        Non-negative margins of the predictions, or signed margins of ``y``.
    """
    if y is None:
        return logit_margin(scores)
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"y must be 1-D, got an array of shape {y.shape}.")
    known = np.isin(y, classes)
    if not known.all():
        raise ValueError(
            f"y contains labels not seen in fit: {np.unique(y[~known])[:10]}; "
            f"expected labels among {classes}."
        )
    return signed_margin(scores, np.searchsorted(classes, y))


def pairwise_lipschitz_margin(scores, y, pair_lipschitz):
    """Signed input-space margin ``min_{j != y} (f_y - f_j) / L_yj`` of the label.

    With ``L_yj`` an upper bound of the Lipschitz constant of ``f_y - f_j``,
    a positive value is a lower bound of the l2 distance of a correctly
    classified ``x`` to the decision boundary (Hein & Andriushchenko 2017,
    Theorem 2.1); negative values measure misclassified samples the same way.
    This is the "Lipschitz-bound distance" whose minimum and average Wu & Yu
    (Theorem 3, Section 2) track.

    Parameters
    ----------
    scores : array-like of shape (n_samples, n_classes)
        Decision scores.
    y : array-like of shape (n_samples,)
        True classes as indices into the columns.
    pair_lipschitz : array-like of shape (n_classes, n_classes)
        ``L[c, j]``, upper bounds of the Lipschitz constants of ``f_c - f_j``.

    Returns
    -------
    margin : ndarray of shape (n_samples,)
        A zero bound ``L[y, j]`` means ``f_y - f_j`` is constant: class ``j``
        can never overtake (``+inf``) or be overtaken (``-inf``); a tie is 0.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_margin.margins import pairwise_lipschitz_margin
    >>> pairwise_lipschitz_margin([[3.0, 1.0]], [1], [[0.0, 4.0], [4.0, 0.0]])
    array([-0.5])
    """
    gaps, y = score_gaps(scores, reference=y)
    lip = np.asarray(pair_lipschitz, dtype=np.float64)[y]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = gaps / lip
    ratio[gaps == 0] = 0.0
    ratio[np.arange(len(y)), y] = np.inf
    return ratio.min(axis=1)
