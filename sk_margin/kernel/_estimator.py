"""Gaussian-kernel logistic regression with the Cross-Lipschitz regulariser."""

import hashlib
import warnings
from numbers import Integral, Real

import numpy as np
from scipy.linalg import eigh
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics.pairwise import rbf_kernel
from sklearn.neighbors import NearestNeighbors
from sklearn.utils import check_random_state, gen_batches
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)

from sk_margin._threads import limit_scipy_blas
from sk_margin.certify import BISECTION_STEPS
from sk_margin.kernel._certify import certify_gaussian_expansion
from sk_margin.kernel._expansion import (
    cross_lipschitz_gram,
    expansion_rkhs_gram,
    gaussian_expansion_jacobian,
    gaussian_expansion_scores,
)
from sk_margin.kernel._objective import logreg_objective, whitening
from sk_margin.margins import label_margin

__all__ = ["MarginKernelLogReg"]

# At most this many training points are used as queries to estimate the
# nearest-neighbour distance behind gamma="knn".
_KNN_MAX_QUERIES = 1000


# Rows of n x m work arrays computed at a time in fit (at most 32 MB each).
_FIT_BLOCK_ENTRIES = 2**22
# The optimisation's features: the basis, penalty and objective are float64,
# the two n x m matrix products of each L-BFGS iteration float32 (about 1.5x
# faster fits, the same accuracy and about as many iterations; the model's
# coefficients and every certificate are float64) unless tol asks for more
# than float32 products can give (their gradients are accurate to ~1e-7).
_FEATURE_DTYPE = np.float32
_FLOAT32_MIN_TOL = 1e-6


