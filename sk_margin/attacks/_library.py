"""Adversarial examples by name, from ART or the library's box-constrained attack.

:func:`generate_adversarial` runs an evasion attack of the Adversarial
Robustness Toolbox (ART, an optional dependency imported on first use) or the
library's own :func:`~sk_margin.attacks.box_constrained_attack` (no ART) on a
fitted model:

* an estimator exposing a torch module ``module_`` that outputs logits (such
  as :class:`~sk_margin.nets.MarginNetClassifier`) is attacked through ART's
  ``PyTorchClassifier`` on a float32, eval-mode copy of the module;
* any other model, an object with ``decision_function`` and
  ``input_jacobian`` (such as :class:`~sk_margin.kernel.MarginKernelLogReg`)
  or a pair of callables ``(scores_fn, jacobian_fn)``, is attacked through a
  small ART classifier that returns those scores and input gradients;
* a Pipeline ending in either is attacked in its own input space.

:func:`sk_margin.metrics.robust_accuracy` and
:func:`sk_margin.metrics.relative_robustness` judge the returned points with
the estimator's own ``predict``.
"""

import numbers

import numpy as np
from sklearn.utils import check_array

from sk_margin._pipeline import input_space_model
from sk_margin._validation import (
    as_score_columns,
    check_attack,
    check_clip_values,
    check_norm,
    label_indices,
    score_functions,
)
from sk_margin.attacks._art import art_attack, art_classifier, import_art
from sk_margin.attacks._box import box_constrained_attack

__all__ = ["ATTACKS", "BUDGET_ATTACKS", "generate_adversarial", "project_to_ball"]

#: Attacks known by name. ``"fgsm"`` and ``"pgd"`` search the ball of radius
#: ``eps``; the others look for a small, ideally minimal, perturbation.
ATTACKS = ("fgsm", "pgd", "deepfool", "carlini_wagner", "box")
#: The attacks of :data:`ATTACKS` that search a ball of a given radius ``eps``.
BUDGET_ATTACKS = ("fgsm", "pgd")
# What generate_adversarial can attack, for its error message.
_ATTACKABLE = (
    "a torch module module_, or decision_function(X) and input_jacobian(X), or "
    "it must be a pair of callables (scores_fn, jacobian_fn)"
)


def _row_norms(A, p):
    """``||A[i]||_p`` of every row (sample) of ``A``, whatever its shape."""
    return np.linalg.norm(A.reshape(len(A), -1), ord=p, axis=1)


def project_to_ball(X, X_adv, eps, *, norm=2, clip_values=None):
    """Pull attacked points into the closed ball ``||X_adv - X|| <= eps``, then the box.

    Parameters
    ----------
    X : array-like of shape (n_samples, ...)
        Clean points.
    X_adv : array-like of the shape of X
        Attacked points.
    eps : float
        Radius of the ball, ``>= 0``.
    norm : {1, 2, np.inf, "inf"}, default=2
        Norm of the ball.
    clip_values : tuple (lo, hi) or None, default=None
        Box of valid inputs, which must contain ``X``; None: no box.

    Returns
    -------
    X_eps : ndarray of the shape of X
        Points of the ball (and of the box), float64.

    Notes
    -----
    For l2 and l_inf this is the projection onto the ball; for l1 a
    rescaling of ``X_adv - X`` (a point of the ball, not the closest one).
    Clipping to a box that contains ``X`` then only shrinks every coordinate
    of the change, so the result stays in the ball.

    Examples
    --------
    >>> from sk_margin.attacks import project_to_ball
    >>> project_to_ball([[0.0, 0.0]], [[3.0, 4.0]], 1.0)
    array([[0.6, 0.8]])
    >>> project_to_ball(
    ...     [[0.0, 0.0]], [[3.0, 4.0]], 1.0, norm="inf", clip_values=(0, 0.5)
    ... )
    array([[0.5, 0.5]])
    """
    p = check_norm(norm, "norm")
    X = check_array(X, allow_nd=True, dtype=np.float64, input_name="X")
    X_adv = check_array(X_adv, allow_nd=True, dtype=np.float64, input_name="X_adv")
    if X_adv.shape != X.shape:
        raise ValueError(
            f"X_adv must have the shape of X {X.shape}, got {X_adv.shape}."
        )
    if not (isinstance(eps, numbers.Real) and eps >= 0):
        raise ValueError(f"eps must be a non-negative number, got {eps!r}.")
    return _project(X, X_adv, float(eps), p, check_clip_values(clip_values, X))


