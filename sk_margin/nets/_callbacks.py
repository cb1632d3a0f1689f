"""skorch callbacks that watch margins while a network trains.

:class:`MarginStatistics` records, at the end of every (k-th) epoch, the
minimum and average margin of Wu & Yu and the share of training samples that
meet the margin Lipschitz-margin training requires (Ono et al.), so that their
evolution can be read from ``net.history`` or plotted against the epochs.
"""

import copy
import numbers
from collections.abc import Mapping

import numpy as np
import torch
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array
from skorch.callbacks import Callback
from skorch.dataset import Dataset, unpack_data
from skorch.utils import to_numpy

from sk_margin._validation import is_positive_int
from sk_margin.margins import pairwise_lipschitz_margin, signed_margin
from sk_margin.nets.certify._lipschitz import lipschitz_bound, network_lipschitz_bounds

__all__ = ["MarginStatistics"]

KINDS = ("lipschitz", "logit")


def _unwrap(dataset):
    """The innermost dataset of nested ``Subset``s and the composed indices."""
    indices = None
    while isinstance(dataset, torch.utils.data.Subset):
        idx = np.asarray(dataset.indices, dtype=np.intp)
        indices = idx if indices is None else idx[indices]
        dataset = dataset.dataset
    return dataset, indices


def _inputs(X):
    """The network's input array out of the ``{"X": ..., ...}`` dict."""
    if isinstance(X, Mapping):
        X = X["X"]
    return X