def _kernel_blocks(X, centers, gamma):
    """``rbf_kernel(X, centers)`` computed in blocks of rows, so that its
    temporaries (scikit-learn's holds two ``n x m`` arrays at once) stay small.
    """
    n, m = X.shape[0], centers.shape[0]
    K = np.empty((n, m))
    for rows in gen_batches(n, max(1, _FIT_BLOCK_ENTRIES // max(m, 1))):
        K[rows] = rbf_kernel(X[rows], centers, gamma=gamma)
    return K


def _weighted_knn_distance(X, n_neighbors, weights, rng):
    """The ``"knn"`` rule's mean distance, counting each point ``w`` times.

    For integer weights this is the unweighted rule on the data with every
    row repeated ``w`` times: a query's ``k``-th neighbour is the first whose
    cumulative weight (its own copies included, at distance 0) exceeds
    ``k = min(n_neighbors, sum w - 1)``, and queries are averaged with their
    weights. Beyond ``_KNN_MAX_QUERIES`` rows the queries are a uniform
    subsample, so the equality is then only in expectation.
    """
    n = X.shape[0]
    k = min(n_neighbors, max(int(np.ceil(weights.sum())) - 1, 0))
    queries = np.arange(n)
    if n > _KNN_MAX_QUERIES:
        queries = np.sort(rng.choice(n, _KNN_MAX_QUERIES, replace=False))
    tree = NearestNeighbors().fit(X)
    n_nb = min(n, k + 1)
    while True:
        dist, idx = tree.kneighbors(X[queries], n_neighbors=n_nb)
        cum = np.cumsum(weights[idx], axis=1)
        reached = cum[:, -1] > k
        if reached.all() or n_nb == n:
            break
        n_nb = min(n, 2 * n_nb)
    pos = np.minimum((cum <= k).sum(axis=1), n_nb - 1)
    kth = dist[np.arange(len(queries)), pos]
    rho = np.average(kth, weights=weights[queries])
    if not rho > 0:  # (near-)duplicate points only: fall back to any spread
        spread = dist[dist > 0]
        rho = spread.mean() if spread.size else 1.0
    return rho


def _transform_in_place(K, W, dtype=np.float64):
    """``K @ W`` in ``dtype``, written over the memory of ``K``.

    ``K`` is float64 and ``W`` has at most as many columns as ``K``. Block
    ``[a, b)`` of rows is read from bytes ``8 a m .. 8 b m`` of ``K``'s buffer
    and written to ``s a k .. s b k`` (``k <= m`` columns of ``s <= 8``
    bytes), so a write never reaches rows not yet read. Returns a
    C-contiguous ``(n, k)`` view of that buffer.
    """
    n, m = K.shape
    k = W.shape[1]
    flat = K.reshape(-1).view(np.uint8).view(dtype)
    for rows in gen_batches(n, max(1, _FIT_BLOCK_ENTRIES // max(m, 1))):
        block = K[rows] @ W
        flat[rows.start * k : rows.stop * k] = block.reshape(-1)
    return flat[: n * k].reshape(n, k)


class MarginKernelLogReg(ClassifierMixin, BaseEstimator):
    """Gaussian-kernel logistic regression with Cross-Lipschitz regularisation.

    A multi-class kernel classifier ``f_j(x) = sum_r alpha_jr k(c_r, x) + b_j``
    with ``k(x, y) = exp(-gamma ||x - y||^2)``, fitted by minimising the mean
    cross-entropy plus ``lam * Omega(f)`` with L-BFGS (Hein & Andriushchenko
    2017, eq. 7), and able to certify, per input, an l2 radius within which
    its decision cannot change (:meth:`certify`).

    Parameters
    ----------
    lam : float, default=1e-2
        Regularisation strength ``lambda`` of eq. 7 (ignored when
        ``regularizer="none"``).
    regularizer : {"cross_lipschitz", "rkhs", "none"}, default="cross_lipschitz"
        ``"cross_lipschitz"``: ``Omega(f) = 1/(n K^2) sum_i sum_{l,m}
        ||grad f_l(x_i) - grad f_m(x_i)||^2`` (eq. 6) over the training
        points; ``"rkhs"``: ``sum_l alpha_l^T K alpha_l``, the squared RKHS
        norm (the Kernel-LogReg baseline); ``"none"``: no regularisation.
    gamma : float or "knn", default="knn"
        Kernel width. ``"knn"`` sets ``gamma = gamma_scale / rho^2`` with
        ``rho`` the mean distance of a training point to its
        ``n_neighbors``-th nearest neighbour, as in the paper's Section 5.
    gamma_scale : float, default=1.0
        The factor ``alpha`` of the ``"knn"`` rule (the paper searches
        ``{0.5, 1, 2, 4}``); ignored when ``gamma`` is a float.
    n_neighbors : int, default=40
        Neighbour rank used by ``gamma="knn"`` (capped at ``n_samples - 1``).
    n_centers : int or None, default=None
        None: every distinct training point is a kernel centre (as in the
        paper). An int: that many centres drawn at random from the training
        set (all of them when ``n_centers >= n_samples``), so the cost grows
        as ``n * n_centers`` instead of ``n^2``.
    max_iter : int, default=1000
        Maximum number of L-BFGS iterations.
    tol : float, default=1e-4
        L-BFGS stops when the largest component of the projected gradient is
        below ``tol`` (scikit-learn's convention, as in ``LogisticRegression``).
        From ``1e-6`` up, the objective's matrix products run in float32
        (see Notes); below, in float64.
    random_state : int, RandomState instance or None, default=None
        Draws the centres and the queries of the ``"knn"`` rule.
    verbose : int, default=0
        Print the objective every ``max(1, 50 // verbose)`` iterations of
        ``fit``, and show a progress bar (tqdm) in :meth:`certify`.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    centers_ : ndarray of shape (n_centers, n_features)
        Kernel centres ``c_r``.
    dual_coef_ : ndarray of shape (n_classes, n_centers)
        Expansion coefficients ``alpha``.
    intercept_ : ndarray of shape (n_classes,)
        Offsets ``b``.
    gamma_ : float
        Kernel width used.
    n_iter_ : int
        Number of L-BFGS iterations run.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when ``X`` has string column names.

    Notes
    -----
    The Cross-Lipschitz term is a fixed quadratic form in ``alpha``: with
    ``g_l(x_i) = grad f_l(x_i)`` and the identity
    ``sum_{l,m} ||g_l - g_m||^2 = 2K sum_l ||g_l - mean_m g_m||^2``,
    ``Omega = 2/(n K) tr(A_c Q A_c^T)`` where ``A_c`` is ``alpha`` with its
    class mean removed and ``Q`` the input-gradient Gram matrix of
    :func:`cross_lipschitz_gram`, computed once before the optimisation.
    L-BFGS runs in the whitened (Nystroem) basis ``alpha = W beta`` with
    ``W^T K_cc W = I``, where the RKHS norm is ``||beta||^2``, rotated so that
    the Cross-Lipschitz form is diagonal and scaled by the curvature of each
    direction: a diagonal preconditioning that leaves the problem unchanged.
    One iteration costs what one iteration of ``LogisticRegression`` on
    Nystroem features costs, and about as many are needed; its two
    ``n x m`` matrix products run on float32 features (everything else,
    the coefficients and every certificate are float64), which makes fits
    about 1.5x faster at the same accuracy.

    Sample weights: with ``n_centers=None`` (or at least the number of
    samples), integer weights give the model fitted on the repeated samples,
    to the optimiser's tolerance. With fewer centres they are drawn
    uniformly from the samples of positive weight, whereas repetition makes
    a heavily weighted sample more likely to be drawn; and beyond 1,000
    samples the ``"knn"`` rule averages over a random subsample. There the
    two fits differ as two random draws do. Scaling all weights by a
    constant changes nothing with a float ``gamma``; with ``"knn"`` it
    changes ``gamma_`` as repeating every sample would (neighbours are
    counted with their weights).

    Memory: besides ``X``, fit holds one ``n x m`` float64 array (the
    kernel matrix, over which the features are written) and a few
    ``m x m`` ones; the Cross-Lipschitz Gram matrix is accumulated over
    blocks of rows. At 60,000 rows and 5,000 centres that is 2.4 GB.

    References
    ----------
    .. [1] M. Hein and M. Andriushchenko. Formal guarantees on the robustness
       of a classifier against adversarial manipulation. NeurIPS 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_margin import MarginKernelLogReg
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> clf = MarginKernelLogReg(n_centers=200, random_state=0).fit(X, y)
    >>> bool(clf.score(X, y) > 0.9)
    True
    >>> radii = clf.certify(X[:5])
    >>> radii.shape
    (5,)
    """

    _parameter_constraints: dict = {
        "lam": [Interval(Real, 0, None, closed="left")],
        "regularizer": [StrOptions({"cross_lipschitz", "rkhs", "none"})],
        "gamma": [StrOptions({"knn"}), Interval(Real, 0, None, closed="neither")],
        "gamma_scale": [Interval(Real, 0, None, closed="neither")],
        "n_neighbors": [Interval(Integral, 1, None, closed="left")],
        "n_centers": [None, Interval(Integral, 1, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        lam=1e-2,
        *,
        regularizer="cross_lipschitz",
        gamma="knn",
        gamma_scale=1.0,
        n_neighbors=40,
        n_centers=None,
        max_iter=1000,
        tol=1e-4,
        random_state=None,
        verbose=0,
    ):
        self.lam = lam
        self.regularizer = regularizer
        self.gamma = gamma
        self.gamma_scale = gamma_scale
        self.n_neighbors = n_neighbors
        self.n_centers = n_centers
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _resolve_gamma(self, X, rng, sample_weight=None):
        if not isinstance(self.gamma, str):
            return float(self.gamma)
        n = X.shape[0]
        if sample_weight is not None:
            return (
                self.gamma_scale
                / _weighted_knn_distance(X, self.n_neighbors, sample_weight, rng) ** 2
            )
        k = min(self.n_neighbors, n - 1)
        queries = X
        if n > _KNN_MAX_QUERIES:
            queries = X[rng.choice(n, _KNN_MAX_QUERIES, replace=False)]
        dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(queries)
        rho = dist[:, k].mean()
        if not rho > 0:  # (near-)duplicate points only: fall back to any spread
            spread = dist[dist > 0]
            rho = spread.mean() if spread.size else 1.0
        return self.gamma_scale / rho**2

    def _basis(self, X, centers, K_xc, K_cc, gamma, n_classes, sample_weight=None):
        """Optimisation basis ``alpha = T g``, features and diagonal penalty.

        First whiten (``W^T K_cc W = I``), where the RKHS norm is the
        Euclidean one and the Cross-Lipschitz term is the quadratic form
        ``P = 2 lam / (n K) W^T Q W``. Then rotate to the eigenvectors ``V``
        of ``P`` (so the penalty is diagonal, ``p``) and scale every direction
        by ``1 / sqrt(c_k / K + 2 p_k)``, the curvature of the objective along
        it at the start (``c_k / K`` for the cross-entropy, ``c_k`` the mean
        squared feature). This diagonal preconditioning leaves the problem
        unchanged and makes L-BFGS need about as many iterations with the
        Cross-Lipschitz term as without it.

        The features ``K_xc T`` are written over ``K_xc``, block by block, so
        that fitting holds one ``n x m`` array: ``K_xc`` is not usable after.

        Returns
        -------
        Phi : ndarray of shape (n_samples, n_basis)
            Features ``K_xc T``, in the memory of ``K_xc``.
        T : ndarray of shape (n_centers, n_basis)
            Basis: ``alpha_l = T g_l``.
        penalty : ndarray of shape (n_basis,) or None
            Diagonal penalty weights in the basis.
        center : bool
            Whether the penalty acts on class-centred coefficients.
        """
        W = whitening(K_cc)
        # The training set's size: the total weight when weighted.
        n = X.shape[0] if sample_weight is None else sample_weight.sum()
        center = self.regularizer == "cross_lipschitz"
        if self.regularizer == "none" or self.lam == 0:
            p = np.zeros(W.shape[1])
        elif self.regularizer == "rkhs":
            p = np.full(W.shape[1], float(self.lam))
        else:
            Q = cross_lipschitz_gram(X, centers, K_xc, gamma, sample_weight)
            P = W.T @ Q @ W
            del Q
            # 2 lam / (n K) times the symmetric part of P:
            p, V = eigh((self.lam / (n * n_classes)) * (P + P.T))
            p = np.maximum(p, 0.0)
            W = W @ V
        dtype = _FEATURE_DTYPE if self.tol >= _FLOAT32_MIN_TOL else np.float64
        Phi = _transform_in_place(K_xc, W, dtype=dtype)
        if sample_weight is None:
            sq = np.einsum("nk,nk->k", Phi, Phi, dtype=np.float64)
        else:
            sq = np.einsum("n,nk,nk->k", sample_weight, Phi, Phi, dtype=np.float64)
        curvature = sq / (n * n_classes) + 2.0 * p
        scale = 1.0 / np.sqrt(np.maximum(curvature, curvature.max() * 1e-12))
        penalty = p * scale**2 if np.any(p > 0) else None
        Phi *= scale.astype(Phi.dtype)
        return Phi, W * scale, penalty, center

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit the model by L-BFGS on the regularised cross-entropy.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data; converted to float64.
        y : array-like of shape (n_samples,)
            Class labels.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights ``w_i``: the cross-entropy is averaged with
            them (``sum_i w_i l_i / sum_i w_i``), the Cross-Lipschitz term of
            eq. 6 too (``1 / n`` becomes ``w_i / sum_i w_i``), and the
            ``"knn"`` rule counts each point ``w_i`` times. A sample of weight
            0 is left out altogether (neither a centre nor a class), so
            integer weights give the model fitted on the data with every
            sample repeated ``w_i`` times (see Notes for ``n_centers``).

        Returns
        -------
        self : MarginKernelLogReg
            The fitted estimator.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if sample_weight is not None:
            sample_weight = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            keep = sample_weight > 0  # not all 0: _check_sample_weight refuses it
            if not keep.all():
                X, y, sample_weight = X[keep], y[keep], sample_weight[keep]
        classes, y_idx = np.unique(y, return_inverse=True)
        if classes.size < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes in "
                f"the data, but the data contains only one class: {classes[0]!r}."
            )
        rng = check_random_state(self.random_state)
        n = X.shape[0]
        gamma = self._resolve_gamma(X, rng, sample_weight)

        if self.n_centers is None or self.n_centers >= n:
            # Every distinct training point, in order of first appearance: a
            # repeated point adds no function to the span of the centres.
            _, first = np.unique(X, axis=0, return_index=True)
            center_idx = np.sort(first) if first.size < n else np.arange(n)
        else:
            center_idx = np.sort(rng.choice(n, self.n_centers, replace=False))
        centers = X[center_idx]
        K_xc = _kernel_blocks(X, centers, gamma)
        K_cc = K_xc[center_idx]
        n_classes = classes.size
        Phi, T, penalty, center = self._basis(
            X, centers, K_xc, K_cc, gamma, n_classes, sample_weight
        )

        callback = None
        if self.verbose:
            every = max(1, 50 // int(self.verbose))

            def callback(intermediate_result):
                it = callback.n_calls = getattr(callback, "n_calls", 0) + 1
                if it % every == 0:
                    print(
                        f"[{type(self).__name__}] iter {it:5d}  "
                        f"objective {intermediate_result.fun:.6g}"
                    )

        theta0 = np.zeros(n_classes * (Phi.shape[1] + 1))
        # L-BFGS-B's many small BLAS calls must not contend with the
        # objective's large ones for the cores (see sk_margin._threads).
        with limit_scipy_blas():
            result = minimize(
                logreg_objective,
                theta0,
                args=(Phi, y_idx, n_classes, penalty, center, sample_weight),
                method="L-BFGS-B",
                jac=True,
                callback=callback,
                options={
                    "maxiter": self.max_iter,
                    "gtol": self.tol,
                    "ftol": 64 * np.finfo(float).eps,
                    "maxls": 50,
                },
            )
        if result.status != 0:
            warnings.warn(
                f"L-BFGS did not converge in {result.nit} iterations "
                f"(max_iter={self.max_iter}, tol={self.tol}): {result.message}. "
                "Increase max_iter, loosen tol, or increase lam.",
                ConvergenceWarning,
                stacklevel=3,  # the caller of fit, past the validation wrapper
            )
        k = Phi.shape[1]
        G = result.x[: n_classes * k].reshape(n_classes, k)
        self.classes_ = classes
        self.centers_ = centers
        self.dual_coef_ = G @ T.T
        self.intercept_ = result.x[n_classes * k :].copy()
        self.gamma_ = gamma
        self.n_iter_ = int(result.nit)
        gram = expansion_rkhs_gram(centers, self.dual_coef_, gamma, K_cc=K_cc)
        self._cache_rkhs_gram(gram)
        return self

    def _rkhs_gram_key(self):
        # A digest of what the Gram matrix was computed from (the centres,
        # the coefficients and gamma, bit for bit), so that a model changed
        # after fit, even in place, is never certified with a stale one.
        digest = hashlib.blake2b(digest_size=32)
        for array in (self.centers_, self.dual_coef_, np.float64(self.gamma_)):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype.str}{array.shape}".encode())
            digest.update(array.view(np.uint8).reshape(-1))
        return digest.digest()

    def _cache_rkhs_gram(self, gram):
        self._rkhs_gram = (self._rkhs_gram_key(), gram)

    def _certificate_rkhs_gram(self):
        """``alpha K_cc alpha^T``, from fit when the model is unchanged since."""
        cached = getattr(self, "_rkhs_gram", None)
        if cached is not None:
            key, gram = cached
            # (Models pickled before the digest hold a tuple: recomputed.)
            if isinstance(key, bytes) and key == self._rkhs_gram_key():
                return gram
        gram = expansion_rkhs_gram(self.centers_, self.dual_coef_, self.gamma_)
        self._cache_rkhs_gram(gram)
        return gram

    # -------------------------------------------------------------- predict
    def _scores(self, X):
        """Scores of every class, shape (n_samples, n_classes), X validated."""
        return gaussian_expansion_scores(
            X, self.centers_, self.dual_coef_, self.intercept_, self.gamma_
        )

    def _jacobian(self, X):
        """Input gradients of every score, shape (n_samples, n_classes, d)."""
        return gaussian_expansion_jacobian(
            X, self.centers_, self.dual_coef_, self.gamma_
        )

    def _validate_X(self, X):
        check_is_fitted(self)
        return validate_data(self, X, dtype=np.float64, reset=False)

    def decision_function(self, X):
        """Decision scores ``f_j(x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            One column per class; for two classes, ``f_1 - f_0`` (positive
            means ``classes_[1]``), as scikit-learn's binary classifiers.
        """
        scores = self._scores(self._validate_X(X))
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X):
        """Predicted class labels (the arg-max of the scores).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The class of the largest score; ties go to the first class.
        """
        scores = self._scores(self._validate_X(X))
        return self.classes_[np.argmax(scores, axis=1)]

    def predict_proba(self, X):
        """Class probabilities: the softmax of the scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in ``classes_`` order.
        """
        return softmax(self._scores(self._validate_X(X)), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes in ``classes_`` order.
        """
        return log_softmax(self._scores(self._validate_X(X)), axis=1)

    def representation(self, X, layer=-1):
        """The kernel features ``k(c_r, x)`` of which the scores are a linear map.

        The model's one hidden representation: ``f_j(x) = sum_r alpha_jr
        k(c_r, x) + b_j``, so these features play the part of a network's
        penultimate activations (see
        :meth:`sk_margin.MarginNetClassifier.representation`). Used by
        :class:`~sk_margin.MarginPValueDetector`'s ``representations``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        layer : {-1, 0}, default=-1
            The model has a single representation.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_centers)
            ``exp(-gamma_ ||x - c_r||^2)`` for every centre ``c_r`` of
            ``centers_``.
        """
        X = self._validate_X(X)
        if isinstance(layer, bool) or layer not in (-1, 0):
            raise ValueError(
                f"layer={layer!r} is out of range: {type(self).__name__} has one "
                "hidden representation (its kernel features), so layer must be "
                "-1 or 0."
            )
        return rbf_kernel(X, self.centers_, gamma=self.gamma_)

    def margins(self, X, y=None):
        """Logit margins of the decision scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.
        y : array-like of shape (n_samples,), default=None
            True labels. When given, the signed margin of the true class
            ``f_y - max_{i != y} f_i`` (negative when misclassified);
            otherwise the margin of the predicted class, ``>= 0``.

        Returns
        -------
        margin : ndarray of shape (n_samples,)
            Margins in score units (see :mod:`sk_margin.margins`).
        """
        scores = self._scores(self._validate_X(X))
        return label_margin(scores, self.classes_, y)

    def input_jacobian(self, X):
        """Gradients of the decision scores with respect to the input.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data.

        Returns
        -------
        jacobian : ndarray of shape (n_samples, n_classes, n_features) or \
                (n_samples, n_features)
            ``grad_x f_j(x)``, matching :meth:`decision_function` (for two
            classes, the gradient of ``f_1 - f_0``).
        """
        J = self._jacobian(self._validate_X(X))
        if J.shape[1] == 2:
            return J[:, 1] - J[:, 0]
        return J

    # -------------------------------------------------------------- certify
    def certify(self, X, method="auto", *, n_steps=BISECTION_STEPS):
        """Certified l2 radius per sample: the prediction cannot change within it.

        Every method gives a lower bound of the distance from ``x`` to the
        decision boundary of this classifier (over all of ``R^d``, so also
        within any input box). With ``c`` the predicted class, ``g_j = f_c -
        f_j`` and ``beta = alpha_c - alpha_j``:

        * ``"local_quadratic"``: Theorem 2.1 of Hein & Andriushchenko (2017)
          with the local cross-Lipschitz bound of their Proposition 2.1, a
          quadratic form in the signed ``beta`` (the paper's guarantee),
          maximised over the ball radius ``R`` by bisection; ``O(m^2)`` per
          point, and refused above 4000 centres (memory);
        * ``"local_triangle"``: Theorem 2.1 with the ``O(m)`` bound
          ``sum_r |beta_r| max_t 2 gamma t exp(-gamma t^2)`` over the
          distances ``t`` reachable in the ball;
        * ``"second_order"``: ``g(y) >= g(x) - ||grad g(x)|| R - M(R) R^2 / 2``
          with the exact gradient at ``x`` and ``M(R)`` a sound bound of the
          Hessian's spectral norm on the ball (Taylor's theorem): the smaller
          of the local bound ``sum_r |beta_r| max_t ||Hess k||`` and the
          global ``sqrt(12) gamma ||g||_H``, where ``||g||_H^2 = beta^T K_cc
          beta`` is the RKHS norm of ``g`` (by the reproducing property for
          derivatives, Steinwart & Christmann 2008, Corollary 4.36, the
          ``p``-th derivatives of ``g`` are at most ``sqrt((2p)! gamma^p /
          p!) ||g||_H`` everywhere);
        * ``"third_order"``: ``g(y) >= g(x) - ||grad g(x)|| R + min(0,
          lambda_min) R^2 / 2 - N(R) R^3 / 6`` with the exact gradient and the
          smallest eigenvalue of the exact Hessian at ``x``, and ``N(R)`` the
          smaller of a local and the global (``sqrt(120 gamma^3) ||g||_H``)
          bound of the third derivatives on the ball. The Hessians cost
          ``O(K m d^2)`` per row: about 2 ms a row on 64 features and 500
          centres, but seconds a row on images;
        * ``"auto"``: per row, the largest of the global RKHS-Lipschitz radius
          ``gap / (sqrt(2 gamma) ||g||_H)``, ``"second_order"``, Theorem 2.1
          with the smaller of the triangle and the global bound, and, for
          inputs of at most 16 features, ``"third_order"`` (each search
          starts from the radius already certified and stops after one
          evaluation where it cannot improve on it). It costs 10-16 times
          ``predict`` on digits and MNIST; with few features, where
          ``predict`` is cheap and ``"third_order"`` joins, about 90 times
          (``"second_order"`` stays near 10 times). The minimum of sound
          upper bounds is sound, and so is the maximum of sound radii. It no
          longer runs Proposition 2.1: that costs ``O(m^2)`` per row and, on
          digits, MNIST and moons, never once beat the other bounds.

        The global bounds see what the local ones cannot: models fitted with
        the Cross-Lipschitz regulariser have large coefficients of opposite
        signs that cancel, and every bound that sums ``|beta_r|`` terms is
        then loose by orders of magnitude; the RKHS norm of such a sum is
        small (see the user guide's certificate section for the figures).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Points to certify.
        method : {"auto", "local_quadratic", "local_triangle", "second_order", \
                "third_order"}, default="auto"
            Which certificate. The former names ``"prop21"`` and
            ``"triangle"`` still work, with a FutureWarning.
        n_steps : int, default=BISECTION_STEPS
            The search over ``R`` (:data:`sk_margin.certify.BISECTION_STEPS`,
            20): bisection steps of the two Theorem 2.1 methods, at most
            ``n_steps + 2`` bound evaluations of the others
            (:func:`sk_margin.certify.search_radius`, which usually needs a
            few). Each returned radius was verified, so fewer steps make it
            smaller, never unsound.

        Returns
        -------
        radius : ndarray of shape (n_samples,)
            0 where the two top scores tie.

        Notes
        -----
        Computed in float64, in batches of rows, with a progress bar when
        ``verbose`` is set. Rounding is accounted for: the score gaps are
        lowered, and the distance intervals, gradient norms, Hessian
        eigenvalues and RKHS norms widened, by bounds of what float64
        arithmetic (the kernel values' included) can have lost, and the radii
        shrunk by :data:`sk_margin.certify.ROUNDING_SLACK`. The user guide
        derives Proposition 2.1 (the proposition as printed leaves out the
        pairs of centres whose coefficients differ in sign, and is then not a
        bound) and the exact maximum of a Gaussian's Hessian norm behind
        ``M(R)``.
        """
        X = self._validate_X(X)
        return certify_gaussian_expansion(
            X,
            self.centers_,
            self.dual_coef_,
            self.intercept_,
            self.gamma_,
            method=method,
            n_steps=n_steps,
            progress=bool(self.verbose),
            rkhs_gram=self._certificate_rkhs_gram(),
        )
