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

import copy
import functools
import numbers

import numpy as np
from scipy.special import softmax
from sklearn.pipeline import Pipeline
from sklearn.utils import check_array

from sk_margin.attacks._box import _label_indices, box_constrained_attack
from sk_margin.attacks._box_perturbation import _check_p

__all__ = ["ATTACKS", "generate_adversarial"]

#: Attacks known by name. ``"fgsm"`` and ``"pgd"`` search the ball of radius
#: ``eps``; the others look for a small, ideally minimal, perturbation.
ATTACKS = ("fgsm", "pgd", "deepfool", "carlini_wagner", "box")
BUDGET_ATTACKS = ("fgsm", "pgd")

_INSTALL_HINT = (
    "needs the Adversarial Robustness Toolbox: pip install "
    "adversarial-robustness-toolbox (or pip install sk_margin[attacks]). "
    "attack='box' needs no extra package."
)


def _import_art(attack):
    try:
        import art  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"attack={attack!r} {_INSTALL_HINT}") from exc


def _scores(scores_fn, x):
    """Scores of shape (n, K); a binary 1-D output ``s`` becomes ``[0, s]``."""
    s = np.asarray(scores_fn(x), dtype=np.float64)
    return np.stack([np.zeros_like(s), s], axis=1) if s.ndim == 1 else s


def _jacobian(jacobian_fn, x):
    """Input gradients of shape (n, K) + sample shape; binary ``J`` -> ``[0, J]``."""
    jac = np.asarray(jacobian_fn(x), dtype=np.float64)
    if jac.shape == x.shape:
        jac = np.stack([np.zeros_like(jac), jac], axis=1)
    return jac


@functools.cache
def _scores_classifier_class():
    """The ART classifier around numpy score and Jacobian callables (built once)."""
    from art.estimators.classification.classifier import (
        ClassGradientsMixin,
        ClassifierMixin,
    )
    from art.estimators.estimator import BaseEstimator, LossGradientsMixin

    class ScoresClassifier(
        ClassGradientsMixin, ClassifierMixin, LossGradientsMixin, BaseEstimator
    ):
        """Scores ``f(x)`` as logits, ``grad f`` as class gradients (float64)."""

        estimator_params = (
            BaseEstimator.estimator_params + ClassifierMixin.estimator_params
        )

        def __init__(self, scores_fn, jacobian_fn, input_shape, n_classes, clip):
            super().__init__(model=None, clip_values=clip, preprocessing=None)
            self._scores_fn, self._jacobian_fn = scores_fn, jacobian_fn
            self._input_shape = tuple(input_shape)
            self.nb_classes = int(n_classes)

        @property
        def input_shape(self):
            return self._input_shape

        def predict(self, x, batch_size=128, **kwargs):
            return _scores(self._scores_fn, x)

        def class_gradient(self, x, label=None, **kwargs):
            jac = _jacobian(self._jacobian_fn, x)
            if label is None:
                return jac
            label = np.broadcast_to(np.asarray(label, dtype=np.intp), (len(x),))
            return jac[np.arange(len(x)), label][:, None]

        def loss_gradient(self, x, y, **kwargs):
            """Gradient of the cross-entropy ``-log softmax(f(x))_y`` in ``x``."""
            y = np.asarray(y)
            if y.ndim == 1:
                y = np.eye(self.nb_classes)[y.astype(np.intp)]
            residual = softmax(self.predict(x), axis=1) - y
            grad = np.einsum(
                "nk,nk...->n...", residual, _jacobian(self._jacobian_fn, x)
            )
            return grad.astype(x.dtype, copy=False)

        def fit(self, x, y, **kwargs):
            raise NotImplementedError(
                "Fit the scikit-learn estimator, not its adapter."
            )

    return ScoresClassifier


def _resolve(model):
    """``(scores_fn, jacobian_fn, classes)`` of a model or pair, or raise."""
    if isinstance(model, tuple) and len(model) == 2 and all(map(callable, model)):
        return model[0], model[1], None
    methods = ("decision_function", "input_jacobian")
    if not all(callable(getattr(model, m, None)) for m in methods):
        raise TypeError(
            f"Cannot attack {type(model).__name__}: it has neither a torch module "
            "module_ nor decision_function(X) and input_jacobian(X), and is not a "
            "pair of callables (scores_fn, jacobian_fn)."
        )
    return (
        model.decision_function,
        model.input_jacobian,
        getattr(model, "classes_", None),
    )


