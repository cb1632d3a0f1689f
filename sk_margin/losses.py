"""Torch margin-training losses, usable as the skorch ``criterion``.

Every loss is a :class:`MarginLoss`: a plain :class:`torch.nn.Module` whose
hyperparameters are keyword arguments of ``__init__``, stored as attributes of
the same name, so that skorch routing (``criterion__eps=0.5``) and
``GridSearchCV`` (``{"criterion__eps": [0.1, 0.5]}``) reach them. Losses are
selected by name through :data:`LOSSES` / :func:`resolve_loss`.

The loss interface
------------------
A loss subclasses :class:`MarginLoss` and implements ::

    forward(logits, target, *, X=None, module=None, features=None,
            sample_weight=None) -> scalar tensor

- ``logits`` (n, K) float and ``target`` (n,) long class indices;
- ``X`` is the input batch, the very tensor the network received;
- ``module`` is the torch network (weights, Lipschitz estimates);
- ``features`` (n, h) is the input of the network's last ``nn.Linear``
  (penultimate features), captured by a forward hook in the same forward pass;
- ``sample_weight`` (n,) float or None.

It returns the batch mean of the per-sample losses, or
``sum(w * l) / sum(w)`` when ``sample_weight`` is given (:func:`_reduce` does
this), plus any batch-level term (e.g. a weight penalty). Two class
attributes tell the network what to provide:

- ``needs_input_grad = True``: the net calls ``X.requires_grad_(True)`` before
  the forward pass (with gradients enabled, also when validating), so
  ``forward`` may differentiate ``logits`` w.r.t. ``X`` with
  ``create_graph=True`` (double back-propagation);
- ``needs_features = True``: the net passes ``features``.

Adding your own loss takes a subclass; pass the class (or an instance) as the
criterion, e.g. ``MarginNetClassifier(criterion=SquaredHinge,
criterion__mu=2.0)``:

>>> import torch
>>> from sk_margin.losses import MarginLoss, _reduce
>>> class SquaredHinge(MarginLoss):
...     def __init__(self, mu=1.0):
...         super().__init__()
...         self.mu = mu
...
...     def forward(self, logits, target, *, sample_weight=None, **unused):
...         f_c = logits.gather(1, target[:, None])[:, 0]
...         runner_up = logits.scatter(1, target[:, None], -torch.inf).amax(1)
...         per_sample = torch.relu(runner_up + self.mu - f_c) ** 2
...         return _reduce(per_sample, sample_weight)
>>> SquaredHinge(mu=1.0)(torch.tensor([[2.0, 0.5], [0.0, 0.2]]), torch.tensor([0, 0]))
tensor(0.7200)
"""

import inspect
import math

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "LOSSES",
    "AverageMarginLoss",
    "CrossEntropyMarginLoss",
    "CrossLipschitzLoss",
    "GradientMarginLoss",
    "LCLMTLoss",
    "LMTLoss",
    "MarginHingeLoss",
    "MarginLoss",
    "MarginRatioLoss",
    "MarginSoftmaxLoss",
    "NormalizedMarginLoss",
    "resolve_loss",
]

_TINY = 1e-12
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_KEYWORD_KINDS = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


# ----------------------------------------------------------------- helpers ---
def _reduce(per_sample, sample_weight):
    """Batch mean of ``per_sample``, or ``sum(w * l) / sum(w)`` with weights.

    A weight of 2 counts a sample twice, a weight of 0 removes it; all-zero
    weights give 0.
    """
    if sample_weight is None:
        return per_sample.mean()
    w = torch.as_tensor(sample_weight).to(per_sample)
    if w.shape != per_sample.shape:
        raise ValueError(
            f"sample_weight has shape {tuple(w.shape)}, but the batch has "
            f"{per_sample.shape[0]} samples; expected shape ({per_sample.shape[0]},)."
        )
    return (w * per_sample).sum() / w.sum().clamp_min(_TINY)


def _check_inputs(logits, target):
    if logits.ndim != 2 or logits.shape[1] < 2:
        raise ValueError(
            "logits must have shape (n_samples, n_classes) with n_classes >= 2, "
            f"got shape {tuple(logits.shape)}."
        )
    if target.shape != logits.shape[:1]:
        raise ValueError(
            f"target must have shape ({logits.shape[0]},), got {tuple(target.shape)}."
        )
    return target.long()


