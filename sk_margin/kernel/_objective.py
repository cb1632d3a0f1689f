"""The objective that MarginKernelLogReg minimises, and its whitened basis."""

import numpy as np
from scipy.linalg import eigh

__all__ = ["logreg_objective", "whitening"]


# Eigen-directions of the centre kernel matrix below this fraction of the
# largest eigenvalue are dropped from the whitened basis. They are nearly
# invisible in the features (scale sqrt(s)) but multiply the expansion
# coefficients by up to 1/sqrt(s): kept, they make alpha huge and cancelling,
# which costs accuracy on clustered data and makes every certificate (all of
# which sum |alpha_r| terms) needlessly loose.
_EIG_RCOND = 1e-6


def whitening(K_cc):
    """``W`` with ``W^T K_cc W = I`` on the numerically non-null eigenspace."""
    s, U = eigh(K_cc)
    keep = s > s[-1] * _EIG_RCOND
    return U[:, keep] / np.sqrt(s[keep])


def logreg_objective(
    theta, Phi, y, n_classes, penalty=None, center=False, sample_weight=None
):
    """Mean cross-entropy plus a diagonal quadratic penalty, and its gradient.

    The scores are ``F = Phi G^T + b`` with ``theta = [G.ravel(), b]``; the
    penalty is ``sum_k penalty_k sum_l Gc_lk^2`` where ``Gc`` is ``G``, or
    ``G`` with its class mean removed when ``center`` is True.

    Parameters
    ----------
    theta : ndarray of shape (n_classes * n_basis + n_classes,)
        Flattened coefficients ``G`` (n_classes, n_basis) and intercepts ``b``.
    Phi : ndarray of shape (n_samples, n_basis)
        Kernel features in the optimisation basis, float64 or float32. With
        float32 features the two matrix products run in float32 (twice as
        fast, on half the memory) and everything else in float64.
    y : ndarray of shape (n_samples,) of int
        Class indices.
    n_classes : int
        Number of classes ``K``.
    penalty : ndarray of shape (n_basis,) or None, default=None
        Diagonal penalty weights; None for no penalty.
    center : bool, default=False
        Penalise the class-centred coefficients (Cross-Lipschitz: adding the
        same function to every output changes nothing, eq. 6 and 7).
    sample_weight : ndarray of shape (n_samples,), default=None
        Weights ``w_i``: the mean becomes ``sum_i w_i l_i / sum_i w_i``,
        which for integer weights is the mean over repeated samples.

    Returns
    -------
    value : float
        The objective.
    grad : ndarray of the shape of ``theta``
        Its gradient.
    """
    n, k = Phi.shape
    G = theta[: n_classes * k].reshape(n_classes, k)
    F = Phi @ G.T.astype(Phi.dtype, copy=False)
    F = F.astype(np.float64, copy=False) + theta[n_classes * k :]
    # log-sum-exp by hand: scipy's adds ~0.3 ms of dispatch per call, and the
    # shifted exponentials give the softmax too.
    top = F.max(axis=1, keepdims=True)
    R = np.exp(F - top)
    total = R.sum(axis=1)
    lse = top[:, 0] + np.log(total)
    rows = np.arange(n)
    R /= total[:, None]
    R[rows, y] -= 1.0
    if sample_weight is None:
        value = np.mean(lse - F[rows, y])
        R /= n
    else:
        w = sample_weight / sample_weight.sum()
        value = w @ (lse - F[rows, y])
        R *= w[:, None]
    grad_G = (R.T.astype(Phi.dtype, copy=False) @ Phi).astype(np.float64, copy=False)
    if penalty is not None:
        Gc = G - G.mean(axis=0) if center else G
        weighted = Gc * penalty
        value += np.sum(weighted * Gc)
        grad_G += 2.0 * weighted  # the centring projection is idempotent
    return value, np.concatenate([grad_G.ravel(), R.sum(axis=0)])
