"""Adapters to the Adversarial Robustness Toolbox (ART, an optional dependency).

A model with a torch ``module_`` is attacked through ART's
``PyTorchClassifier``; any other model through a small ART classifier around
its numpy ``decision_function`` and ``input_jacobian``. ART and torch are
imported when an attack runs, never when ``sk_margin`` is imported.
"""

import copy
import functools

import numpy as np
from scipy.special import softmax

from sk_margin._validation import (
    as_jacobian_columns,
    as_score_columns,
    score_functions,
)

_INSTALL_HINT = (
    "needs the Adversarial Robustness Toolbox: pip install "
    "adversarial-robustness-toolbox (or pip install sk_margin[attacks]). "
    "attack='box' needs no extra package."
)


def import_art(attack):
    """Import ART, or raise an ImportError that says how to install it."""
    try:
        import art  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"attack={attack!r} {_INSTALL_HINT}") from exc


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
            return as_score_columns(self._scores_fn(x))

        def class_gradient(self, x, label=None, **kwargs):
            jac = as_jacobian_columns(self._jacobian_fn(x), x.shape)
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
            jac = as_jacobian_columns(self._jacobian_fn(x), x.shape)
            grad = np.einsum("nk,nk...->n...", residual, jac)
            return grad.astype(x.dtype, copy=False)

        def fit(self, x, y, **kwargs):
            raise NotImplementedError(
                "Fit the scikit-learn estimator, not its adapter."
            )

    return ScoresClassifier


def art_classifier(model, X, n_classes, clip, unit_box=None):
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
    scores_fn, jacobian_fn, _ = score_functions(model, "generate_adversarial")
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


def art_attack(attack, classifier, eps, p, params):
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
