"""MarginNetClassifier: a skorch classifier with pluggable margin losses."""

import copy
import inspect
from numbers import Integral, Real

import numpy as np
import torch
from scipy.special import log_softmax
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    Options,
    StrOptions,
    validate_parameter_constraints,
)
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import (
    _check_sample_weight,
    check_is_fitted,
    validate_data,
)
from skorch import NeuralNetClassifier
from skorch.utils import is_dataset
from torch import nn

from sk_margin.margins import label_margin, signed_margin
from sk_margin.nets._training import MarginLossHooks
from sk_margin.nets.certify._layers import sequential_layers
from sk_margin.nets.certify._lipschitz import lipschitz_bound
from sk_margin.nets.certify._network import certify_network
from sk_margin.nets.certify._sorting import group_sort
from sk_margin.nets.layers._modules import default_module_for
from sk_margin.nets.losses import build_loss

__all__ = ["MarginNetClassifier", "softmax"]

# The layers whose outputs are the hidden representations (see
# MarginNetClassifier.representation): element-wise activations and sorts.
_ACTIVATIONS = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU,
    nn.CELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Tanh, nn.Sigmoid,
    nn.Hardtanh, nn.Hardswish, nn.Hardsigmoid,
)  # fmt: skip
# Rows per forward pass of representation(): bounds the memory of wide layers.
_REPRESENTATION_ROWS = 1024


def _private(obj, name):
    """``obj.name`` from the instance dict, as AttributeError if unset."""
    try:
        return vars(obj)[name]
    except KeyError:
        raise AttributeError(name) from None


def softmax(logits):
    """Softmax over the last axis: ``predict_proba`` of a logit network.

    Parameters
    ----------
    logits : torch.Tensor of shape (n_samples, n_classes)
        Module outputs.

    Returns
    -------
    torch.Tensor of shape (n_samples, n_classes)
        Class probabilities.
    """
    return torch.softmax(logits, dim=-1)


