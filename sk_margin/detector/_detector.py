"""Margin p-value detector of test samples with atypically small margins."""

import inspect
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    MetaEstimatorMixin,
    OutlierMixin,
    _fit_context,
    clone,
)
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from sk_margin._pipeline import final_estimator, transform_prefix
from sk_margin._validation import as_score_columns
from sk_margin.detector._density import ClassConditionalDensity, EmpiricalPValues
from sk_margin.detector._mixture import _mixture_params, fit_mixture_bic, mixture_pvalue
from sk_margin.margins import score_gaps
from sk_margin.metrics import certified_radii

__all__ = ["MarginPValueDetector"]

# A zero margin (tied top scores) has log-margin -inf, which no Gaussian fits:
# for the mixtures, clean training margins are clipped from below at this
# fraction of the smallest positive one (np.finfo(float).tiny if none is).
_ZERO_MARGIN_FRACTION = 0.5


def _class_index(classes, y, name):
    """Column index of each label of ``y`` in ``classes`` (in any order)."""
    known = np.isin(y, classes)
    if not known.all():
        raise ValueError(
            f"{name} contains labels unknown to the classifier: "
            f"{np.unique(y[~known])[:10].tolist()}; its classes_ are "
            f"{np.asarray(classes).tolist()}."
        )
    sorter = np.argsort(classes)
    return sorter[np.searchsorted(classes, y, sorter=sorter)]


def _offset(pvalues, fpr):
    """The ``floor(fpr * n)``-th smallest (0-based) of ``n`` p-values."""
    pvalues = np.sort(pvalues)
    return float(pvalues[min(int(fpr * pvalues.size), pvalues.size - 1)])


