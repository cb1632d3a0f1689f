"""Margin p-value detector of test samples with atypically small margins."""

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

from sk_margin._pipeline import final_estimator
from sk_margin._validation import as_score_columns
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
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation of the mixtures' EM.

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

    References
    ----------
    .. [1] G. Kesidis, D. J. Miller and Z. Xiang. Notes on Lipschitz margin,
       Lipschitz margin training, and Lipschitz margin p-values for deep
       neural network classifiers. Section V and eq. 2.

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
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # A classifier fitted elsewhere calibrates on unlabelled data too.
        tags.target_tags.required = not isinstance(self.estimator, FrozenEstimator)
        return tags

    def _margins(self, X, estimator=None):
        """Margins and predicted class indices of the rows of ``X``."""
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
        if self.margin == "certified":
            return certified_radii(estimator, X), pred
        return gaps.min(axis=1), pred

    def _clean_margins(self, X, y, name, estimator=None, require=True):
        """Margins and predicted class indices of the correctly classified rows.

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
        return margin[clean], pred[clean]

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
        self.estimator_ = clone(estimator)
        self.estimator_.fit(X, y)
        classes = self.estimator_.classes_

        if X_val is not None:
            margin, pred = self._clean_margins(X_val, y_val, "y_val")
        elif y is None:
            margin, pred = self._margins(X)
        elif frozen:
            margin, pred = self._clean_margins(X, y, "y")
        else:
            margin, pred = self._out_of_fold_margins(estimator, X, y)
        positive = margin[margin > 0]
        floor = (
            _ZERO_MARGIN_FRACTION * positive.min()
            if positive.size
            else np.finfo(np.float64).tiny
        )
        log_margin = np.log(np.maximum(margin, floor))
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
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
        self.offset_ = _offset(self._pvalues(margin, pred), self.fpr)
        return self

    def _out_of_fold_margins(self, estimator, X, y):
        """Clean margins of every fold, by a clone fitted on the other folds."""
        splitter = check_cv(self.cv, y, classifier=True)
        if not (hasattr(X, "iloc") or isinstance(X, np.ndarray | list)):
            X = np.asarray(X)  # other array-likes cannot be indexed by rows
        margins, preds = [], []
        for train, test in splitter.split(X, y):
            fold = clone(estimator).fit(_safe_indexing(X, train), y[train])
            margin, pred = self._clean_margins(
                _safe_indexing(X, test), y[test], "y", estimator=fold, require=False
            )
            margins.append(margin)
            preds.append(pred)
        margin, pred = np.concatenate(margins), np.concatenate(preds)
        if not margin.size:
            raise ValueError(
                f"The clones of {type(estimator).__name__} fitted on {self.cv!r} "
                f"cross-validation folds classify none of the {len(y)} held-out "
                "samples correctly, so there are no clean margins. Pass X_val, "
                "or a FrozenEstimator of a classifier fitted elsewhere."
            )
        return margin, pred

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
        """Margin p-values: the lower, the more atypically small the margin.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Input data, numeric and finite.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            The margin p-value of each sample under the mixture of its
            predicted class (see Notes); higher means more normal.
        """
        check_is_fitted(self)
        validate_data(self, X, reset=False)
        return self._pvalues(*self._margins(X))

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