def _gather(scores, target):
    """``scores[i, target[i]]`` for every row."""
    return scores.gather(1, target[:, None])[:, 0]


def _runner_up(scores, target):
    """Largest score over ``j != target`` (the target is masked by index)."""
    masked = scores.scatter(1, target[:, None], -torch.inf)
    return masked.max(1)


def _log_softplus(z):
    """``log(softplus(z))`` without underflow: it tends to ``z`` as z -> -inf."""
    safe = z.clamp_min(-20.0)  # keeps the unused branch finite for autograd
    return torch.where(z > -20.0, torch.log(F.softplus(safe)), z)


def _input_gradients(logits, X, name):
    """``G[i, k] = grad_x f_k(x_i)`` flattened to shape (n, K, d).

    One backward pass per class on ``logits[:, k].sum()``: this is the
    per-sample gradient as long as samples do not interact in the forward pass
    (true for eval-mode networks; BatchNorm in training mode couples them).
    """
    if not isinstance(X, torch.Tensor) or not X.requires_grad:
        raise ValueError(
            f"{name} differentiates the logits w.r.t. the input: pass X, call "
            "X.requires_grad_(True) before the forward pass and keep gradients "
            "enabled (needs_input_grad is True)."
        )
    if not logits.requires_grad:
        raise ValueError(
            f"{name}: the logits do not depend on X through autograd; run the "
            "forward pass with gradients enabled."
        )
    create_graph = torch.is_grad_enabled()
    n = logits.shape[0]
    grads = []
    for k in range(logits.shape[1]):
        (g,) = torch.autograd.grad(
            logits[:, k].sum(),
            X,
            create_graph=create_graph,
            retain_graph=True,
            materialize_grads=True,
        )
        grads.append(g.reshape(n, -1))
    return torch.stack(grads, 1)