class MarginNetClassifier(MarginLossHooks, NeuralNetClassifier):
    """Neural-net classifier with margin losses and certified radii (skorch).

    A :class:`skorch.NeuralNetClassifier` whose ``criterion`` is one of the
    margin losses of :mod:`sk_margin.nets.losses`, chosen by name and tuned through
    skorch's routing (``criterion__eps``, ``criterion__mu``, ...), and which
    certifies, per input, an l2 radius within which its decision cannot change
    (:meth:`certify`). Training is skorch's own loop: callbacks, history,
    progress bar and parameter routing work as in skorch.

    Parameters
    ----------
    module : torch.nn.Module class or instance, or None, default=None
        The network; it must output logits. None: a default module chosen from
        the shape of the training data (:func:`sk_margin.nets.default_module_for`):
        an MLP (``module__hidden_sizes=(256,)``, ``module__activation="relu"``)
        for vector inputs, a small CNN for image inputs of shape (C, H, W). The
        input and output sizes are inferred at fit time.
    criterion : str, MarginLoss class or instance, default="cross_entropy"
        A name from :data:`sk_margin.nets.losses.LOSSES` (``"cross_entropy"``,
        ``"lmt"``, ``"lc_lmt"``, ``"margin_ratio"``, ``"margin_softmax"``,
        ``"normalized_margin"``, ``"margin_hinge"``, ``"amr"``,
        ``"gradient_margin"``, ``"cross_lipschitz"``), a
        :class:`~sk_margin.nets.losses.MarginLoss` subclass, or any torch loss taking
        ``(logits, target)``.
    optimizer : torch optimizer class, default=torch.optim.Adam
        As in skorch.
    lr : float, default=1e-3
        Learning rate.
    max_epochs : int, default=10
        Epochs per training round.
    batch_size : int, default=128
        As in skorch.
    train_split : callable or None, default=None
        As in skorch; None trains on all the data (scikit-learn's convention:
        validate with cross-validation outside the estimator).
    predict_nonlinearity : callable, default=softmax
        Turns logits into the probabilities of :meth:`predict_proba`.
    verbose : int, default=0
        As in skorch (``1`` prints the epoch table); also shows a progress
        bar (tqdm) in :meth:`certify`. For a bar over the batches of every
        epoch, add skorch's ``ProgressBar`` callback.
    reweight_delta : float, default=2.0
        For the margin losses of Kesidis, Miller & Xiang (criteria with a
        ``mu``): after each training round the weight ``lambda_x`` of every
        training sample whose margin constraint ``f_y(x) - max_{i != y} f_i(x)
        >= mu`` is violated is multiplied by this factor (> 1).
    max_reweight_rounds : int, default=3
        Rounds of re-weighting after the first one; stops early once every
        constraint holds. 0 disables it.
    reweight_epochs : int or "auto", default="auto"
        Epochs of each re-weighting round. With re-weighting, ``max_epochs``
        is the whole budget: the first round trains ``max_epochs -
        max_reweight_rounds * reweight_epochs`` epochs (at least 1, checked
        before training), each later round ``reweight_epochs``, all on the
        same network. ``"auto"``: ``max(1, max_epochs // (2 *
        max_reweight_rounds))``, so that the first round keeps about half of
        the budget and the total is ``max_epochs``. For the paper's
        protocol (every round a full training run), set ``reweight_epochs``
        to the epochs of a run and ``max_epochs`` to ``(max_reweight_rounds +
        1)`` times that.
    random_state : int or None, default=None
        Seeds torch for the initialisation and the batch order, without
        changing the global torch random state.
    dtype : {np.float32, np.float64}, default=np.float32
        Precision of training and of :meth:`predict_proba`: the module, the
        inputs and the sample weights are cast to it. float64 trains about
        twice as slowly, and makes fitting with integer ``sample_weight``
        equal to fitting on repeated samples up to float64 rounding (float32
        rounding otherwise). The network is initialised in float32 either
        way, so both start from the same weights. :meth:`predict`,
        :meth:`decision_function` and :meth:`certify` always evaluate a
        float64 copy.
    **kwargs
        Any other skorch parameter, including routed ones (``module__*``,
        ``criterion__*``, ``optimizer__*``, ``callbacks__*``).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    module_ : torch.nn.Module
        The trained network (in ``dtype``).
    criterion_ : torch.nn.Module
        The loss.
    history_ : skorch.History
        Per-epoch records; with re-weighting, ``reweight_round`` and
        ``margin_violations`` at the end of each round.
    sample_weight_ : ndarray of shape (n_samples,)
        The final per-sample weights ``lambda_x``.
    input_shape_ : tuple of int
        Shape of one input sample.
    n_features_in_ : int
        Size of the second axis of the training data.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sk_margin import MarginNetClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> X = X / 16.0
    >>> net = MarginNetClassifier(
    ...     criterion="lc_lmt", criterion__eps=0.1, max_epochs=5, random_state=0
    ... ).fit(X, y)
    >>> bool(net.score(X, y) > 0.8)
    True
    >>> net.certify(X[:3]).shape
    (3,)
    """

    # The parameters of this class (skorch checks its own), checked in fit.
    # skorch's own parameters it does not check before training, and ours.
    _margin_parameter_constraints: dict = {
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [
            Interval(Integral, 1, None, closed="left"),
            Options(Integral, {-1}),
        ],
        "reweight_delta": [Interval(Real, 1, None, closed="neither")],
        "max_reweight_rounds": [Interval(Integral, 0, None, closed="left")],
        "reweight_epochs": [
            Interval(Integral, 1, None, closed="left"),
            StrOptions({"auto"}),
        ],  # fmt: skip
        "random_state": [None, Interval(Integral, 0, None, closed="left")],
    }
    _DTYPES = {"float32": np.float32, "float64": np.float64}

    def __init__(
        self,
        module=None,
        *,
        criterion="cross_entropy",
        optimizer=torch.optim.Adam,
        lr=1e-3,
        max_epochs=10,
        batch_size=128,
        train_split=None,
        predict_nonlinearity=softmax,
        verbose=0,
        reweight_delta=2.0,
        max_reweight_rounds=3,
        reweight_epochs="auto",
        random_state=None,
        dtype=np.float32,
        **kwargs,
    ):
        super().__init__(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            predict_nonlinearity=predict_nonlinearity,
            verbose=verbose,
            **kwargs,
        )
        self.reweight_delta = reweight_delta
        self.max_reweight_rounds = max_reweight_rounds
        self.reweight_epochs = reweight_epochs
        self.random_state = random_state
        self.dtype = dtype

    # ------------------------------------------------ estimator contract
    # skorch's __init__ sets ``history_``, ``initialized_`` and
    # ``virtual_params_``; scikit-learn's contract is that __init__ sets
    # parameters only (a fitted-looking attribute before fit misleads
    # ``check_is_fitted`` and ``clone``). These properties keep skorch's
    # names working while storing the values under private names.
    @property
    def initialized_(self):
        """Whether :meth:`initialize` has run (skorch's flag)."""
        return _private(self, "_initialized")

    @initialized_.setter
    def initialized_(self, value):
        self._initialized = value

    @property
    def history_(self):
        """The :class:`skorch.History` of the fit (None before)."""
        return _private(self, "_history")

    @history_.setter
    def history_(self, value):
        self._history = value

    @property
    def virtual_params_(self):
        """skorch's virtual parameters (the optimizer's ``lr`` and such)."""
        return _private(self, "_virtual_params")

    @virtual_params_.setter
    def virtual_params_(self, value):
        self._virtual_params = value

    def _get_param_names(self):
        # skorch lists every attribute not ending in "_", including its
        # private bookkeeping (``_params_to_validate``), which clone would
        # pass back to __init__ and check_set_params would overwrite.
        return [name for name in super()._get_param_names() if name[0] != "_"]

    def __setstate__(self, state):
        # Pickles from before the properties hold the public names, and no
        # dtype (they trained in float32).
        for name in ("initialized_", "history_", "virtual_params_"):
            if name in state:
                state["_" + name[:-1]] = state.pop(name)
        state.setdefault("dtype", np.float32)
        state.setdefault("reweight_epochs", "auto")
        super().__setstate__(state)

    def _train_dtype(self):
        return self._DTYPES[np.dtype(self.dtype).name]

    # ----------------------------------------------------------- set-up
    def initialize_criterion(self):
        """Initialise the criterion from its name, class or instance.

        Returns
        -------
        self : MarginNetClassifier
            With ``criterion_`` set.
        """
        loss, kwargs = build_loss(self.criterion, self.get_params_for("criterion"))
        try:
            self.criterion_ = self.initialized_instance(loss, kwargs)
        except InvalidParameterError as err:
            # Name the parameter as the user set it, criterion__<name>.
            message = str(err)
            named = [k for k in kwargs if f"'{k}' parameter" in message]
            where = (
                f" (criterion={self.criterion!r})"
                if isinstance(self.criterion, str)
                else ""
            )
            prefix = f"criterion__{named[0]}{where}: " if named else ""
            raise InvalidParameterError(prefix + message) from err
        return self

    def initialize_module(self):
        """Initialise the module, sized from the training data where it asks.

        The default module (``module=None``) is chosen and sized by
        :func:`sk_margin.nets.default_module_for`. A module class whose
        ``__init__`` takes ``input_dim``, ``input_shape`` or ``n_classes``
        (as :class:`~sk_margin.nets.MLP`, :class:`~sk_margin.nets.SmallCNN`
        and :class:`~sk_margin.nets.LipschitzMLP` do) gets them from the data
        unless they are set (``module__n_classes=...``).

        Returns
        -------
        self : MarginNetClassifier
            With ``module_`` set.
        """
        kwargs = self.get_params_for("module")
        module = self.module
        fitted = hasattr(self, "input_shape_")
        if module is None:
            if not fitted:
                raise RuntimeError(
                    "The default module is sized from the training data: call fit "
                    "before initialize, or pass a module."
                )
            module, _ = default_module_for(self.input_shape_)
        if isinstance(module, type) and fitted:
            kwargs = {**self._inferred_sizes(module), **kwargs}
        self.module_ = self.initialized_instance(module, kwargs).to(
            getattr(torch, np.dtype(self._train_dtype()).name)
        )
        return self

    def _inferred_sizes(self, module):
        """The size keywords of a module class that it takes, from the data."""
        params = inspect.signature(module.__init__).parameters
        sizes = {}
        if "input_dim" in params:
            sizes["input_dim"] = int(np.prod(self.input_shape_))
        if "input_shape" in params:
            shape = default_module_for(self.input_shape_)[1].get("input_shape")
            sizes["input_shape"] = shape or tuple(self.input_shape_)
        if "n_classes" in params:
            sizes["n_classes"] = len(self.classes_inferred_)
        return sizes

    def check_data(self, X, y):
        """Skip skorch's class inference: labels are encoded in :meth:`fit`.

        Parameters
        ----------
        X : dict
            The training data.
        y : ndarray
            Encoded labels.
        """

    # ------------------------------------------------------------ data
    def _validate_X(self, X, reset=False, y=None, dtype=None):
        """Validated inputs: in ``dtype`` for the module, float64 to certify."""
        kwargs = {"allow_nd": True, "dtype": dtype or self._train_dtype()}
        if y is None:
            X = validate_data(self, X, reset=reset, **kwargs)
        else:
            X, y = validate_data(self, X, y, reset=reset, **kwargs)
        if not reset and X.shape[1:] != self.input_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but {type(self).__name__} "
                f"was fitted on samples of shape {self.input_shape_}."
            )
        if not X.flags.writeable:
            # torch wraps arrays without copying and warns on read-only ones
            # (memmaps, pandas' copy-on-write arrays); the data are not changed.
            X = X.copy()
        return X if y is None else (X, y)

    def fit(self, X, y, sample_weight=None, **fit_params):
        """Train the network, with re-weighting rounds for the Kesidis losses.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, C, H, W)
            Training data (numpy, pandas, float32 or float64).
        y : array-like of shape (n_samples,)
            Class labels (any type scikit-learn accepts).
        sample_weight : array-like of shape (n_samples,), default=None
            Initial per-sample weights ``lambda_x`` (1 by default), used by
            every :class:`~sk_margin.nets.losses.MarginLoss`.
        **fit_params : dict
            Passed on to skorch (e.g. to the module's forward).

        Returns
        -------
        self : MarginNetClassifier
            The fitted estimator.
        """
        self._validate_margin_params()
        continuing = self.warm_start and self.initialized_
        X, y_idx, weights = self._prepare(X, y, sample_weight, reset=not continuing)
        with torch.random.fork_rng():
            if self.random_state is not None:
                torch.manual_seed(self.random_state)
            if not continuing:
                self.initialize()
            data = {"X": X, "sample_weight": weights}
            first, each = self._reweight_schedule()
            epochs = {} if first is None else {"epochs": first}
            super().partial_fit(
                data, y_idx, _routing_method="fit", **epochs, **fit_params
            )
            if first is not None:
                weights = self._reweighting_rounds(
                    X, y_idx, weights, {**fit_params, "epochs": each}
                )
        self.sample_weight_ = weights
        return self

    def partial_fit(self, X, y=None, classes=None, sample_weight=None, **fit_params):
        """Continue training for ``max_epochs`` epochs (initialising if needed).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Training data.
        y : array-like of shape (n_samples,)
            Class labels.
        classes : array-like of shape (n_classes,), default=None
            All the classes, required on the first call when ``y`` may not
            contain every class (scikit-learn's ``partial_fit`` convention).
        sample_weight : array-like of shape (n_samples,), default=None
            Per-sample weights.
        **fit_params : dict
            Passed on to skorch.

        Returns
        -------
        self : MarginNetClassifier
            The updated estimator.
        """
        self._validate_margin_params()
        first = not (self.initialized_ and hasattr(self, "input_shape_"))
        X, y_idx, weights = self._prepare(X, y, sample_weight, first, classes)
        if first:
            self.initialize()
        super().partial_fit({"X": X, "sample_weight": weights}, y_idx, **fit_params)
        self.sample_weight_ = weights
        return self

    def _prepare(self, X, y, sample_weight, reset, classes=None):
        """Validate the training data; encode the labels; set the data shapes."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None."
            )
        X, y = self._validate_X(X, reset=reset, y=y)
        check_classification_targets(y)
        if reset:
            labels = np.unique(y) if classes is None else np.unique(classes)
            if len(labels) < 2:
                raise ValueError(
                    f"{type(self).__name__} needs samples of at least 2 classes in "
                    f"the data, but the data contains only one class: {labels[0]!r}."
                )
            self.classes_inferred_ = labels
            self.input_shape_ = X.shape[1:]
        known = np.isin(y, self.classes_)
        if not known.all():
            raise ValueError(
                f"y contains labels not seen in fit: {np.unique(y[~known])[:10]}; "
                f"expected labels among {self.classes_}."
            )
        y_idx = np.searchsorted(self.classes_, y).astype(np.int64)
        weights = _check_sample_weight(sample_weight, X, dtype=self._train_dtype())
        return X, y_idx, weights

    def _validate_margin_params(self):
        """Check the parameters this class adds to skorch's, before any work."""
        validate_parameter_constraints(
            self._margin_parameter_constraints,
            {name: getattr(self, name) for name in self._margin_parameter_constraints},
            caller_name=type(self).__name__,
        )
        try:  # np.dtype(None) is float64: None is refused, not read as that
            name = None if self.dtype is None else np.dtype(self.dtype).name
        except TypeError:
            name = None
        if name not in self._DTYPES:
            raise InvalidParameterError(
                f"The 'dtype' parameter of {type(self).__name__} must be "
                f"np.float32 or np.float64 (or their names). Got {self.dtype!r} "
                "instead."
            )

    # ---------------------------------------------------------- predict
    def _logits64(self, X):
        """Logits in float64 from an eval-mode float64 copy of the module."""
        module = self._module64()
        with torch.no_grad():
            out = module(torch.from_numpy(np.array(X, dtype=np.float64)))
        return out.numpy()

    def _module64(self):
        check_is_fitted(self, "module_")
        return copy.deepcopy(self.module_).double().eval().cpu()

    def predict_proba(self, X):
        """Class probabilities: the softmax of the logits.

        With the default ``predict_nonlinearity`` (:func:`softmax`), computed
        in float64 from the float64 logits that :meth:`predict` and
        :meth:`certify` use (a probability reaches exactly 1 only beyond a
        margin of about 37, against 17 in float32); with another one, as
        skorch computes it, in the module's dtype.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Probabilities of the classes in ``classes_`` order.
        """
        check_is_fitted(self, "module_")
        if is_dataset(X):  # skorch's own scoring on its validation split
            return super().predict_proba(X)
        if self.predict_nonlinearity is softmax:
            return np.exp(self.predict_log_proba(X))
        return super().predict_proba(self._validate_X(X))

    def predict_log_proba(self, X):
        """Logarithms of the class probabilities, from the float64 logits.

        ``log_softmax`` of the logits in float64 (with the default
        ``predict_nonlinearity``): unlike ``log`` of probabilities, which are
        exactly 1 beyond a margin of about 37 (17 in float32), it keeps
        confident predictions apart, so rankings by confidence (max-softmax
        scores, AUCs) do not tie.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Log-probabilities of the classes in ``classes_`` order, float64.
        """
        check_is_fitted(self, "module_")
        if self.predict_nonlinearity is not softmax:
            with np.errstate(divide="ignore"):
                return np.log(self.predict_proba(X))
        scores = self._logits64(self._validate_X(X, dtype=np.float64))
        return log_softmax(scores, axis=1)

    def predict(self, X):
        """Predicted class labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``: the arg-max of the float64 logits, the
            decision that :meth:`certify` certifies.
        """
        check_is_fitted(self, "module_")
        if is_dataset(X):
            # skorch scores its internal validation split (encoded labels) by
            # calling predict on a Dataset: answer in column indices, as
            # skorch's NeuralNetClassifier does.
            return np.argmax(super().predict_proba(X), axis=1)
        scores = self._logits64(self._validate_X(X, dtype=np.float64))
        return self.classes_[np.argmax(scores, axis=1)]

    def decision_function(self, X):
        """Logits, as scikit-learn's decision scores.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            One column per class; for two classes ``f_1 - f_0``.
        """
        check_is_fitted(self, "module_")
        scores = self._logits64(self._validate_X(X, dtype=np.float64))
        return scores[:, 1] - scores[:, 0] if scores.shape[1] == 2 else scores

    def input_jacobian(self, X):
        """Gradients of the logits with respect to the input, in float64.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.

        Returns
        -------
        jacobian : ndarray of shape ``(n_samples, n_classes) + sample_shape``
            ``grad_x f_j(x)`` (for two classes, the gradient of ``f_1 - f_0``,
            matching :meth:`decision_function`).
        """
        check_is_fitted(self, "module_")
        X = self._validate_X(X, dtype=np.float64)
        module = self._module64()
        x = torch.from_numpy(np.array(X)).requires_grad_(True)
        out = module(x)
        rows = [
            torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0]
            for j in range(out.shape[1])
        ]
        J = torch.stack(rows, dim=1).numpy()
        return J[:, 1] - J[:, 0] if J.shape[1] == 2 else J

    def _hidden_layers(self, module):
        """Positions, in the layer chain, of the layers that give representations."""
        layers = [layer for _, layer in sequential_layers(module, check_hooks=False)]
        hidden = [
            i
            for i, layer in enumerate(layers[:-1])
            if isinstance(layer, _ACTIVATIONS) or group_sort(layer) is not None
        ]
        return layers, hidden

    def representation(self, X, layer=-1):
        """Hidden activations: the output of one of the network's activation layers.

        The network's hidden representations are the outputs of its
        element-wise activations (``nn.ReLU``, ``nn.Tanh``, ...) and its sorts
        (:class:`~sk_margin.nets.MaxMin`), in the order they run, each
        flattened to one row per sample. ``layer=-1``, the default, is the
        last of them: for the default modules and the Lipschitz networks,
        the input of the last linear layer (the penultimate activations).
        The network must be an ``nn.Sequential`` (possibly nested), as every
        module of :mod:`sk_margin.nets` is. Computed in float64 in eval mode.
        Used by :class:`~sk_margin.MarginPValueDetector`'s
        ``representations``.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.
        layer : int, default=-1
            Which representation, counted from 0 in execution order, or from
            the end with negative values.

        Returns
        -------
        Z : ndarray of shape (n_samples, n_units)
            The activations of that layer.
        """
        check_is_fitted(self, "module_")
        if isinstance(layer, bool) or not isinstance(layer, Integral):
            raise TypeError(f"layer must be an int, got {layer!r}.")
        X = self._validate_X(X, dtype=np.float64)
        module = self._module64()
        layers, hidden = self._hidden_layers(module)
        if not hidden:
            raise ValueError(
                f"{type(self.module_).__name__} has no hidden representation: "
                "representation() reads the output of an activation layer (such as "
                "nn.ReLU or MaxMin) of an nn.Sequential network before its last "
                "layer, and this module has none (or is not an nn.Sequential)."
            )
        if not -len(hidden) <= layer < len(hidden):
            raise ValueError(
                f"layer={layer} is out of range: {type(self.module_).__name__} has "
                f"{len(hidden)} hidden representation(s), so layer must be in "
                f"[{-len(hidden)}, {len(hidden) - 1}]."
            )
        stop = hidden[layer] + 1
        parts = []
        with torch.no_grad():
            for start in range(0, max(len(X), 1), _REPRESENTATION_ROWS):
                z = torch.from_numpy(X[start : start + _REPRESENTATION_ROWS])
                for mod in layers[:stop]:
                    z = mod(z)
                parts.append(z.reshape(len(z), -1).numpy())
        return np.concatenate(parts)

    # ---------------------------------------------------------- margins
    def _signed_margins(self, X, y_idx):
        return signed_margin(self._logits64(X), y_idx)

    def margins(self, X, y=None):
        """Logit margins of the predictions, or signed margins of the labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Input data.
        y : array-like of shape (n_samples,), default=None
            True labels: the signed margin ``f_y - max_{i != y} f_i``.

        Returns
        -------
        margin : ndarray of shape (n_samples,)
            Margins in logit units (see :mod:`sk_margin.margins`).
        """
        check_is_fitted(self, "module_")
        scores = self._logits64(self._validate_X(X, dtype=np.float64))
        return label_margin(scores, self.classes_, y)

    # ----------------------------------------------------- certificates
    def lipschitz_constant(self):
        """Sound upper bound of the network's l2 Lipschitz constant.

        Returns
        -------
        float
            The product of sound per-layer bounds
            (:func:`sk_margin.nets.lipschitz_bound`), in eval mode.
        """
        return lipschitz_bound(self._module64(), self.input_shape_)

    def certify(self, X, method="auto"):
        """Certified l2 radius per sample: the prediction cannot change within it.

        ``"global_pairwise"`` (Hein & Andriushchenko 2017, Theorem 2.1 with
        the global cross-Lipschitz constant of each class pair),
        ``"global_l2"`` (Tsuzuku et al. 2018), ``"global_linf"`` (Kesidis et
        al., Theorem 2.1), ``"local_quadratic"`` (one hidden layer only:
        Theorem 2.1 with Proposition 2.2), ``"bound_propagation"`` (CROWN
        from the l2 ball) or ``"auto"``, per row the largest of those
        available; see :func:`sk_margin.nets.certify_network` for the
        formulas and what each needs. Rows are certified in batches of
        ``batch_size`` (smaller where bound propagation runs), with a
        progress bar when ``verbose`` is set.

        What it costs: the global certificates take about a millisecond per
        row; ``"auto"`` adds bound propagation where it can beat them, about
        10 ms per row on a 784-256-256-10 ReLU MLP and 1-4 s per MNIST digit
        on a ReLU ``SmallCNN`` (one CPU thread), for about twice the global
        radius. Use ``"global_pairwise"`` where that is too slow.

        All bounds are sound upper bounds computed in float64 in eval mode:
        exact spectral norms for dense layers and a proven bound for
        convolutions, never a bare power-iteration estimate.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Points to certify.
        method : {"auto", "global_pairwise", "global_l2", "global_linf", \
                "local_quadratic", "bound_propagation"}, default="auto"
            Which certificate. The former names ``"pairwise"``,
            ``"tsuzuku"``, ``"kesidis"`` and ``"local"`` still work, with a
            FutureWarning.

        Returns
        -------
        radius : ndarray of shape (n_samples,)
            0 where the two top logits tie.
        """
        check_is_fitted(self, "module_")
        X = self._validate_X(X, dtype=np.float64)
        return certify_network(
            self._module64(),
            X,
            self.input_shape_,
            method,
            batch_size=self.batch_size if self.batch_size > 0 else len(X),
            progress=bool(self.verbose),
        )
