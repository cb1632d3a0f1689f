"""One-dimensional Gaussian mixtures of log-margins, and their p-values."""

import numpy as np
from scipy.special import ndtr
from sklearn.mixture import GaussianMixture

__all__ = ["fit_mixture_bic", "mixture_pvalue"]

# At most one mixture component per this many samples. With fewer, EM can put
# a component of variance reg_covar on a single point, and BIC rewards it.
_MIN_SAMPLES_PER_COMPONENT = 5


def mixture_pvalue(log_margin, weights, means, stds, *, tail="lower"):
    """Margin p-value of log-margins under a 1-D Gaussian mixture.

    Parameters
    ----------
    log_margin : array-like of shape (n_samples,)
        ``log mu(x)``; ``-inf`` for a zero margin.
    weights : array-like of shape (n_components,)
        Mixture weights ``w_i``, summing to 1.
    means : array-like of shape (n_components,)
        Component means ``m_i``.
    stds : array-like of shape (n_components,)
        Component standard deviations ``s_i > 0``.
    tail : {"lower", "two_sided"}, default="lower"
        ``"lower"``: the mixture's CDF ``sum_i w_i Phi((log mu - m_i) / s_i)``;
        ``"two_sided"``: ``sum_i w_i (1 - Phi(|log mu - m_i| / s_i))`` as
        printed in Section V (see :class:`MarginPValueDetector`, Notes).

    Returns
    -------
    pvalue : ndarray of shape (n_samples,)
        In [0, 1] (``"lower"``) or [0, 1/2] (``"two_sided"``); 0 at ``-inf``.

    Examples
    --------
    >>> from sk_margin.detector import mixture_pvalue
    >>> mixture_pvalue([0.0, -float("inf")], [1.0], [0.0], [1.0])
    array([0.5, 0. ])
    """
    if tail not in ("lower", "two_sided"):
        raise ValueError(f"tail must be 'lower' or 'two_sided', got {tail!r}.")
    z = np.asarray(log_margin, dtype=np.float64).reshape(-1, 1)
    w, m, s = (np.asarray(a, dtype=np.float64).ravel() for a in (weights, means, stds))
    t = (z - m) / s
    # ndtr(-|t|) is 1 - Phi(|t|) without the cancellation in the upper tail.
    return (ndtr(t) if tail == "lower" else ndtr(-np.abs(t))) @ w


def fit_mixture_bic(log_margin, *, max_components=5, reg_covar=1e-6, random_state=None):
    """Fit a Gaussian mixture whose number of components minimises BIC.

    EM fits ``1, ..., k_max`` components and the smallest BIC wins (the first
    on ties), with ``k_max = min(max_components, n_distinct, max(1, n // 5))``
    (``n_distinct`` distinct rows).

    Parameters
    ----------
    log_margin : array-like of shape (n_samples,) or (n_samples, n_features)
        Finite log-margins, at least one; or rows of features (full
        covariances), as for the detector's representation models.
    max_components : int, default=5
        Largest number of components tried.
    reg_covar : float, default=1e-6
        Added to every variance (the diagonal of every covariance): a single
        sample or constant values give one component of variance
        ``reg_covar``.
    random_state : int, RandomState instance or None, default=None
        Seeds the k-means++ initialisation of EM.

    Returns
    -------
    mixture : sklearn.mixture.GaussianMixture
        The fitted mixture of smallest BIC.
    """
    z = np.asarray(log_margin, dtype=np.float64)
    z = z.reshape(-1, 1) if z.ndim < 2 else z.reshape(len(z), -1)
    n = z.shape[0]
    if n == 0 or not np.isfinite(z).all():
        raise ValueError(f"log_margin must be non-empty and finite; got {n} values.")
    n_distinct = len(np.unique(z, axis=0))
    n_max = min(max_components, n_distinct, n // _MIN_SAMPLES_PER_COMPONENT)
    if n == 1:  # GaussianMixture needs 2 samples; a duplicate has the same MLE
        z = np.repeat(z, 2, axis=0)
    best, best_bic = None, np.inf
    for k in range(1, max(1, n_max) + 1):
        mixture = GaussianMixture(
            k, reg_covar=reg_covar, init_params="k-means++", random_state=random_state
        ).fit(z)
        bic = mixture.bic(z)
        if best is None or bic < best_bic:
            best, best_bic = mixture, bic
    return best


def _mixture_params(mixture):
    """Weights, means and standard deviations of a fitted 1-D mixture."""
    cov = mixture.covariances_.reshape(-1)
    return mixture.weights_, mixture.means_[:, 0], np.sqrt(cov)