# -------------------------------------------------------------- interface ---
class MarginLoss(nn.Module):
    """Base class of the margin losses; subclasses implement ``forward``.

    See the module docstring for the interface. ``needs_input_grad`` and
    ``needs_features`` are class attributes read by the network.
    """

    needs_input_grad = False
    needs_features = False

    def __init__(self):
        super().__init__()

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        """Loss of a batch.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Decision scores of the network.
        target : torch.Tensor of shape (n_samples,)
            Class indices (long).
        X : torch.Tensor, default=None
            The input batch the network received; requires grad when
            ``needs_input_grad`` is True.
        module : torch.nn.Module, default=None
            The network, for losses that read its weights.
        features : torch.Tensor of shape (n_samples, n_features), default=None
            Input of the network's last ``nn.Linear`` (``needs_features``).
        sample_weight : torch.Tensor of shape (n_samples,), default=None
            Per-sample weights.

        Returns
        -------
        loss : torch.Tensor
            Scalar: the (weighted) batch mean of the per-sample losses, plus
            any batch-level term.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement forward(logits, target, ...)."
        )

    def extra_repr(self):
        """Hyperparameters shown by ``repr``.

        Returns
        -------
        text : str
            ``name=value`` pairs of the ``__init__`` keyword arguments.
        """
        params = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in params if p.kind in _KEYWORD_KINDS][1:]
        return ", ".join(f"{n}={getattr(self, n, None)!r}" for n in names)


_FORWARD_DOC = MarginLoss.forward.__doc__


class CrossEntropyMarginLoss(MarginLoss):
    """Plain cross-entropy, the baseline: ``-log softmax(f)_y``.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.losses import CrossEntropyMarginLoss
    >>> CrossEntropyMarginLoss()(torch.zeros(2, 4), torch.tensor([0, 3]))
    tensor(1.3863)
    """

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        per_sample = F.cross_entropy(logits, target, reduction="none")
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


# ------------------------------------------- Lipschitz-margin training ---
def _pool_lipschitz(layer, name):
    """l2 Lipschitz bound of max / average pooling from window overlaps.

    An input entry lies in at most ``c = prod_d ceil((dil_d (k_d - 1) + 1) / s_d)``
    windows, so max pooling is ``sqrt(c)``-Lipschitz and average pooling
    (mean of ``prod k_d`` entries, Cauchy-Schwarz) ``sqrt(c / prod k_d)``.
    """
    dim = int(type(layer).__name__[-2])

    def per_dim(value):
        return tuple(value) if isinstance(value, (tuple, list)) else (value,) * dim

    k = per_dim(layer.kernel_size)
    s = per_dim(layer.stride or layer.kernel_size)
    dil = per_dim(getattr(layer, "dilation", 1))
    spans = [d * (a - 1) + 1 for a, d in zip(k, dil, strict=True)]
    cover = math.prod(math.ceil(span / b) for span, b in zip(spans, s, strict=True))
    if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
        return math.sqrt(cover)
    padded = any(per_dim(layer.padding))
    if (
        (padded and not layer.count_include_pad)
        or layer.ceil_mode
        or getattr(layer, "divisor_override", None)
    ):
        raise TypeError(
            f"Cannot bound the Lipschitz constant of layer '{name}' ({layer!r}): "
            "average pooling with count_include_pad=False, ceil_mode or "
            "divisor_override averages fewer entries at the border."
        )
    return math.sqrt(cover / math.prod(k))


_LIPSCHITZ_ONE = (
    nn.ReLU,
    nn.ReLU6,
    nn.Hardtanh,
    nn.Tanh,
    nn.Softplus,
    nn.Flatten,
    nn.Unflatten,
    nn.Identity,
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
)
_POOLS = (
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
)


def _capture_input_shapes(module, X, layers):
    """Per-sample input shape of each layer, from an eval forward of ``X[:1]``."""
    shapes = {}

    def hook(layer, args):
        shapes.setdefault(layer, tuple(args[0].shape[1:]))

    handles = [layer.register_forward_pre_hook(hook) for layer in layers]
    modes = [(m, m.training) for m in module.modules()]
    module.eval()  # no BatchNorm statistics update, no dropout
    try:
        with torch.no_grad():
            module(X[:1])
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return shapes


class _LipschitzMarginLoss(MarginLoss):
    """Shared code of LMT and LC-LMT: the Lipschitz estimate and the inflation."""

    _runner_up_only = False

    def __init__(self, eps=0.5, *, clip=False):
        super().__init__()
        self.eps = eps
        self.clip = clip
        self.power_iterates_ = {}
        self.lipschitz_ = None

    def _spectral_norm(self, name, apply, weight, shape):
        """One persistent power-iteration step; ``u^T A(W) v``, u, v detached."""
        v = self.power_iterates_.get(name)
        if v is None or tuple(v.shape) != tuple(shape):
            v = torch.randn(shape, dtype=weight.dtype, device=weight.device)
            v = v / v.norm().clamp_min(_TINY)
        v = v.to(weight)
        with torch.enable_grad():
            v_in = v.detach().requires_grad_(True)
            Av = apply(v_in, weight.detach())
            u = Av.detach() / Av.detach().norm().clamp_min(_TINY)
            (ATu,) = torch.autograd.grad(Av, v_in, grad_outputs=u)
        norm = ATu.norm()
        v = torch.where(norm > 0, ATu / norm.clamp_min(_TINY), v)
        self.power_iterates_[name] = v.detach()
        return (u * apply(v, weight)).sum()

    def _layer_lipschitz(self, name, layer, shapes):
        if isinstance(layer, nn.Linear):
            return self._spectral_norm(
                name, F.linear, layer.weight, (layer.in_features,)
            )
        if isinstance(layer, _CONV):
            return self._spectral_norm(
                name,
                lambda v, w: layer._conv_forward(v, w, None),
                layer.weight,
                (1, *shapes[layer]),
            )
        if isinstance(layer, nn.modules.batchnorm._BatchNorm):
            if layer.running_var is None:
                raise TypeError(
                    f"Cannot bound the Lipschitz constant of layer '{name}' "
                    f"({layer!r}): it keeps no running variance "
                    "(track_running_stats=False)."
                )
            scale = torch.rsqrt(layer.running_var + layer.eps)
            if layer.weight is not None:
                scale = layer.weight.abs() * scale
            return scale.max()
        if isinstance(layer, nn.LeakyReLU):
            return max(1.0, abs(layer.negative_slope))
        if isinstance(layer, nn.ELU):
            return max(1.0, layer.alpha)
        if isinstance(layer, nn.Sigmoid):
            return 0.25
        if isinstance(layer, _LIPSCHITZ_ONE):
            return 1.0
        if isinstance(layer, _POOLS):
            return _pool_lipschitz(layer, name)
        raise TypeError(
            f"Cannot bound the Lipschitz constant of layer '{name}' "
            f"({type(layer).__name__}). Supported: Linear, Conv1d/2d/3d, "
            "BatchNorm, ReLU, ReLU6, LeakyReLU, ELU, Tanh, Sigmoid, Softplus, "
            "Hardtanh, Max/AvgPool, Flatten, Unflatten, Dropout, Identity."
        )

    def lipschitz_estimate(self, module, X=None):
        """Estimate of the l2 Lipschitz constant of ``module``.

        The product over the leaf layers of per-layer bounds, the spectral
        norms of ``nn.Linear`` / convolution layers coming from one persistent
        power-iteration step per call (see the class Notes).

        Parameters
        ----------
        module : torch.nn.Module
            The network, treated as the chain of its leaf modules.
        X : torch.Tensor, default=None
            The input batch; needed once, to find the input shape of
            convolution layers.

        Returns
        -------
        lipschitz : torch.Tensor
            Scalar, differentiable w.r.t. the weights.
        """
        if not isinstance(module, nn.Module):
            raise ValueError(
                f"{type(self).__name__} needs the network: pass module=<the torch "
                "module> to estimate its Lipschitz constant."
            )
        leaves = []
        for name, layer in module.named_modules():
            if not next(layer.children(), None):
                leaves.append((name, layer))
            elif next(layer.parameters(recurse=False), None) is not None:
                raise TypeError(
                    f"Cannot bound the Lipschitz constant of layer '{name}' "
                    f"({type(layer).__name__}): it holds parameters outside "
                    "its sub-modules."
                )
        convs = [layer for _, layer in leaves if isinstance(layer, _CONV)]
        shapes = {}
        known = self.power_iterates_
        if any(name not in known for name, layer in leaves if layer in convs):
            if not isinstance(X, torch.Tensor):
                raise ValueError(
                    f"{type(self).__name__} needs X to find the input shape of "
                    "the convolution layers."
                )
            shapes = _capture_input_shapes(module, X.detach(), convs)
        for name, layer in leaves:
            if layer in convs and layer not in shapes:
                shapes[layer] = tuple(known[name].shape[1:])
        lipschitz = torch.ones((), dtype=torch.get_default_dtype())
        for name, layer in leaves:
            lipschitz = lipschitz * self._layer_lipschitz(name, layer, shapes)
        self.lipschitz_ = lipschitz.detach()
        return lipschitz

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        lipschitz = self.lipschitz_estimate(module, X).to(logits)
        amount = math.sqrt(2.0) * self.eps * lipschitz
        runner_val, runner_idx = _runner_up(logits, target)
        if self._runner_up_only:
            where = F.one_hot(runner_idx, logits.shape[1]).to(logits)
        else:
            where = torch.ones_like(logits).scatter(1, target[:, None], 0.0)
        if self.clip:
            margin = (_gather(logits, target) - runner_val).detach()
            full = amount.detach()
            factor = (margin / full.clamp_min(_TINY)).clamp(0.0, 1.0)
            amount = torch.where(full > 0, factor, 0.0) * amount
        inflated = logits + amount.reshape(-1, 1) * where
        per_sample = F.cross_entropy(inflated, target, reduction="none")
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


_LMT_NOTES = """
    Notes
    -----
    ``L`` is an *estimate* (from below, at every step) of the product bound
    ``prod_l Lip(layer_l)`` over the leaf modules of the network, which is
    assumed to be their chain: operations written in ``forward`` (``F.relu``,
    residual additions, reused layers) are invisible and taken as 1-Lipschitz.
    ``nn.Linear`` and convolution layers contribute their spectral norm (bias
    excluded), estimated by *one* power-iteration step per call with vectors
    kept in ``power_iterates_`` across calls, as in LMT. Convolutions use the
    linear map on an input shaped like the layer's (found once from an eval
    forward of ``X[:1]``) and its adjoint through autograd. The estimate is
    ``u^T W v`` with ``u, v`` detached, so the margin term trains the weights.
    Fixed bounds: ReLU, ReLU6, Hardtanh, Tanh, Softplus, Flatten, Unflatten,
    Identity, Dropout 1 (eval-mode maps); LeakyReLU ``max(1, |slope|)``; ELU
    ``max(1, alpha)``; Sigmoid 1/4; BatchNorm ``max_c |gamma_c| /
    sqrt(running_var_c + eps)`` (the authors use the batch variance in
    training); max / average pooling from window overlaps. Other layers raise
    a TypeError naming the layer.

    ``clip=True`` follows the authors' released code (``Lmt`` in
    ``src/function/last_fc.py`` of ytsmiling/lmt), which lowers the target
    logit instead of raising the others (the same under softmax
    cross-entropy) by ``a_i = clip(m_i, 0, sqrt(2) L eps)``, with ``m_i`` the
    current margin ``f_t - max_{j != t} f_j``: a target is never pushed below
    the runner-up and a misclassified sample (``m_i < 0``) gets no inflation,
    i.e. plain cross-entropy. As there, the factor ``a_i / (sqrt(2) L eps)``
    is a constant for autograd, so the gradient w.r.t. ``L`` is scaled by it.
    Here ``a_i`` is added to the inflated logits. The default ``clip=False``
    is Algorithm 1 / 2 of the papers.

    Attributes
    ----------
    power_iterates_ : dict of str to torch.Tensor
        Power-iteration vector (input side) per layer name.
    lipschitz_ : torch.Tensor
        The estimate ``L`` used by the last call (detached).