class MarginStatistics(Callback):
    """Record Wu & Yu's minimum and average margin after every epoch.

    At the end of every ``every``-th epoch, on a float64, eval-mode deep copy
    of ``net.module_`` (the network itself, its training mode and the random
    state are left untouched), records into ``net.history``:

    - ``train_min_margin``, ``train_avg_margin``: the minimum and average
      margin (Wu & Yu, Section 2) of the training data, with the per-sample
      margin defined below;
    - ``valid_min_margin``, ``valid_avg_margin``: the same on ``X_valid,
      y_valid`` when given, else on skorch's internal validation split
      (``train_split``) when there is one;
    - ``lipschitz_bound``: :func:`sk_margin.nets.lipschitz_bound`, the
      sound product bound ``L`` of the network, whenever it is needed
      (``kind="lipschitz"`` or a known ``eps``);
    - ``required_margin_share``: the share of training samples whose signed
      logit margin ``f_y(x) - max_{i != y} f_i(x)`` is at least
      ``sqrt(2) L eps``, the margin Lipschitz-margin training requires for an
      l2 radius ``eps`` (Ono et al., eq. 3), recorded when ``eps`` is known.

    Parameters
    ----------
    X_valid : array-like of shape (n_samples, ...), default=None
        Validation inputs for the ``valid_*`` keys.
    y_valid : array-like of shape (n_samples,), default=None
        Validation labels, from the net's ``classes_``; required with
        ``X_valid``.
    kind : {"lipschitz", "logit"}, default="lipschitz"
        Per-sample margin: ``"lipschitz"`` the input-space estimate
        ``min_{j != y} (f_y - f_j)(x) / L_yj`` (see Notes); ``"logit"`` the
        signed logit margin ``f_y(x) - max_{i != y} f_i(x)`` (no Lipschitz
        bound, cheaper, in logit units).
    eps : float or None, default=None
        Radius of ``required_margin_share``. None: ``net.criterion_.eps`` if
        the criterion has one (``"lmt"``, ``"lc_lmt"``), else the key is not
        recorded.
    every : int, default=1
        Record at the epochs whose number (1-based, counted over the whole
        history) is a multiple of ``every``.
    subsample : int or None, default=None
        At most this many training samples, drawn without replacement; None
        uses them all. Validation data are never subsampled.
    random_state : int, RandomState instance or None, default=0
        Draws the subsample. An int draws the same samples at every epoch.
    batch_size : int, default=1024
        Samples per forward pass.

    Notes
    -----
    Wu & Yu (Section 2, eq. 6) define the margin of ``(x, y)`` as the l2
    distance from ``x`` to the boundary of its predicted region, with a minus
    sign when ``x`` is misclassified, the minimum margin as
    ``min_i m(x_i, y_i)`` and the average margin as ``(1/n) sum_i |m(x_i,
    y_i)|`` (the mean distance to the boundary, an absolute value). We record
    exactly these two statistics, but of a per-sample margin that can be
    computed: the true distance of a neural network is intractable. With
    ``kind="lipschitz"`` it is

    ``m_hat(x, y) = min_{j != y} (f_y(x) - f_j(x)) / L_yj``,

    with ``L = pairwise_lipschitz_bounds(module, input_shape)``, the global
    bound ``L_yj >= Lip(f_y - f_j)`` of Hein & Andriushchenko (Section 5).
    For a correctly classified ``x`` it is positive and a sound lower bound on
    the distance to the decision boundary (their Theorem 2.1); for a
    misclassified one it is negative, and ``|m_hat|`` lower-bounds the
    distance needed to make ``y`` the top class (at least ``f_j - f_y`` must
    be closed for every ``j``). For a network that is one ``nn.Linear`` layer,
    ``L_yj = ||w_y - w_j||`` and ``m_hat`` is the exact signed distance for
    correctly classified points and for two classes. It is 0 on a tie, and
    ``+-inf`` when ``L_yj = 0``. Thus ``train_avg_margin`` is a lower bound
    on Wu & Yu's average margin when all points are classified correctly or
    there are two classes, and ``train_min_margin`` on their minimum margin
    when all points are classified correctly.

    Data: the training samples are those skorch trains on in this epoch, the
    ``dataset_train`` passed to ``on_epoch_end`` (after the internal
    validation split, if any): the ``"X"`` entry of the net's input dict and
    the encoded labels, read by index from a :class:`skorch.dataset.Dataset`
    (or :class:`torch.utils.data.Subset` of one) or, for any other dataset,
    collected with ``net.get_iterator``. The data received by
    ``on_train_begin`` would still contain the validation split. A
    :class:`~sk_margin.nets.MarginNetClassifier` stores its inputs in float32,
    so the margins are those of the float32-rounded inputs, evaluated in
    float64 on the CPU. Sample weights are ignored.

    References
    ----------
    .. [1] K. Wu and Y. Yu. Understanding adversarial robustness: the
       trade-off between minimum and average margin. 2019. Section 2.
    .. [2] M. Hein and M. Andriushchenko. Formal guarantees on the robustness
       of a classifier against adversarial manipulation. NeurIPS 2017.
    .. [3] H. Ono, T. Takahashi and K. Kakizaki. Lightweight Lipschitz margin
       training for certified defense against adversarial examples. 2018.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_margin.nets import MarginStatistics
    >>> from sk_margin.nets import MarginNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> net = MarginNetClassifier(
    ...     criterion="lc_lmt",
    ...     criterion__eps=0.1,
    ...     callbacks=[("margins", MarginStatistics())],
    ...     max_epochs=3,
    ...     random_state=0,
    ... ).fit(X, y)
    >>> len(net.history[:, "train_avg_margin"])
    3
    >>> last = net.history[-1]
    >>> bool(last["train_min_margin"] <= last["train_avg_margin"])
    True
    >>> bool(0.0 <= net.history[-1, "required_margin_share"] <= 1.0)
    True
    """

    def __init__(
        self,
        X_valid=None,
        y_valid=None,
        *,
        kind="lipschitz",
        eps=None,
        every=1,
        subsample=None,
        random_state=0,
        batch_size=1024,
    ):
        self.X_valid = X_valid
        self.y_valid = y_valid
        self.kind = kind
        self.eps = eps
        self.every = every
        self.subsample = subsample
        self.random_state = random_state
        self.batch_size = batch_size

    # ----------------------------------------------------------- checks
    def _check_params(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}.")
        for name, value in [("every", self.every), ("batch_size", self.batch_size)]:
            if not is_positive_int(value):
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        if self.subsample is not None and not is_positive_int(self.subsample):
            raise ValueError(
                f"subsample must be None or a positive int, got {self.subsample!r}."
            )
        if self.eps is not None and not (
            isinstance(self.eps, numbers.Real) and self.eps > 0
        ):
            raise ValueError(f"eps must be None or > 0, got {self.eps!r}.")
        if (self.X_valid is None) != (self.y_valid is None):
            raise ValueError(
                "X_valid and y_valid must be given together, got "
                f"X_valid={'None' if self.X_valid is None else 'an array'} and "
                f"y_valid={'None' if self.y_valid is None else 'an array'}."
            )

    # ------------------------------------------------------------ hooks
    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Check the parameters before the first epoch.

        Parameters
        ----------
        net : skorch.NeuralNet
            The network being trained.
        X : object, default=None
            The training data, unused (see ``on_epoch_end``).
        y : object, default=None
            The training targets, unused.
        **kwargs : dict
            Other skorch arguments, unused.
        """
        self._check_params()

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        """Record the margin statistics of this epoch, if it is an ``every``-th.

        Parameters
        ----------
        net : skorch.NeuralNet
            The network being trained.
        dataset_train : torch.utils.data.Dataset, default=None
            The data of this epoch's training.
        dataset_valid : torch.utils.data.Dataset or None, default=None
            The internal validation split of skorch (``train_split``), used
            when ``X_valid`` is None.
        **kwargs : dict
            Other skorch arguments, unused.
        """
        if len(net.history) % self.every or _is_empty(dataset_train):
            return
        X, y = self._training_data(net, dataset_train)
        module = copy.deepcopy(net.module_).double().eval().cpu()
        input_shape = tuple(getattr(net, "input_shape_", X.shape[1:]))

        eps = self.eps
        if eps is None:
            eps = getattr(getattr(net, "criterion_", None), "eps", None)
        pair = None
        if self.kind == "lipschitz":  # one pass over the layers for both bounds
            lip, _, pair = network_lipschitz_bounds(module, input_shape)
        elif eps is not None:
            lip = lipschitz_bound(module, input_shape)
        if self.kind == "lipschitz" or eps is not None:
            net.history.record("lipschitz_bound", lip)

        scores = self._scores(module, X)
        logit = signed_margin(scores, y)
        self._record(net, "train", self._margins(scores, y, logit, pair))
        if eps is not None:
            required = np.sqrt(2.0) * lip * float(eps)
            net.history.record(
                "required_margin_share", float(np.mean(logit >= required))
            )

        valid = self._validation_data(net, dataset_valid)
        if valid is not None:
            Xv, yv = valid
            scores = self._scores(module, Xv)
            margins = self._margins(scores, yv, signed_margin(scores, yv), pair)
            self._record(net, "valid", margins)

    # ---------------------------------------------------------- helpers
    def _margins(self, scores, y, logit, pair):
        if self.kind == "logit":
            return logit
        return pairwise_lipschitz_margin(scores, y, pair)

    @staticmethod
    def _record(net, prefix, margins):
        net.history.record(f"{prefix}_min_margin", float(margins.min()))
        net.history.record(f"{prefix}_avg_margin", float(np.abs(margins).mean()))

    def _scores(self, module, X):
        """Float64 logits, batch by batch, without autograd."""
        step = self.batch_size
        with torch.no_grad():
            out = [
                module(torch.tensor(X[i : i + step], dtype=torch.float64))
                for i in range(0, len(X), step)
            ]
        return torch.cat(out).numpy()

    def _training_data(self, net, dataset):
        n = len(dataset)
        if self.subsample is not None and self.subsample < n:
            rng = check_random_state(self.random_state)
            keep = np.sort(rng.choice(n, size=self.subsample, replace=False))
            dataset = torch.utils.data.Subset(dataset, keep)
        return _dataset_arrays(net, dataset)

    def _validation_data(self, net, dataset_valid):
        if self.X_valid is None:
            if _is_empty(dataset_valid):
                return None
            return _dataset_arrays(net, dataset_valid)
        X = check_array(
            self.X_valid, allow_nd=True, dtype=np.float64, input_name="X_valid"
        )
        y = np.asarray(self.y_valid)
        if y.shape != (len(X),):
            raise ValueError(
                f"y_valid must have shape ({len(X)},) to match X_valid, got an "
                f"array of shape {y.shape}."
            )
        classes = getattr(net, "classes_", None)
        if classes is None:
            return X, y.astype(np.intp)
        known = np.isin(y, classes)
        if not known.all():
            raise ValueError(
                f"y_valid contains labels not seen in fit: "
                f"{np.unique(y[~known])[:10]}; expected labels among {classes}."
            )
        return X, np.searchsorted(classes, y)


def _is_empty(dataset):
    return dataset is None or len(dataset) == 0


def _dataset_arrays(net, dataset):
    """``(X, y)`` numpy arrays of a dataset: by index if possible, else iterated."""
    base, indices = _unwrap(dataset)
    if isinstance(base, Dataset) and base.y is not None:
        X = _inputs(base.X)
        if isinstance(X, np.ndarray | torch.Tensor):
            X, y = to_numpy(X), to_numpy(base.y)
            if indices is not None:
                X, y = X[indices], y[indices]
            return X, y.astype(np.intp)
    Xs, ys = [], []
    for batch in net.get_iterator(dataset, training=False):
        Xi, yi = unpack_data(batch)
        Xs.append(to_numpy(_inputs(Xi)))
        ys.append(to_numpy(yi))
    return np.concatenate(Xs), np.concatenate(ys).astype(np.intp)