class MarginPValueDetector(OutlierMixin, MetaEstimatorMixin, BaseEstimator):
    """Outlier detector of atypically small classification margins (p-values).

    Fits, per class, a 1-D Gaussian mixture to the log-margins of the
    correctly classified training samples, and scores a test sample by the
    p-value of its margin under the mixture of its predicted class (Kesidis,
    Miller & Xiang, Section V). Minimal adversarial perturbations end just
    beyond a decision boundary, with small margins, hence small p-values.
    With ``representations``, class-conditional models of the input or of
    the classifier's hidden layers also score how much a sample looks like
    its predicted class, which sees the high-confidence adversarial
    examples that margins cannot (see Notes).

    Parameters
    ----------
    estimator : object, default=None
        Classifier with ``fit``, ``decision_function`` and ``classes_``; scores
        of shape (n_samples, n_classes), or (n_samples,) for two classes with
        positive values meaning ``classes_[1]``. :meth:`fit` fits a clone; to
        use a fitted classifier as is, wrap it in
        :class:`sklearn.frozen.FrozenEstimator` (see Examples), which also
        allows calibrating on unlabelled data, ``fit(X)``. None:
        ``LogisticRegression()``, fast and deterministic, with logits as
        scores but no ``certify``: for ``margin="certified"`` pass e.g.
        :class:`~sk_margin.MarginKernelLogReg`.
    margin : {"logit", "certified"}, default="logit"
        ``"logit"``: ``mu(x) = f_c(x) - max_{i != c} f_i(x)`` of the decision
        scores (eq. 2); ``"certified"``: the certified l2 radius
        ``estimator_.certify(X)``, the alternative the paper mentions.
    tail : {"lower", "two_sided"}, default="lower"
        ``"lower"`` flags only atypically small margins; ``"two_sided"``, the
        formula as printed, also atypically large ones (see Notes).
    per_class : bool, default=True
        One mixture per class; False: one mixture for the clean samples of
        all classes (as in the paper's example).
    max_components : int, default=5
        Largest number of mixture components tried by BIC.
    fpr : float, default=0.05
        Largest share of the correctly classified calibration samples (see
        ``cv``) flagged by :meth:`predict`; on unseen clean data the share is
        close to it because those margins are held out too.
    cv : int, cross-validation generator or iterable, default=5
        How the calibration margins (those the mixtures and ``offset_`` are
        fitted on) are held out from the classifier, as in
        :class:`~sklearn.calibration.CalibratedClassifierCV`: an int ``k``
        for stratified ``k``-fold, each fold's margins computed by a clone of
        the classifier fitted on the other folds (the classifier is fitted
        ``k + 1`` times: once per fold, once on all of ``X`` for
        ``estimator_``). Ignored when :meth:`fit` gets ``X_val`` (its
        margins are held out already) and for a
        :class:`~sklearn.frozen.FrozenEstimator` (a classifier fitted
        elsewhere: the data given to :meth:`fit` are its calibration data).
    reg_covar : float, default=1e-6
        Added to each component's variance (squared log-margin units).
    representations : None, "input", int, or list of those, default=None
        Class-conditional null models of representations, beside the
        margin (see Notes): ``"input"`` for the input features themselves,
        an int for the classifier's hidden representation of that index
        (``estimator.representation(X, layer)``, such as
        :meth:`sk_margin.MarginNetClassifier.representation`; -1 for the
        penultimate activations). None: the margin alone, the paper's
        detector.
    n_dims : int, default=30
        Largest number of principal components of a representation that
        its class-conditional models see.
    combine : {"min", "fisher"}, default="min"
        How the margin p-value and the representations' p-values are
        combined before the result is calibrated into one p-value: their
        minimum (Tippett), or the sum of their logarithms (Fisher).
    certify_params : dict or None, default=None
        With ``margin="certified"``: keyword arguments of the classifier's
        ``certify``, e.g. ``{"method": "global_pairwise"}`` for a network
        whose default certificate is too slow (checked against its signature
        before any fitting).
    reject_radius : float or None, default=None
        With ``margin="certified"``: flag every sample whose certified radius
        is below this value, whatever its class (the rejection rule of
        globally-robust networks), instead of setting the threshold by
        ``fpr``. :meth:`score_samples` then returns the certified radii and
        ``offset_`` is ``reject_radius``. None: thresholds by ``fpr``.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation of the mixtures' EM (and the PCA solver of
        the representation models).

    Attributes
    ----------
    estimator_ : object
        The fitted classifier (the ``FrozenEstimator`` itself when given one).
    mixtures_ : list of sklearn.mixture.GaussianMixture
        At index ``k``, the mixture of the samples predicted as
        ``estimator_.classes_[k]``; one pooled object for all classes when
        ``per_class=False``, and for classes without clean training samples.
    n_components_ : ndarray of shape (n_classes,)
        Number of components of each mixture, chosen by BIC.
    margin_floor_ : float
        Clean training margins are clipped at this value before the mixtures
        are fitted to their logarithms (see Notes).
    tau_ : ndarray of shape (n_classes,)
        With ``margin="certified"`` and ``tail="lower"``: the smallest
        certified radius of an accepted (not flagged) sample of each
        predicted class, a proven lower bound (see Notes, certified
        detection); ``reject_radius`` for every class when it is set.
    representation_models_ : list
        With ``representations``, one fitted class-conditional model per
        representation, in order (principal components ``pca_``, per-class
        mixtures ``mixtures_``); empty without.
    offset_ : float
        ``decision_function = score_samples - offset_``, negative for
        outliers. Like ``IsolationForest``'s contamination percentile, but an
        order statistic, the ``floor(fpr * n)``-th smallest (0-based) of the
        ``n`` clean p-values: at most ``fpr * n`` lie strictly below it.
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of features seen during fit, when ``X`` has string column names.

    Notes
    -----
    A mixture ``{w_i, m_i, s_i}`` is fitted by EM, its size chosen by BIC
    (``fit_mixture_bic`` in this module), to ``{log mu(x) : x in T_k}``, with ``mu`` the
    logit margin of eq. 2 (``>= 0``) and ``T_k`` the training samples of class
    ``k`` predicted (largest score) as ``k``. A test sample has no label: ``k``
    is its predicted class, misclassified or not.

    The paper defines the margin p-value ``pi(x)`` as the probability that a
    clean sample has a *smaller* margin than ``x``: the mixture's CDF
    ``sum_i w_i Phi((log mu(x) - m_i) / s_i)`` (``tail="lower"``). It is
    uniform on [0, 1] for clean samples when the mixture fits, so about a
    share ``alpha`` of them has ``pi < alpha``. The formula printed next to
    that sentence, ``sum_i w_i (1 - Phi(|log mu(x) - m_i| / s_i))``
    (``tail="two_sided"``), does not match it: symmetric about each mean, it
    is also small for abnormally *large* margins, and each term is half a
    two-sided normal p-value, so it lies in [0, 1/2] (for one component,
    ``P(pi < alpha) = 2 alpha`` on clean samples).

    For two classes, scikit-learn's 1-D score ``d = f_1 - f_0`` is read as
    the scores ``(0, d)``, so ``mu = |d|``; ``(-d/2, d/2)`` gives the same, as
    margins ignore a shift of all scores. A tie ``d = 0`` goes to
    ``classes_[0]``, as in scikit-learn's ``predict``.

    A zero margin has ``log 0 = -inf`` and a p-value of exactly 0 (the limit
    of both formulas). For the fit, clean margins are clipped at
    ``margin_floor_``, half the smallest positive one (``np.finfo(float).tiny``
    if none is). A mixture never has
    more components than distinct margins nor than one per 5 samples; a
    single sample or constant margins give one component of variance
    ``reg_covar``: finite p-values, close to a step at that margin. A class
    without clean training samples (absent from ``y``, or never predicted
    correctly) uses the pooled mixture, with a ``UserWarning``.

    ``fpr`` is a promise about the samples ``offset_`` is set on, and it
    carries over to unseen data only if their margins behave alike. Training
    margins do not: the classifier was fitted to them, and they are larger
    than those of unseen data (on ``load_digits`` an MLP with mixtures and
    threshold on its training data flagged 11.6% of correctly classified
    clean test digits at ``fpr=0.05``). Hence the calibration margins are
    held out: out-of-fold by default (``cv``), or ``X_val``. Misclassified
    clean inputs, which the calibration never sees, have small margins and
    are flagged more often.

    **Representations.** An attack with budget to spare pushes its input
    deep into the wrong class, where the margin is as large as a clean
    input's or larger: no margin statistic sees it. What still gives it
    away is that the input looks like its true class. With
    ``representations``, each representation ``z`` (the input features, or
    a hidden layer of the classifier) is reduced to its first ``n_dims``
    principal components, and each class ``k`` gets a Gaussian mixture
    ``p_k`` of the components of its clean samples (full covariances, the
    number of components chosen by BIC among at most ``max_components``,
    never more than the samples pay for; each variance regularised by
    1e-3 of the largest), as Miller, Wang & Kesidis [2]_ model the
    class-conditional densities of internal layers. The statistic of an
    input predicted as ``c`` is the log-posterior of ``c``, ``log pi_c p_c(z)
    - log sum_k pi_k p_k(z)`` (``pi_k`` the class shares), and its p-value
    is its rank among held-out clean statistics of class ``c``, ``(1 + #{r
    <= s}) / (1 + n_c)`` (of all classes when a class has fewer than 20, or
    with ``per_class=False``). The models are fitted on the clean samples a
    classifier was trained on and the ranks taken on held-out ones, as the
    margins are: per fold with ``cv`` (each fold's clone and its models),
    on ``X_val`` (``estimator_`` and models fitted on ``X``), and for a
    ``FrozenEstimator`` by cross-fitting the calibration data over ``cv``
    folds. The margin p-value and these p-values are combined (``combine``:
    their minimum, or the sum of their logarithms) and the combination is
    itself ranked among the calibration samples' (each left out of its own
    ranks), so :meth:`score_samples` is again a p-value and ``offset_``
    keeps the ``fpr`` promise whatever the dependence between the
    statistics. :meth:`component_pvalues` returns the p-values before
    they are combined. The Mahalanobis detector of Lee et al. (2018), one
    Gaussian per class with a shared covariance of the penultimate layer
    scored by the predicted class's density alone, is a special case of the
    density but not of the statistic: the posterior compares the classes,
    which is what separates an adversarial input from an unusual clean one.

    **Certified detection.** With ``margin="certified"`` the margin is a
    certified radius ``r``, and the margin p-value of class ``j`` increases
    with it: an accepted sample predicted as ``j`` has ``r >= tau_j``
    (``tau_``; with representations, from the smallest margin p-value an
    accepted combination allows). Let ``x`` be a clean input predicted as
    ``c`` and ``x'`` an accepted input predicted as ``j != c``. The ball of
    radius ``r(x)`` about ``x`` holds only class ``c`` and the ball of
    radius ``r(x')`` about ``x'`` only class ``j``, so they do not overlap
    and ``||x - x'|| >= r(x) + r(x') >= r(x) + tau_j``. Every
    misclassification closer to ``x`` than :meth:`guaranteed_radius`,
    ``r(x) + min_{j != c} tau_j``, is flagged, against any attacker. With
    ``reject_radius=eps`` every ``tau_j`` is ``eps`` (at the price of
    flagging every clean input with ``r < eps``); on a budget ``eps`` the
    best choice is ``reject_radius=eps / 2``, which guarantees ``eps``
    exactly for the inputs certified at ``eps / 2``.

    References
    ----------
    .. [1] G. Kesidis, D. J. Miller and Z. Xiang. Notes on Lipschitz margin,
       Lipschitz margin training, and Lipschitz margin p-values for deep
       neural network classifiers. Section V and eq. 2.
    .. [2] D. J. Miller, Y. Wang and G. Kesidis. When not to classify:
       anomaly detection of attacks (ADA) on DNN classifiers at test time.
       Neural Computation 31(8), 2019.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sk_margin.detector import MarginPValueDetector
    >>> X, y = make_blobs(n_samples=600, centers=3, cluster_std=3.0, random_state=0)
    >>> clf = LogisticRegression().fit(X[:300], y[:300])
    >>> det = MarginPValueDetector(FrozenEstimator(clf), random_state=0)
    >>> det = det.fit(X[:300], y[:300], X_val=X[300:450], y_val=y[300:450])
    >>> det.estimator_.estimator is clf  # used as is, not refitted
    True
    >>> pvalues = det.score_samples(X[450:])  # in [0, 1], low = atypical
    >>> sorted(set(det.predict(X[450:]).tolist()))
    [-1, 1]
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "decision_function"]), None],
        "margin": [StrOptions({"logit", "certified"})],
        "tail": [StrOptions({"lower", "two_sided"})],
        "per_class": ["boolean"],
        "max_components": [Interval(Integral, 1, None, closed="left")],
        "fpr": [Interval(Real, 0, 1, closed="left")],
        "cv": ["cv_object"],
        "reg_covar": [Interval(Real, 0, None, closed="neither")],
        "representations": [
            None,
            StrOptions({"input"}),
            Interval(Integral, None, None, closed="neither"),
            list,
            tuple,
        ],
        "n_dims": [Interval(Integral, 1, None, closed="left")],
        "combine": [StrOptions({"min", "fisher"})],
        "reject_radius": [Interval(Real, 0, None, closed="left"), None],
        "certify_params": [dict, None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        margin="logit",
        tail="lower",
        per_class=True,
        max_components=5,
        fpr=0.05,
        cv=5,
        reg_covar=1e-6,
        representations=None,
        n_dims=30,
        combine="min",
        reject_radius=None,
        certify_params=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.margin = margin
        self.tail = tail
        self.per_class = per_class
        self.max_components = max_components
        self.fpr = fpr
        self.cv = cv
        self.reg_covar = reg_covar
        self.representations = representations
        self.n_dims = n_dims
        self.combine = combine
        self.reject_radius = reject_radius
        self.certify_params = certify_params
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A classifier fitted elsewhere calibrates on unlabelled data too.
        tags.target_tags.required = not isinstance(self.estimator, FrozenEstimator)
        return tags

    def _margins(self, X, estimator=None, *, certify=True):
        """Margins and predicted class indices of the rows of ``X``.

        ``certify=False``: the logit margins whatever ``margin`` is (when only
        the predictions are needed, without the cost of certificates).
        """
        estimator = self.estimator_ if estimator is None else estimator
        scores = as_score_columns(estimator.decision_function(X))
        n_classes = len(estimator.classes_)
        if scores.shape[1] != n_classes:
            raise ValueError(
                f"{type(estimator).__name__}.decision_function returned "
                f"{scores.shape[1]} columns for {n_classes} classes; expected one "
                "per class, or a 1-D array for two classes."
            )
        gaps, pred = score_gaps(scores)
        if self.margin == "certified" and certify:
            return certified_radii(estimator, X, **(self.certify_params or {})), pred
        return gaps.min(axis=1), pred

    def _clean_margins(self, X, y, name, estimator=None, require=True):
        """Margins and predicted class indices of the correctly classified rows,
        and the mask of those rows.

        The class indices are into ``estimator_.classes_``, whichever
        ``estimator`` (a fold's clone) computed the margins.
        """
        estimator = self.estimator_ if estimator is None else estimator
        margin, pred = self._margins(X, estimator)
        labels = np.asarray(estimator.classes_)[pred]
        pred = _class_index(self.estimator_.classes_, labels, "the predictions")
        clean = pred == _class_index(self.estimator_.classes_, y, name)
        if require and not clean.any():
            raise ValueError(
                f"{type(self.estimator_).__name__} classifies none of the "
                f"{len(y)} samples labelled by {name} correctly, so there are no "
                "clean margins."
            )
        return margin[clean], pred[clean], clean

    def _pvalues(self, margin, pred):
        """P-values of margins under the mixtures of the predicted classes."""
        with np.errstate(divide="ignore"):  # log 0 = -inf: p-value 0
            log_margin = np.log(np.maximum(margin, 0.0))
        pvalues = np.empty_like(log_margin)
        for k, mixture in enumerate(self.mixtures_):
            rows = pred == k
            if rows.any():
                pvalues[rows] = mixture_pvalue(
                    log_margin[rows], *_mixture_params(mixture), tail=self.tail
                )
        return pvalues

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y=None, *, X_val=None, y_val=None):
        """Fit the classifier, the margin mixtures and the threshold.

        The mixtures and ``offset_`` are fitted on calibration margins held
        out from the classifier: those of ``X_val`` when given, else the
        out-of-fold margins of ``X`` (see ``cv``), or, for a
        :class:`~sklearn.frozen.FrozenEstimator`, the margins of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, numeric and finite; the classifier gets it as given.
        y : array-like of shape (n_samples,), default=None
            Class labels. None only for a
            :class:`~sklearn.frozen.FrozenEstimator` (a classifier fitted
            elsewhere, not refitted): ``X`` is then unlabelled calibration
            data, and every sample's margin counts, under the mixture of its
            predicted class. Misclassified samples are among them, with
            their small margins, so this tends to flag fewer samples than
            calibrating on labelled data.
        X_val : array-like of shape (n_val, n_features), default=None
            Held-out clean data: when given, the mixtures and ``offset_`` are
            fitted on its correctly classified samples, and the classifier is
            fitted once, on ``X``.
        y_val : array-like of shape (n_val,), default=None
            Labels of ``X_val``, required with it.

        Returns
        -------
        self : MarginPValueDetector
            The fitted detector.
        """
        frozen = isinstance(self.estimator, FrozenEstimator)
        if y is None:
            if not frozen:
                raise ValueError(
                    f"{type(self).__name__} requires y to be passed, but the "
                    "target y is None: the labels are needed to fit its "
                    f"classifier ({type(self.estimator).__name__}). To calibrate "
                    "a classifier fitted elsewhere on unlabelled X, wrap it in "
                    "sklearn.frozen.FrozenEstimator and call fit(X)."
                )
            validate_data(self, X)
        else:
            _, y = validate_data(self, X, y)
            check_classification_targets(y)
        if (X_val is None) != (y_val is None):
            raise ValueError("X_val and y_val must be given together, or neither.")
        if X_val is not None:
            _, y_val = validate_data(self, X_val, y_val, reset=False)
        estimator = LogisticRegression() if self.estimator is None else self.estimator
        if self.margin == "certified" and not hasattr(
            final_estimator(estimator), "certify"
        ):
            raise ValueError(
                "margin='certified' needs a classifier with a certify(X) method, "
                f"but {type(estimator).__name__} has none. Use margin='logit', or "
                "a classifier such as sk_margin.MarginKernelLogReg."
            )
        specs = self._representation_specs(estimator)
        self._check_certify_params(estimator)
        if self.reject_radius is not None and (self.margin != "certified" or specs):
            raise ValueError(
                "reject_radius flags samples by their certified radius: it needs "
                f"margin='certified' (got {self.margin!r}) and representations=None "
                f"(got {self.representations!r})."
            )
        self.estimator_ = clone(estimator)
        self.estimator_.fit(X, y)
        classes = self.estimator_.classes_

        rng = check_random_state(self.random_state)
        seed = rng.randint(np.iinfo(np.int32).max)
        models, stats = [], None
        if X_val is not None:
            margin, pred, rows = self._clean_margins(X_val, y_val, "y_val")
            if specs:
                models = self._fit_models(self.estimator_, X, y, specs, seed)
                X_ref = _safe_indexing(self._indexable(X_val), np.flatnonzero(rows))
                stats = self._statistics(self.estimator_, models, X_ref, pred, specs)
        elif y is None:
            margin, pred = self._margins(X)
            if specs:
                models, stats = self._cross_fit(X, None, pred, specs, seed)
        elif frozen:
            margin, pred, rows = self._clean_margins(X, y, "y")
            if specs:
                models, stats = self._cross_fit(X, y, pred, specs, seed, rows=rows)
        else:
            margin, pred, stats = self._out_of_fold(estimator, X, y, specs, seed)
            if specs:
                models = self._fit_models(self.estimator_, X, y, specs, seed)
        positive = margin[margin > 0]
        floor = (
            _ZERO_MARGIN_FRACTION * positive.min()
            if positive.size
            else np.finfo(np.float64).tiny
        )
        log_margin = np.log(np.maximum(margin, floor))
        params = {
            "max_components": self.max_components,
            "reg_covar": self.reg_covar,
            "random_state": seed,
        }
        counts = np.bincount(pred, minlength=len(classes))
        pooled = None
        if not (self.per_class and counts.all()):
            pooled = fit_mixture_bic(log_margin, **params)
        if self.per_class and not counts.all():
            what = (
                "is predicted as such"
                if y is None and X_val is None
                else "is classified correctly (or the class is absent from y)"
            )
            warnings.warn(
                f"No calibration sample of class(es) "
                f"{classes[counts == 0].tolist()} {what}; their p-values use the "
                "mixture of the calibration samples of all classes.",
                UserWarning,
                stacklevel=3,  # the caller of fit, past the validation wrapper
            )
        self.mixtures_ = [
            fit_mixture_bic(log_margin[pred == k], **params)
            if self.per_class and counts[k]
            else pooled
            for k in range(len(classes))
        ]
        self.n_components_ = np.array([m.n_components for m in self.mixtures_])
        self.margin_floor_ = float(floor)
        self.representation_models_ = models
        pvalues = self._pvalues(margin, pred)
        if specs:
            n_classes = len(classes)
            self._references = [
                EmpiricalPValues(stats[:, j], pred, n_classes, per_class=self.per_class)
                for j in range(len(specs))
            ]
            columns = self._pvalue_columns(pvalues, stats, pred, held_in=True)
            combined = self._combined(columns)
            self._combined_reference = EmpiricalPValues(combined)
            pvalues = self._combined_reference(combined, held_in=True)
        self.offset_ = _offset(pvalues, self.fpr)
        if self.margin == "certified" and self.tail == "lower":
            self.tau_ = self._radius_thresholds()
        if self.reject_radius is not None:
            self.offset_ = float(self.reject_radius)
        return self

    def _margin_pvalue_floor(self):
        """The smallest margin p-value an accepted sample can have.

        Accepted means ``score_samples >= offset_``. Without representations
        that is the margin p-value itself. With them, the combination ``s``
        of the p-values is accepted exactly when ``s >= T``, ``T`` the
        smallest calibration value whose rank reaches ``offset_``; every
        other p-value being at most 1, the margin p-value is then at least
        ``T`` (minimum) or ``exp(T)`` (sum of logarithms).
        """
        if not self.representation_models_:
            return self.offset_
        rank = self._combined_reference
        ref = rank.pooled_
        if rank([-np.inf])[0] >= self.offset_:
            return 0.0  # even below every calibration value: accepted
        ranks = rank(ref)
        T = ref[np.argmax(ranks >= self.offset_)]
        return float(T if self.combine == "min" else np.exp(T))

    def _radius_thresholds(self):
        """``tau_j``: below it, a sample predicted as ``j`` is flagged (proven).

        The margin p-value of class ``j`` is the mixture's CDF at the
        log-radius, increasing: ``tau_j`` is where it reaches the floor of
        :meth:`_margin_pvalue_floor`, found by bisection on the log-radius
        and taken at the end of the bracket below it, less a relative 1e-9.
        """
        if self.reject_radius is not None:
            return np.full(len(self.mixtures_), float(self.reject_radius))
        floor = self._margin_pvalue_floor()
        tau = np.zeros(len(self.mixtures_))
        for j, mixture in enumerate(self.mixtures_):
            w, m, sd = _mixture_params(mixture)
            lo, hi = m.min() - 40.0 * sd.max(), m.max() + 40.0 * sd.max()
            if floor <= 0 or mixture_pvalue([lo], w, m, sd)[0] >= floor:
                continue  # accepted down to (almost) zero radius
            if mixture_pvalue([hi], w, m, sd)[0] < floor:
                tau[j] = np.inf  # nothing of this class is accepted
                continue
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if mixture_pvalue([mid], w, m, sd)[0] < floor:
                    lo = mid
                else:
                    hi = mid
                if hi - lo <= 1e-12 * max(1.0, abs(lo)):
                    break
            tau[j] = np.exp(lo) * (1.0 - 1e-9)
        return tau

    def guaranteed_radius(self, X):
        """Per sample, the distance within which every misclassification is flagged.

        For a sample ``x`` predicted as ``c`` with certified radius ``r(x)``,
        ``r(x) + min_{j != c} tau_j``: any input ``x'`` closer to ``x`` is
        either predicted as ``c`` or flagged, whatever the attack (see Notes,
        certified detection). Needs ``margin="certified"`` and
        ``tail="lower"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, numeric and finite.

        Returns
        -------
        radius : ndarray of shape (n_samples,)
            Guaranteed detection radii (l2).
        """
        check_is_fitted(self)
        if not hasattr(self, "tau_"):
            raise ValueError(
                "guaranteed_radius needs certified radii and a lower-tail test: "
                "margin='certified' and tail='lower'; this detector has "
                f"margin={self.margin!r}, tail={self.tail!r}."
            )
        validate_data(self, X, reset=False)
        radius, pred = self._margins(X)
        others = np.broadcast_to(self.tau_, (len(pred), len(self.tau_))).copy()
        others[np.arange(len(pred)), pred] = np.inf
        return radius + others.min(axis=1)

    def _check_certify_params(self, estimator):
        """``certify_params`` against the classifier's ``certify``, before work."""
        params = self.certify_params or {}
        if not params:
            return
        if self.margin != "certified":
            raise ValueError(
                "certify_params is for margin='certified' (the certified radius); "
                f"this detector has margin={self.margin!r}."
            )
        signature = inspect.signature(final_estimator(estimator).certify)
        accepts_any = any(
            p.kind is inspect.Parameter.VAR_KEYWORD
            for p in signature.parameters.values()
        )
        valid = [n for n in signature.parameters if n != "X"]
        unknown = sorted(set(params) - set(valid))
        if unknown and not accepts_any:
            raise ValueError(
                f"certify_params has {unknown}, which "
                f"{type(final_estimator(estimator)).__name__}.certify does not "
                f"take; it takes {valid}."
            )

    def _representation_specs(self, estimator):
        """``representations`` as a tuple, checked before any fitting."""
        reps = self.representations
        if reps is None:
            return ()
        specs = (reps,) if isinstance(reps, str | Integral) else tuple(reps)
        allowed = (
            "None, 'input', an int (a hidden representation of the classifier) "
            "or a non-empty list of those"
        )
        if not specs:
            raise ValueError(f"representations must be {allowed}; got an empty list.")
        for spec in specs:
            if not (
                spec == "input"
                if isinstance(spec, str)
                else isinstance(spec, Integral) and not isinstance(spec, bool)
            ):
                raise ValueError(f"representations must be {allowed}; got {spec!r}.")
        if len(set(specs)) < len(specs):
            raise ValueError(f"representations has duplicates: {list(specs)}.")
        final = final_estimator(estimator)
        if any(spec != "input" for spec in specs) and not hasattr(
            final, "representation"
        ):
            raise ValueError(
                f"representations={self.representations!r} needs a classifier with "
                "a representation(X, layer) method (such as MarginNetClassifier or "
                f"MarginKernelLogReg), but {type(final).__name__} has none. Use "
                "representations='input' for a model of the input features."
            )
        return specs

    def _representation(self, estimator, X, spec):
        """The rows of ``X`` as representation ``spec`` sees them (2-D, float64)."""
        if spec == "input":
            Z = np.asarray(X.to_numpy() if hasattr(X, "to_numpy") else X)
        else:
            inner = transform_prefix(estimator, X)
            Z = np.asarray(final_estimator(estimator).representation(inner, spec))
        Z = Z.astype(np.float64, copy=False)
        return Z.reshape(len(Z), int(np.prod(Z.shape[1:])))

    def _fit_models(self, estimator, X, y, specs, seed):
        """Class-conditional models of the clean rows of ``(X, y)`` (or, with
        ``y`` None, of every row under its predicted class) under ``estimator``."""
        X = self._indexable(X)
        _, pred = self._margins(X, estimator, certify=False)
        pred = self._as_own_index(estimator, pred)
        if y is None:
            rows, labels = np.ones(len(pred), dtype=bool), pred
        else:
            labels = _class_index(self.estimator_.classes_, np.asarray(y), "y")
            rows = pred == labels
        X_fit = _safe_indexing(X, np.flatnonzero(rows))
        return [
            ClassConditionalDensity(self.n_dims, self.max_components, seed).fit(
                self._representation(estimator, X_fit, spec),
                labels[rows],
                len(self.estimator_.classes_),
            )
            for spec in specs
        ]

    def _statistics(self, estimator, models, X, pred, specs):
        """Log-posteriors of the predicted classes, one column per representation."""
        if len(pred) == 0:
            return np.empty((0, len(specs)))
        return np.column_stack(
            [
                model.log_posterior(self._representation(estimator, X, spec), pred)
                for model, spec in zip(models, specs, strict=True)
            ]
        )

    def _cross_fit(self, X, y, pred, specs, seed, rows=None):
        """Models on all calibration rows; held-out statistics by cross-fitting.

        For a classifier fitted elsewhere, the calibration data are all there
        is: each fold's statistics come from models fitted on the other folds.
        """
        n = len(pred) if rows is None else len(rows)
        rows = np.ones(n, dtype=bool) if rows is None else rows
        X = self._indexable(X)
        splitter = check_cv(self.cv, y, classifier=y is not None)
        stats = np.full((n, len(specs)), np.nan)
        full_pred = np.full(n, -1)
        full_pred[rows] = pred
        for train, test in splitter.split(X, y):
            y_train = None if y is None else np.asarray(y)[train]
            models = self._fit_models(
                self.estimator_, _safe_indexing(X, train), y_train, specs, seed
            )
            keep = test[rows[test]]
            stats[keep] = self._statistics(
                self.estimator_, models, _safe_indexing(X, keep), full_pred[keep], specs
            )
        models = self._fit_models(self.estimator_, X, y, specs, seed)
        return models, stats[rows]

    @staticmethod
    def _indexable(X):
        if not (hasattr(X, "iloc") or isinstance(X, np.ndarray | list)):
            return np.asarray(X)  # other array-likes cannot be indexed by rows
        return X

    def _as_own_index(self, estimator, pred):
        """Class indices of ``estimator`` as indices into ``estimator_.classes_``."""
        labels = np.asarray(estimator.classes_)[pred]
        return _class_index(self.estimator_.classes_, labels, "the predictions")

    def _out_of_fold(self, estimator, X, y, specs, seed):
        """Clean margins of every fold, by a clone fitted on the other folds,
        and the held-out statistics of the fold's models of representations."""
        splitter = check_cv(self.cv, y, classifier=True)
        X = self._indexable(X)
        margins, preds, stats = [], [], []
        for train, test in splitter.split(X, y):
            fold = clone(estimator).fit(_safe_indexing(X, train), y[train])
            X_test = _safe_indexing(X, test)
            margin, pred, rows = self._clean_margins(
                X_test, y[test], "y", estimator=fold, require=False
            )
            margins.append(margin)
            preds.append(pred)
            if specs:
                models = self._fit_models(
                    fold, _safe_indexing(X, train), y[train], specs, seed
                )
                X_ref = _safe_indexing(X_test, np.flatnonzero(rows))
                stats.append(self._statistics(fold, models, X_ref, pred, specs))
        margin, pred = np.concatenate(margins), np.concatenate(preds)
        if not margin.size:
            raise ValueError(
                f"The clones of {type(estimator).__name__} fitted on {self.cv!r} "
                f"cross-validation folds classify none of the {len(y)} held-out "
                "samples correctly, so there are no clean margins. Pass X_val, "
                "or a FrozenEstimator of a classifier fitted elsewhere."
            )
        return margin, pred, np.concatenate(stats) if specs else None

    def _pvalue_columns(self, margin_pvalues, stats, pred, *, held_in=False):
        """The margin p-values, then those of each representation's statistic."""
        columns = [margin_pvalues] + [
            ref(stats[:, j], pred, held_in=held_in)
            for j, ref in enumerate(self._references)
        ]
        return np.column_stack(columns)

    def _combined(self, P):
        """The combination (``combine``) of the p-values in the columns of ``P``."""
        if self.combine == "min":
            return P.min(axis=1)
        with np.errstate(divide="ignore"):
            return np.log(P).sum(axis=1)

    def _unseen_pvalue_columns(self, X, margin, pred):
        """:meth:`_pvalue_columns` of validated inputs, from their margins."""
        pvalues = self._pvalues(margin, pred)
        if not self.representation_models_:
            return pvalues[:, None]
        specs = self._representation_specs(self.estimator_)
        stats = self._statistics(
            self.estimator_, self.representation_models_, X, pred, specs
        )
        return self._pvalue_columns(pvalues, stats, pred)

    def component_pvalues(self, X):
        """The p-values that :meth:`score_samples` combines, one column each.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, numeric and finite.

        Returns
        -------
        pvalues : ndarray of shape (n_samples, 1 + n_representations)
            The margin p-value, then the p-value of each representation's
            statistic (see Notes), in the order of ``representations``.
        """
        check_is_fitted(self)
        validate_data(self, X, reset=False)
        return self._unseen_pvalue_columns(X, *self._margins(X))

    def fit_predict(self, X, y=None, **kwargs):
        """Fit on ``(X, y)`` and flag the training samples.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, numeric and finite.
        y : array-like of shape (n_samples,), default=None
            Class labels (``OutlierMixin.fit_predict`` would drop them); None
            only for a :class:`~sklearn.frozen.FrozenEstimator` (see
            :meth:`fit`).
        **kwargs : dict
            Keyword arguments of :meth:`fit` (``X_val``, ``y_val``).

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers.
        """
        return self.fit(X, y, **kwargs).predict(X)

    def score_samples(self, X):
        """P-values: the lower, the more atypical the sample.

        Without ``representations``, the margin p-value; with them, the
        calibrated p-value of the combination of the margin's and the
        representations' p-values (see Notes and :meth:`component_pvalues`).
        With ``reject_radius``, the certified radius instead.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, numeric and finite.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The p-value of each sample (see Notes); higher means more normal.
        """
        check_is_fitted(self)
        validate_data(self, X, reset=False)
        margin, pred = self._margins(X)
        if self.reject_radius is not None:
            return margin  # the certified radius
        P = self._unseen_pvalue_columns(X, margin, pred)
        if not self.representation_models_:
            return P[:, 0]
        combined = self._combined(P)
        return self._combined_reference(combined)

    def decision_function(self, X):
        """Shifted margin p-values: negative for outliers.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, numeric and finite.

        Returns
        -------
        decision : ndarray of shape (n_samples,)
            ``score_samples(X) - offset_``.
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X):
        """Flag samples whose margin p-value is below ``offset_``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, numeric and finite.

        Returns
        -------
        is_inlier : ndarray of shape (n_samples,)
            +1 for inliers, -1 for outliers.
        """
        return np.where(self.decision_function(X) < 0, -1, 1)
