"""Torch margin-training losses, usable as the skorch ``criterion``.

Every loss is a :class:`MarginLoss`: a plain :class:`torch.nn.Module` whose
hyperparameters are keyword arguments of ``__init__``, stored as attributes of
the same name, so that skorch routing (``criterion__eps=0.5``) and
``GridSearchCV`` (``{"criterion__eps": [0.1, 0.5]}``) reach them. Losses are
selected by name through :data:`LOSSES` / :func:`resolve_loss`.

Adding your own loss takes a subclass of :class:`MarginLoss`; the interface
(the arguments of ``forward`` and the class attributes telling the network
what to pass) is described in :mod:`sk_margin.nets.losses`.
"""

import torch
from torch import nn
from torch.nn import functional as F

from sk_margin.nets.losses._base import (
    _FORWARD_DOC,
    _TINY,
    MarginLoss,
    _check_inputs,
    _gather,
    _reduce,
    _runner_up,
)
from sk_margin.nets.losses._input_gradients import (
    centred_gradient_spread,
    closed_form_layers,
    input_gradients,
    max_gradient_difference,
)
from sk_margin.nets.losses._kesidis import (
    MarginHingeLoss,
    MarginRatioLoss,
    MarginSoftmaxLoss,
    NormalizedMarginLoss,
)
from sk_margin.nets.losses._lipschitz_margin import LCLMTLoss, LMTLoss

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

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


class CrossEntropyMarginLoss(MarginLoss):
    """Plain cross-entropy, the baseline: ``-log softmax(f)_y``.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets.losses import CrossEntropyMarginLoss
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


# ------------------------------------------------------------ Wu & Yu ---
class _GramDeviation(torch.autograd.Function):
    """``||W W^T - I||_F^2`` with its gradient ``4 (W W^T - I) W``.

    Autograd would differentiate ``W @ W.T`` through both factors, two
    products of the cost of the Gram matrix; the closed-form gradient takes
    one.
    """

    @staticmethod
    def forward(ctx, W):
        E = W @ W.T
        E.diagonal().sub_(1.0)
        ctx.save_for_backward(W, E)
        return E.pow(2).sum()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        W, E = ctx.saved_tensors
        return (4.0 * grad) * (E @ W)


def _orthogonality_penalty(module):
    """``sum_l ||G_l - I||_F^2`` over Linear / Conv weights, G the smaller Gram."""
    total = 0.0
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, *_CONV)):
            W = layer.weight.reshape(layer.weight.shape[0], -1)
            total = total + _GramDeviation.apply(W.T if W.shape[0] > W.shape[1] else W)
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
    For one-hidden-layer networks the gradient differences have a closed
    form (:func:`~sk_margin.nets.losses.gradient_difference_norms`, from
    the hidden activations, no double back-propagation). For other networks
    the ``K`` input gradients come from ``K`` backward passes of summed
    logits, which are per-sample gradients unless samples interact
    (BatchNorm in training mode).
    """

    needs_input_grad = True
    needs_features = True

    def __init__(self, C=0.1, q=2):
        super().__init__()
        self.C = C
        self.q = q

    def input_grad_needed(self, module):
        """Whether input gradients are needed: not for one-hidden-layer nets.

        Parameters
        ----------
        module : torch.nn.Module
            The network, in the mode of the coming pass.

        Returns
        -------
        needed : bool
            False when :func:`~sk_margin.nets.losses.closed_form_layers`
            applies.
        """
        return closed_form_layers(module) is None

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        q = float(self.q)
        if not q >= 1:
            raise ValueError(f"GradientMarginLoss: q must be >= 1, got {self.q!r}.")
        layers = closed_form_layers(module) if features is not None else None
        penalty = max_gradient_difference(
            logits,
            target,
            q,
            X=X,
            layers=layers,
            features=features,
            name=type(self).__name__,
        )
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
    For one-hidden-layer networks the regulariser is computed in closed form
    (:func:`~sk_margin.nets.losses.centred_gradient_spread`, from the
    hidden activations, no double back-propagation). The paper's printed
    closed form (Section 3) lacks a factor ``K`` on ``sum_l w_lr w_ls`` and
    sums ``sigma'`` over pairs ``i, j`` where a single ``i`` is meant; ours is
    derived in that function's docstring and tested against autograd. Other
    networks take ``K`` input gradients from autograd; they are per-sample
    unless samples interact (BatchNorm in training mode).
    """

    needs_input_grad = True
    needs_features = True

    def __init__(self, lam=0.01):
        super().__init__()
        self.lam = lam

    input_grad_needed = GradientMarginLoss.input_grad_needed

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        target = _check_inputs(logits, target)
        layers = closed_form_layers(module) if features is not None else None
        if layers is not None:
            spread = centred_gradient_spread(layers, features)
        else:
            G = input_gradients(logits, X, type(self).__name__)
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
    >>> from sk_margin.nets.losses import resolve_loss
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