def _art_classifier(model, X, n_classes, clip, unit_box=None):
    """ART classifier: PyTorchClassifier for a torch ``module_``, else numpy.

    With ``unit_box=(lo, width)``, its input is ``z = (x - lo) / width`` in
    ``[0, 1]``: the model sees ``lo + width * z``.
    """
    module = getattr(model, "module_", None)
    if module is not None and hasattr(module, "parameters"):
        import torch
        from art.estimators.classification import PyTorchClassifier

        kwargs = {"clip_values": clip}
        if unit_box is not None:  # ART feeds the model (z - mean) / std
            lo, width = (np.broadcast_to(a, X.shape[1:]) for a in unit_box)
            mean, std = -lo / width, 1.0 / width
            kwargs = {"clip_values": (0.0, 1.0), "preprocessing": (mean, std)}
        return PyTorchClassifier(
            model=copy.deepcopy(module).float().eval().cpu(),
            loss=torch.nn.CrossEntropyLoss(),
            input_shape=X.shape[1:],
            nb_classes=n_classes,
            device_type="cpu",
            **kwargs,
        )
    scores_fn, jacobian_fn, _ = _resolve(model)
    if unit_box is not None:
        lo, width = unit_box
        scores_fn = functools.partial(_at, scores_fn, lo, width, None)
        jacobian_fn = functools.partial(_at, jacobian_fn, lo, width, width)
        clip = (0.0, 1.0)
    cls = _scores_classifier_class()
    return cls(scores_fn, jacobian_fn, X.shape[1:], n_classes, clip)


def _at(fn, lo, width, factor, Z):
    """``fn(lo + width * Z)``, times ``factor`` (the chain rule) unless None."""
    out = np.asarray(fn(lo + width * Z), dtype=np.float64)
    return out if factor is None else out * factor


def _art_attack(attack, classifier, eps, p, params):
    """An ART attack by name, with defaults that the user's ``params`` override."""
    from art.attacks.evasion import (
        CarliniL2Method,
        DeepFool,
        FastGradientMethod,
        ProjectedGradientDescent,
    )

    if attack in ("deepfool", "carlini_wagner") and p != 2:
        raise ValueError(f"attack={attack!r} is an l2 attack; got norm={p!r}.")
    common = {"batch_size": 256}
    if attack == "fgsm":
        return FastGradientMethod(
            classifier, **{**common, "norm": p, "eps": eps, **params}
        )
    if attack == "pgd":
        max_iter = params.get("max_iter", 100)
        defaults = {"norm": p, "eps": eps, "max_iter": max_iter, "verbose": False}
        defaults["eps_step"] = 2.5 * eps / max_iter  # Madry et al.'s rule
        return ProjectedGradientDescent(classifier, **{**common, **defaults, **params})
    if attack == "deepfool":
        defaults = {"max_iter": 100, "epsilon": 0.02, "verbose": False}
        return DeepFool(classifier, **{**common, **defaults, **params})
    return CarliniL2Method(classifier, **{**common, "verbose": False, **params})


def _check_clip(clip_values, X):
    """``(lo, hi)`` as float64 arrays broadcastable to a sample, X inside; or None."""
    if clip_values is None:
        return None
    try:
        lo, hi = (np.asarray(b, dtype=np.float64) for b in clip_values)
        lo, hi = np.broadcast_to(lo, X.shape[1:]), np.broadcast_to(hi, X.shape[1:])
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "clip_values must be a pair (lo, hi) of scalars or arrays of the shape "
            f"of one sample {X.shape[1:]}, got {clip_values!r}."
        ) from exc
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi)) and np.all(lo < hi)):
        raise ValueError("clip_values must be finite with lo < hi for every feature.")
    outside = np.any((X < lo) | (X > hi), axis=tuple(range(1, X.ndim)))
    if outside.any():
        raise ValueError(
            f"X must lie inside clip_values; {outside.sum()} row(s) lie outside, "
            f"e.g. rows {np.flatnonzero(outside)[:10].tolist()}."
        )
    return lo, hi