"""


class LMTLoss(_LipschitzMarginLoss):
    """Lipschitz-margin training: cross-entropy with inflated non-target logits.

    ``sqrt(2) L eps`` is added to every non-target logit before the
    cross-entropy (Tsuzuku, Sato & Sugiyama 2018; Algorithm 1 of Ono et al.),
    ``sqrt(2) L eps`` being the margin that certifies an l2 ball of radius
    ``eps`` for an ``L``-Lipschitz network (eq. 3 of Ono et al.).

    Parameters
    ----------
    eps : float, default=0.5
        Target l2 robustness radius.
    clip : bool, default=False
        Clip the inflation as the authors' released code does (see Notes).
    """

    __doc__ += _LMT_NOTES


class LCLMTLoss(_LipschitzMarginLoss):
    """LC-LMT: inflate only the largest non-target logit by ``sqrt(2) L eps``.

    Algorithm 2 of Ono, Takahashi & Kakizaki (lightweight Lipschitz margin
    training); the same ``L`` estimate as :class:`LMTLoss`.

    Parameters
    ----------
    eps : float, default=0.5
        Target l2 robustness radius.
    clip : bool, default=False
        Clip the inflation so that the runner-up never overtakes the target
        (the rule of the LMT authors' code, see Notes).
    """

    __doc__ += _LMT_NOTES
    _runner_up_only = True


# ------------------------------------------- Kesidis, Miller & Xiang ---
def _check_mu(mu, name):
    if not mu >= 0:
        raise ValueError(f"{name}: mu must be >= 0, got {mu!r}.")
    return float(mu)


class MarginRatioLoss(MarginLoss):
    """Margin-ratio loss, eq. 6 of Kesidis, Miller & Xiang.

    ``-log(s_c / ((C-1) mu + sum_{i != c} s_i))`` with ``s = softplus(f)``.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin.

    Notes
    -----
    Eq. 6 assumes rectified outputs ``f >= 0`` (their eq. 1). Instead of
    requiring them, the logits are rectified with softplus, which is positive
    (every log argument is > 0, computed in the log domain so that very
    negative logits do not underflow), smooth with a non-zero gradient
    everywhere (a clamp to ``epsilon`` or an output ReLU would stop the
    gradient of a sample whose target output is 0), and works with any
    network. Softplus is increasing and 1-Lipschitz, so a margin ``mu`` met by
    the scores ``s`` implies a margin >= ``mu`` on the logits; predictions
    (argmax) are unchanged. As printed, the target score is absent from the
    denominator (unlike the softmax version, eq. 7); we follow the print. The
    loss is then unbounded below: it is negative once
    ``s_c > sum_{i != c} (s_i + mu)``, which implies the margin ``mu``.
    """

    def __init__(self, mu=1.0):
        super().__init__()
        self.mu = mu

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        mu = _check_mu(self.mu, type(self).__name__)
        log_s = _log_softplus(logits)
        others = log_s.scatter(1, target[:, None], -torch.inf)
        extra = (logits.shape[1] - 1) * mu
        log_mu = torch.full_like(log_s[:, :1], math.log(extra) if extra else -math.inf)
        log_den = torch.logsumexp(torch.cat([others, log_mu], 1), 1)
        per_sample = log_den - _gather(log_s, target)
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


class MarginSoftmaxLoss(MarginLoss):
    """Cross-entropy with ``mu`` added to the non-target logits (eq. 7).

    Eq. 7 of Kesidis, Miller & Xiang: LMT with a fixed margin ``mu`` in place
    of ``sqrt(2) L eps``.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin.
    """

    def __init__(self, mu=1.0):
        super().__init__()
        self.mu = mu

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        shift = torch.full_like(logits, float(self.mu)).scatter(1, target[:, None], 0.0)
        per_sample = F.cross_entropy(logits + shift, target, reduction="none")
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


_HINGE_NOTE = """
    The paper writes no positive part: read as a Lagrangian the objective
    would be unbounded below (scaling up the logits lowers it forever) and
    samples that already meet the margin would keep pulling. We clip at 0
    (``[.]_+``): the exact-penalty form of the constraints ``max_{i != c} f_i
    + mu <= f_c``, which is 0 exactly when all are met -- the stopping rule of
    the paper's lambda_x re-weighting loop (increase lambda_x of violated
    constraints), and the reason the loop can stop. ``sample_weight`` plays
    lambda_x; the loop itself is the network's job.
