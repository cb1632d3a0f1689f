"""The one way of seeing through a fitted Pipeline (and a FrozenEstimator).

Metrics, attacks, the detector and the Displays all need the estimator at the
end of a (possibly nested, possibly frozen) pipeline and the inputs it sees.
:func:`pipeline_leaves` walks the steps; :func:`final_estimator`,
:func:`prefix_steps` and :func:`transform_prefix` are built on it, and
:class:`InputSpaceModel` gives a pipeline's scores and input gradients in its
own input space.
"""

import numpy as np
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from sk_margin._validation import score_functions


def pipeline_leaves(estimator, path=""):
    """``(name, step)`` of the non-pipeline steps of a (nested) pipeline, in order.

    A :class:`~sklearn.frozen.FrozenEstimator` is opened; an estimator that is
    no pipeline is its own single leaf.
    """
    if isinstance(estimator, FrozenEstimator):
        estimator = estimator.estimator
    if not isinstance(estimator, Pipeline):
        yield path or type(estimator).__name__, estimator
        return
    for name, step in estimator.steps:
        yield from pipeline_leaves(step, f"{path}__{name}" if path else name)


def final_estimator(estimator):
    """The estimator at the end of a (nested, possibly frozen) pipeline."""
    *_, (_, final) = pipeline_leaves(estimator)
    return final


def prefix_steps(estimator):
    """``(name, step)`` of the steps before the final estimator, in order."""
    *prefix, _ = pipeline_leaves(estimator)
    return prefix


def transform_prefix(estimator, X):
    """``X`` as the final estimator of the pipeline sees it."""
    for _, step in prefix_steps(estimator):
        if step is not None and not (isinstance(step, str) and step == "passthrough"):
            X = step.transform(X)
    return X


class InputSpaceModel:
    """A fitted pipeline seen from its input: its scores and input Jacobian.

    The steps before the final estimator are one map ``T``, whose Jacobian is
    measured once by finite differences around the mean of ``X``: exactly for
    affine steps (scalers, PCA), as a linearisation for others (an attack is
    then weaker, never unsound: its points are judged by ``predict``). The
    final estimator needs ``decision_function`` and ``input_jacobian``.
    """

    def __init__(self, estimator, X, caller="InputSpaceModel", needs=None):
        self.final_ = final_estimator(estimator)
        # A clear TypeError now when the final estimator has no input gradients.
        score_functions(self.final_, caller, *(() if needs is None else (needs,)))
        self.estimator_ = estimator
        self.classes_ = getattr(self.final_, "classes_", None)
        base = X.mean(axis=0)
        spread = np.ptp(X, axis=0)
        step = 1e-3 * np.where(spread > 0, spread, 1.0)
        moved = transform_prefix(estimator, np.vstack([base, base + np.diag(step)]))
        self._jac = ((moved[1:] - moved[0]) / step[:, None]).T  # (d_out, d_in)

    def decision_function(self, X):
        return self.final_.decision_function(transform_prefix(self.estimator_, X))

    def input_jacobian(self, X):
        inner = transform_prefix(self.estimator_, X)
        return self.final_.input_jacobian(inner) @ self._jac


def input_space_model(estimator, X, caller="InputSpaceModel", needs=None):
    """``estimator`` itself, or an :class:`InputSpaceModel` when steps precede it.

    ``caller`` and ``needs`` go into the TypeError raised when the final
    estimator has no ``decision_function`` and ``input_jacobian``.
    """
    if not prefix_steps(estimator):
        return final_estimator(estimator)
    return InputSpaceModel(estimator, X, caller, needs)
