"""Class-conditional null models of a representation, and empirical p-values.

The margin p-value cannot see an adversarial input pushed deep into a wrong
class: its margin is large. The input still looks like its true class to a
model of what clean inputs of each class look like, in the input space or in
a layer of the classifier. Following Miller, Wang & Kesidis (ADA, 2019), who
model the class-conditional densities of internal activations with mixtures,
a representation ``z(x)`` is reduced to its leading principal components and
each class ``k`` gets a Gaussian mixture ``p_k`` (BIC order, full
covariances) of the components of its clean samples. The statistic of an
input predicted as ``c`` is the log-posterior of ``c`` under these densities,

    ``log pi_c + log p_c(z) - log sum_k pi_k p_k(z)``,

``pi_k`` the class shares: small when the input looks more like another
class than like the one it is classified as, which is what an adversarial
example of a digit still does. Its p-value is read off held-out clean
statistics (:class:`EmpiricalPValues`), so no density needs to fit well for
the false-positive promise to hold.
"""

import numpy as np
from scipy.special import logsumexp
from sklearn.decomposition import PCA
from sklearn.utils import check_random_state

from sk_margin.detector._mixture import fit_mixture_bic

# Added to every variance of the components, relative to the largest one:
# a class with fewer samples than components keeps a proper density.
REPRESENTATION_REG_COVAR = 1e-3
# A class's own reference needs this many held-out statistics; with fewer,
# its p-values come from the statistics of all classes.
MIN_CLASS_REFERENCE = 20


class ClassConditionalDensity:
    """Per-class Gaussian mixtures of the principal components of a representation.

    Parameters
    ----------
    n_dims : int
        Largest number of principal components kept.
    max_components : int
        Largest number of mixture components per class (BIC chooses).
    random_state : int, RandomState instance or None
        Seeds the PCA solver and EM.
    """

    def __init__(self, n_dims, max_components, random_state):
        self.n_dims = n_dims
        self.max_components = max_components
        self.random_state = random_state

    def fit(self, Z, labels, n_classes):
        """Fit the components on ``Z`` and one mixture per class present.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_units)
            Representations of clean samples.
        labels : ndarray of shape (n_samples,)
            Their class indices, in ``[0, n_classes)``.
        n_classes : int
            Number of classes.

        Returns
        -------
        self
        """
        Z = np.asarray(Z, dtype=np.float64)
        Z = Z.reshape(len(Z), int(np.prod(Z.shape[1:])))
        rng = check_random_state(self.random_state)
        n, d = Z.shape
        k = max(1, min(self.n_dims, d, n - 1))
        seed = rng.randint(np.iinfo(np.int32).max)
        self.pca_ = PCA(k, random_state=seed).fit(Z) if n > 1 else None
        W = self._components(Z)
        largest = float(W.var(axis=0).max()) if n > 1 else 0.0
        reg = REPRESENTATION_REG_COVAR * (largest if largest > 0 else 1.0)
        counts = np.bincount(labels, minlength=n_classes)
        # A component of a full-covariance mixture has this many parameters;
        # BIC would not pay for a second one with fewer samples per component.
        dim = W.shape[1]
        per_component = 1 + dim + dim * (dim + 1) // 2
        self.mixtures_ = [
            fit_mixture_bic(
                W[labels == c],
                max_components=max(
                    1, min(self.max_components, counts[c] // per_component)
                ),
                reg_covar=reg,
                random_state=seed,
            )
            if counts[c]
            else None
            for c in range(n_classes)
        ]
        with np.errstate(divide="ignore", invalid="ignore"):
            self.log_prior_ = np.log(counts / max(n, 1))
        return self

    def _components(self, Z):
        Z = np.asarray(Z, dtype=np.float64)
        Z = Z.reshape(len(Z), int(np.prod(Z.shape[1:])))
        return self.pca_.transform(Z) if self.pca_ is not None else Z[:, :1] * 0.0

    def log_posterior(self, Z, pred):
        """``log P(pred | z)`` under the class densities; ``-inf`` for a class
        without a model.

        Parameters
        ----------
        Z : ndarray of shape (n_samples, n_units)
            Representations.
        pred : ndarray of shape (n_samples,)
            Predicted class indices.

        Returns
        -------
        statistic : ndarray of shape (n_samples,)
            Higher means more typical of the predicted class.
        """
        W = self._components(Z)
        joint = np.full((len(W), len(self.mixtures_)), -np.inf)
        for c, mixture in enumerate(self.mixtures_):
            if mixture is not None:
                joint[:, c] = mixture.score_samples(W) + self.log_prior_[c]
        norm = logsumexp(joint, axis=1)
        out = joint[np.arange(len(W)), pred] - norm
        return np.where(np.isfinite(norm), out, -np.inf)


class EmpiricalPValues:
    """P-values of a statistic against held-out clean values, per class.

    The p-value of ``s`` for an input predicted as ``c`` is ``(1 + #{r <=
    s}) / (1 + n_c)`` over the ``n_c`` reference values ``r`` of class ``c``
    (of all classes when ``n_c`` is below :data:`MIN_CLASS_REFERENCE`, or with
    ``per_class=False``): a valid p-value for exchangeable clean inputs,
    whatever the statistic's distribution.

    Parameters
    ----------
    values : ndarray of shape (n_samples,)
        Statistics of held-out clean inputs (higher is more typical).
    pred : ndarray of shape (n_samples,) or None
        Their predicted class indices; None: one class, every value pooled.
    n_classes : int, default=1
        Number of classes.
    per_class : bool, default=True
        One reference per class.
    """

    def __init__(self, values, pred=None, n_classes=1, *, per_class=True):
        values = np.asarray(values, dtype=np.float64)
        pred = np.zeros(len(values), dtype=int) if pred is None else pred
        self.pooled_ = np.sort(values)
        self.by_class_ = [
            np.sort(values[pred == c])
            if per_class and np.sum(pred == c) >= MIN_CLASS_REFERENCE
            else self.pooled_
            for c in range(n_classes)
        ]

    def __call__(self, values, pred=None, *, held_in=False):
        """P-values of ``values`` of inputs predicted as ``pred`` (None: one class).

        With ``held_in``, the values are among the reference values (the
        calibration inputs themselves), each left out of its own reference:
        ``#{r <= s} / n_c`` counting itself once.
        """
        values = np.asarray(values, dtype=np.float64)
        pred = np.zeros(len(values), dtype=int) if pred is None else pred
        out = np.empty(len(values))
        for c, ref in enumerate(self.by_class_):
            rows = pred == c
            if rows.any():
                below = np.searchsorted(ref, values[rows], side="right")
                if held_in:
                    out[rows] = below / max(len(ref), 1)
                else:
                    out[rows] = (1.0 + below) / (1.0 + len(ref))
        return out