"""


class NormalizedMarginLoss(MarginLoss):
    """Normalised margin violation, eq. 8 of Kesidis, Miller & Xiang.

    ``[max_{i != c} s_i + mu - s_c]_+ / ((C-1) mu + sum_j s_j)`` with
    ``s = softplus(f)``.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin.

    Notes
    -----
    Softplus rectifies the logits as in :class:`MarginRatioLoss` (eq. 8 too
    assumes ``f >= 0``: the denominator is then positive).
    """

    __doc__ += _HINGE_NOTE

    def __init__(self, mu=1.0):
        super().__init__()
        self.mu = mu

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        mu = _check_mu(self.mu, type(self).__name__)
        s = F.softplus(logits)
        violation = _runner_up(s, target)[0] + mu - _gather(s, target)
        denominator = (logits.shape[1] - 1) * mu + s.sum(1)
        per_sample = violation.clamp_min(0.0) / denominator.clamp_min(_TINY)
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


class MarginHingeLoss(MarginLoss):
    """Margin hinge, eq. 9 of Kesidis, Miller & Xiang.

    ``[max_{i != c} f_i + mu - f_c]_+`` on the raw logits.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin.

    Notes
    -----
    Eq. 9 needs no rectified outputs, so the raw logits are used (the
    paper's own experiment has no ReLU after the last layer).
    """

    __doc__ += _HINGE_NOTE

    def __init__(self, mu=1.0):
        super().__init__()
        self.mu = mu

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        violation = _runner_up(logits, target)[0] + float(self.mu)
        per_sample = (violation - _gather(logits, target)).clamp_min(0.0)
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


# ------------------------------------------------------------ Wu & Yu ---
def _orthogonality_penalty(module):
    """``sum_l ||G_l - I||_F^2`` over Linear / Conv weights, G the smaller Gram."""
    total = 0.0
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, *_CONV)):
            W = layer.weight.reshape(layer.weight.shape[0], -1)
            if W.shape[0] > W.shape[1]:
                W = W.T
            gram = W @ W.T
            eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
            total = total + (gram - eye).pow(2).sum()
    return total


class AverageMarginLoss(MarginLoss):
    """Average-margin regulariser (AMR) of Wu & Yu, eq. 15.

    Per sample ``CE - lam 1[y_hat = y] [min_{k != y} (w_y - w_k)^T Phi(x)]_0^tau``
    averaged over the batch, plus ``beta sum_l ||W_l W_l^T - I||_F^2``.
    ``Phi`` is ``features``, ``w_k`` the normalised rows ``W_k / ||W_k||`` of
    the last ``nn.Linear`` of ``module`` and ``[t]_0^tau = min(max(t, 0), tau)``.

    Parameters
    ----------
    lam : float, default=0.1
        Weight of the margin reward.
    tau : float, default=5.0
        Truncation of the feature-space margin.
    beta : float, default=1e-3
        Weight of the orthogonality penalty.

    Notes
    -----
    Eq. 15 omits the indicator and the ``1/n`` of eq. 8, which defines the
    objective: ``(1/n) sum_i 1[correct_i] d_tau(x_i)``. We follow eq. 8, so
    the reward is averaged over the whole batch (zero for misclassified
    samples), not over the correct ones only; this keeps the loss a mean of
    per-sample terms (``sample_weight`` applies) and its scale independent of
    the accuracy. "Correct" is ``argmax(logits) == y``. The margin uses no
    bias: the paper's network has none (``f = W_L sigma(...)``). The
    orthogonality penalty runs over every ``nn.Linear`` and ``nn.Conv*d``
    (kernels flattened to ``(c_out, c_in kh kw)``, as the paper says) and is
    added once per batch. For a ``W`` with more rows than columns we use
    ``||W^T W - I||_F^2``: the paper writes ``W W^T`` throughout, but then
    ``||W W^T - I||^2 = ||W^T W - I||^2 + (rows - cols)``, a constant, so both
    have the same gradient and ours is 0 at orthonormal columns.
    """

    needs_features = True

    def __init__(self, lam=0.1, tau=5.0, beta=1e-3):
        super().__init__()
        self.lam = lam
        self.tau = tau
        self.beta = beta

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        if features is None or not isinstance(module, nn.Module):
            raise ValueError(
                "AverageMarginLoss needs features (the input of the last "
                "nn.Linear, needs_features is True) and module (the network)."
            )
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        if not linears:
            raise ValueError("AverageMarginLoss: the module has no nn.Linear layer.")
        W = linears[-1].weight
        if W.shape != (logits.shape[1], features.shape[1]):
            raise ValueError(
                f"The last nn.Linear has weight shape {tuple(W.shape)}, expected "
                f"(n_classes, n_features) = ({logits.shape[1]}, {features.shape[1]})."
            )
        if not self.tau >= 0:
            raise ValueError(f"AverageMarginLoss: tau must be >= 0, got {self.tau!r}.")
        scores = features @ (W / W.norm(dim=1, keepdim=True).clamp_min(_TINY)).T
        margin = _gather(scores, target) - _runner_up(scores, target)[0]
        correct = (logits.argmax(1) == target).to(logits)
        reward = correct * margin.clamp(0.0, float(self.tau))
        per_sample = F.cross_entropy(logits, target, reduction="none")
        loss = _reduce(per_sample - self.lam * reward, sample_weight)
        if self.beta:
            loss = loss + self.beta * _orthogonality_penalty(module)
        return loss

    forward.__doc__ = _FORWARD_DOC


# ------------------------------------------------ input-gradient losses ---
class GradientMarginLoss(MarginLoss):
    """Multiclass hinge plus gradient-difference penalty (Matyasko & Chau).

    Per sample ``max_{j != y} (1 + f_j - f_y)_+ + C max_{j != y}
    ||grad_x f_y - grad_x f_j||_q`` (slides, "Multiclass deep margin
    maximization", Theorem IV.2), by double back-propagation.

    Parameters
    ----------
    C : float, default=0.1
        Weight of the gradient penalty.
    q : float, default=2
        Norm of the gradient differences, >= 1 (``2``: "l2", ``1``: "l1").

    Notes
    -----
    The slides print ``(1 + f_y - f_j)_+``, which would reward a wrong
    prediction; the Crammer-Singer hinge they cite is ``(1 + f_j - f_y)_+``.
    They also write ``max_{j != i}`` with ``i`` the sample index, meaning the
    label ``y_i``. The robust-optimisation theorem bounds each perturbation in
    the dual norm ``||r||_* <= C`` of the penalty norm: ``q = 2`` defends
    l2 perturbations (first-order l2 margin ``|f_y - f_j| / ||grad||_2``),
    ``q = 1`` defends l_inf ones (first-order l_inf margin
    ``|f_y - f_j| / ||grad||_1``); we read "l1 / l2 margin maximisation" as
    the norm on the gradients. The two maxima are taken separately, as printed.
    The ``K`` input gradients come from ``K`` backward passes of summed logits,
    which are per-sample gradients unless samples interact (BatchNorm in
    training mode).
    """

    needs_input_grad = True

    def __init__(self, C=0.1, q=2):
        super().__init__()
        self.C = C
        self.q = q

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        q = float(self.q)
        if not q >= 1:
            raise ValueError(f"GradientMarginLoss: q must be >= 1, got {self.q!r}.")
        G = _input_gradients(logits, X, type(self).__name__)
        diff = G[torch.arange(len(target)), target][:, None, :] - G
        norms = torch.linalg.vector_norm(diff, ord=q, dim=2)
        penalty = _runner_up(norms, target)[0]
        hinge = (1.0 + _runner_up(logits, target)[0] - _gather(logits, target)).relu()
        return _reduce(hinge + self.C * penalty, sample_weight)

    forward.__doc__ = _FORWARD_DOC


class CrossLipschitzLoss(MarginLoss):
    """Cross-entropy plus the Cross-Lipschitz regulariser (Hein & Andriushchenko).

    ``mean CE + lam / (n K^2) sum_i sum_{l,m} ||grad f_l(x_i) - grad f_m(x_i)||^2``
    (eqs. 6-7), through ``sum_{l,m} ||g_l - g_m||^2 = 2K sum_l ||g_l - g_mean||^2``
    so that ``K`` input gradients suffice.

    Parameters
    ----------
    lam : float, default=0.01
        Regularisation weight ``lambda``.

    Notes
    -----
    The paper's closed form for one-hidden-layer networks is not used (as
    printed it also lacks a factor ``K`` on ``sum_l w_lr w_ls`` and sums
    ``sigma'`` over pairs ``i, j`` where a single ``i`` is meant). Input
    gradients are per-sample unless samples interact (BatchNorm in training
    mode).
    """

    needs_input_grad = True

    def __init__(self, lam=0.01):
        super().__init__()
        self.lam = lam

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        G = _input_gradients(logits, X, type(self).__name__)
        spread = (G - G.mean(1, keepdim=True)).pow(2).sum((1, 2))
        per_sample = F.cross_entropy(logits, target, reduction="none")
        per_sample = per_sample + self.lam * (2.0 / logits.shape[1]) * spread
        return _reduce(per_sample, sample_weight)

    forward.__doc__ = _FORWARD_DOC


# --------------------------------------------------------------- registry ---
LOSSES = {
    "cross_entropy": CrossEntropyMarginLoss,
    "lmt": LMTLoss,
    "lc_lmt": LCLMTLoss,
    "margin_ratio": MarginRatioLoss,
    "margin_softmax": MarginSoftmaxLoss,
    "normalized_margin": NormalizedMarginLoss,
    "margin_hinge": MarginHingeLoss,
    "amr": AverageMarginLoss,
    "gradient_margin": GradientMarginLoss,
    "cross_lipschitz": CrossLipschitzLoss,
}


def resolve_loss(name_or_class):
    """Loss class for a name of :data:`LOSSES`; classes and instances pass through.

    Parameters
    ----------
    name_or_class : str, type or torch.nn.Module
        A key of :data:`LOSSES`, a loss class or a loss instance.

    Returns
    -------
    loss : type or torch.nn.Module
        The class for a name, else ``name_or_class`` itself.

    Examples
    --------
    >>> from sk_margin.losses import resolve_loss
    >>> resolve_loss("lc_lmt").__name__
    'LCLMTLoss'
    """
    if isinstance(name_or_class, str):
        try:
            return LOSSES[name_or_class]
        except KeyError:
            raise ValueError(
                f"Unknown loss {name_or_class!r}; valid names are "
                f"{', '.join(sorted(LOSSES))}, or pass a MarginLoss class or instance."
            ) from None
    if isinstance(name_or_class, nn.Module) or (
        isinstance(name_or_class, type) and issubclass(name_or_class, nn.Module)
    ):
        return name_or_class
    raise TypeError(
        "A loss must be a name, a torch.nn.Module subclass or instance, got "
        f"{type(name_or_class).__name__}."
    )