def _wide_box(X, reach):
    """A box around X that no perturbation of norm <= reach can leave."""
    span = float(np.ptp(X)) if X.size else 1.0
    pad = reach + span + 1.0
    return X.min(axis=0) - pad, X.max(axis=0) + pad


def _row_norms(A, p):
    return np.linalg.norm(A.reshape(len(A), -1), ord=p, axis=1)


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


def _check_attack(attack):
    if not (callable(attack) or attack in ATTACKS):
        raise ValueError(
            f"attack must be one of {ATTACKS} or a callable, got {attack!r}."
        )


def _check_eps(eps):
    """``eps`` as a 1-D float array, and whether it was a scalar."""
    arr = np.asarray(eps, dtype=np.float64)
    if arr.ndim > 1 or arr.size == 0 or not np.all(arr >= 0):
        raise ValueError(
            "eps must be a non-negative number or a non-empty 1-D array of them, "
            f"got {eps!r}."
        )
    return arr.reshape(-1), arr.ndim == 0


class _PipelineModel:
    """A fitted Pipeline seen from its input: its scores and input Jacobian.

    The steps before the final one are one map ``T``, whose Jacobian is
    measured once by finite differences around the mean of ``X``: exactly for
    affine steps (scalers, PCA), as a linearisation for others (the attack
    is then weaker, never unsound: its points are judged by ``predict``).
    """

    def __init__(self, pipeline, X):
        self._prefix, self._final = pipeline[:-1], pipeline[-1]
        _resolve(self._final)
        self.classes_ = pipeline.classes_
        self.decision_function = pipeline.decision_function
        base = X.mean(axis=0)
        step = 1e-3 * np.where(np.ptp(X, axis=0) > 0, np.ptp(X, axis=0), 1.0)
        moved = self._prefix.transform(np.vstack([base, base + np.diag(step)]))
        self._jac = ((moved[1:] - moved[0]) / step[:, None]).T  # (d_out, d_in)

    def input_jacobian(self, X):
        return self._final.input_jacobian(self._prefix.transform(X)) @ self._jac


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
    p = _check_p(norm)
    X = check_array(X, allow_nd=True, dtype=np.float64, input_name="X")
    clip = _check_clip(clip_values, X)
    if isinstance(model, Pipeline):
        model = _PipelineModel(model, X) if len(model) > 1 else model[-1]
    if getattr(model, "module_", None) is None:
        _resolve(model)  # a clear TypeError now for a model that cannot be attacked
    _check_attack(attack)
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
    _import_art(attack)
    classes = getattr(model, "classes_", None)
    if classes is not None:
        n_classes = len(classes)
    else:
        n_classes = _scores(_resolve(model)[0], X[:1]).shape[1]
    X_art, unit_box, art_clip = X, None, clip
    if attack == "deepfool" and clip is not None:
        # ART's DeepFool multiplies its steps by the box width: attack in the
        # unit box z = (x - lo) / width, where its steps are the plain ones.
        unit_box = (clip[0], clip[1] - clip[0])
        X_art = (X - unit_box[0]) / unit_box[1]
    elif attack == "carlini_wagner" and clip is None:
        art_clip = _wide_box(X, 0.0)  # it optimises in tanh space: needs a box
    classifier = _art_classifier(model, X, n_classes, art_clip, unit_box)
    if callable(attack):
        art_attack = attack(classifier, **attack_params)
    else:
        art_attack = _art_attack(
            attack, classifier, float(eps or 0.0), p, attack_params
        )
    y_onehot = None
    if y is not None:
        y_onehot = np.eye(n_classes)[_label_indices(y, classes, len(X), n_classes)]
    X_adv = art_attack.generate(X_art.astype(np.float32), y=y_onehot)
    X_adv = X_adv.astype(np.float64)
    if unit_box is not None:
        X_adv = unit_box[0] + unit_box[1] * X_adv
    return X_adv if clip is None else np.clip(X_adv, *clip)