def _project(X, X_adv, eps, p, clip):
    """Pull ``X_adv`` into the closed ball ``||X_adv - X||_p <= eps``, then the box.

    l2 and l_inf: the projection; l1: a rescaling of ``X_adv - X``. Clipping
    to a box that contains X then only shrinks every coordinate of the change.
    """
    delta = X_adv - X
    if p == np.inf:
        delta = np.clip(delta, -eps, eps)
    else:
        norms = _row_norms(delta, p)
        with np.errstate(divide="ignore", invalid="ignore"):
            factor = np.where(norms > eps, eps / norms, 1.0)
        delta = delta * factor.reshape((-1,) + (1,) * (X.ndim - 1))
    return X + delta if clip is None else np.clip(X + delta, *clip)


def _wide_box(X, reach):
    """A box around X that no perturbation of norm <= reach can leave."""
    span = float(np.ptp(X)) if X.size else 1.0
    pad = reach + span + 1.0
    return X.min(axis=0) - pad, X.max(axis=0) + pad


def generate_adversarial(
    model,
    X,
    y=None,
    *,
    attack="pgd",
    eps=None,
    norm=2,
    clip_values=None,
    **attack_params,
):
    """Adversarial examples of a fitted model, from ART or the box-constrained attack.

    Parameters
    ----------
    model : estimator, Pipeline or tuple of two callables
        A fitted estimator with a torch module ``module_`` that outputs logits
        (attacked with ART's ``PyTorchClassifier``); or one with
        ``decision_function(X)`` and ``input_jacobian(X)`` (such as
        :class:`~sk_margin.kernel.MarginKernelLogReg`); or a Pipeline ending
        in one of those, attacked in its input space (see Notes); or a pair
        ``(scores_fn, jacobian_fn)`` with the same contract as in
        :func:`~sk_margin.attacks.box_constrained_attack`.
    X : array-like of shape (n_samples, ...)
        Points to attack.
    y : array-like of shape (n_samples,), default=None
        True labels, looked up in ``model.classes_`` (column indices of the
        scores when the model has no ``classes_``). None: the predictions.
    attack : str or callable, default="pgd"
        ``"fgsm"`` (Goodfellow et al.) and ``"pgd"`` (Madry et al.) maximise
        the cross-entropy within the ball of radius ``eps``; ``"deepfool"``
        (Moosavi-Dezfooli et al.) and ``"carlini_wagner"`` (the C&W l2 attack)
        look for a minimal l2 perturbation; ``"box"`` is
        :func:`~sk_margin.attacks.box_constrained_attack`. A callable is
        called as ``attack(art_classifier, **attack_params)`` and must return
        an ART evasion attack, e.g. ``functools.partial(
        ProjectedGradientDescent, eps=0.5, norm=2)``.
    eps : float, default=None
        Radius of the ball, required by ``"fgsm"`` and ``"pgd"``; ignored by
        the other attacks.
    norm : {1, 2, np.inf, "inf"}, default=2
        Norm of the perturbation; ``"deepfool"`` and ``"carlini_wagner"`` are
        l2 attacks.
    clip_values : tuple (lo, hi) or None, default=None
        Box of valid inputs (scalars or arrays of the shape of one sample),
        which must contain ``X``. None: unbounded (``"box"`` and
        ``"carlini_wagner"`` then use a box that ``X`` is far inside).
    **attack_params : dict
        Parameters of the attack, overriding the defaults (see Notes).

    Returns
    -------
    X_adv : ndarray of the shape of X
        The attacked points in float64, inside ``clip_values``. They need not
        be adversarial: check with the model's ``predict``.

    Notes
    -----
    Defaults: every ART attack runs with ``batch_size=256`` and without
    progress bars; ``"pgd"`` with ``max_iter=100`` and step
    ``eps_step = 2.5 eps / max_iter`` (Madry et al.); ``"deepfool"`` with
    ``max_iter=100`` and overshoot ``epsilon=0.02`` (ART's ``1e-6`` often
    stops on the boundary). ART's DeepFool multiplies its steps by the width
    ``hi - lo`` of ``clip_values``, so with ``clip_values`` it attacks the
    model in the unit box ``z = (x - lo) / (hi - lo)``, where its steps are
    the plain ones (for a scalar width, exactly DeepFool with clipping in
    ``x``). ART works in float32. A Pipeline is attacked through its
    ``decision_function`` and the chain rule, with the Jacobian of the steps
    before the final one measured once by finite differences: exact for
    affine steps (scalers, PCA), a linearisation for others.

    Examples
    --------
    >>> import numpy as np
    >>> from sk_margin.attacks import generate_adversarial
    >>> w = np.array([1.0, -1.0])
    >>> model = (lambda X: X @ w - 0.1, lambda X: np.tile(w, (len(X), 1)))
    >>> X_adv = generate_adversarial(model, [[0.2, 0.6]], attack="box")
    >>> np.round(X_adv, 4)
    array([[0.45, 0.35]])
    """
    p = check_norm(norm, "norm")
    X = check_array(X, allow_nd=True, dtype=np.float64, input_name="X")
    clip = check_clip_values(clip_values, X)
    if not isinstance(model, tuple):
        model = input_space_model(model, X, "generate_adversarial", _ATTACKABLE)
    if getattr(model, "module_", None) is None:
        # A clear TypeError now for a model that cannot be attacked.
        score_functions(model, "generate_adversarial", _ATTACKABLE)
    check_attack(attack, ATTACKS)
    if attack in BUDGET_ATTACKS:
        if not isinstance(eps, numbers.Real) or not eps >= 0:
            raise ValueError(f"attack={attack!r} needs a radius eps >= 0, got {eps!r}.")
        if eps == 0:
            return X.copy()
    if attack == "box":
        bounds = clip if clip is not None else _wide_box(X, eps or 0.0)
        X_adv, _ = box_constrained_attack(
            model, X, y, p=p, bounds=bounds, **attack_params
        )
        return X_adv
    import_art(attack)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        n_classes = len(classes)
    else:
        n_classes = as_score_columns(
            score_functions(model, "generate_adversarial")[0](X[:1])
        ).shape[1]
    X_art, unit_box, art_clip = X, None, clip
    if attack == "deepfool" and clip is not None:
        # ART's DeepFool multiplies its steps by the box width: attack in the
        # unit box z = (x - lo) / width, where its steps are the plain ones.
        unit_box = (clip[0], clip[1] - clip[0])
        X_art = (X - unit_box[0]) / unit_box[1]
    elif attack == "carlini_wagner" and clip is None:
        art_clip = _wide_box(X, 0.0)  # it optimises in tanh space: needs a box
    classifier = art_classifier(model, X, n_classes, art_clip, unit_box)
    if callable(attack):
        attacker = attack(classifier, **attack_params)
    else:
        attacker = art_attack(attack, classifier, float(eps or 0.0), p, attack_params)
    y_onehot = None
    if y is not None:
        y_onehot = np.eye(n_classes)[label_indices(y, classes, len(X), n_classes)]
    X_adv = attacker.generate(X_art.astype(np.float32), y=y_onehot)
    X_adv = X_adv.astype(np.float64)
    if unit_box is not None:
        X_adv = unit_box[0] + unit_box[1] * X_adv
    return X_adv if clip is None else np.clip(X_adv, *clip)
