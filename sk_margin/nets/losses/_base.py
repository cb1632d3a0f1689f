"""The interface of the margin losses: :class:`MarginLoss` and its helpers.

A loss subclasses :class:`MarginLoss`, passes its hyperparameters to
``super().__init__(**params)`` (which stores them as attributes and checks
them against ``_parameter_constraints``) and supplies its formula:

- :meth:`MarginLoss.per_sample`, the loss of each sample, of shape (n,);
- optionally :meth:`MarginLoss.batch_term`, a term added once per batch
  (e.g. a weight penalty).

:meth:`MarginLoss.forward` does the rest, the same for every loss: it checks
the logits and targets, reduces the per-sample losses to their mean, or to
``sum(w * l) / sum(w)`` with ``sample_weight`` (:func:`reduce_loss`), and
adds the batch term. Two class attributes tell the network what to pass:

- ``needs_input_grad = True``: the net calls ``X.requires_grad_(True)``
  before the forward pass (with gradients enabled, also when validating), so
  that the loss may differentiate the logits w.r.t. ``X`` with
  ``create_graph=True`` (double back-propagation); a loss that needs input
  gradients only for some networks overrides
  :meth:`MarginLoss.input_grad_needed`;
- ``needs_features = True``: the net passes ``features``, the input of the
  network's last ``nn.Linear`` (penultimate features).

An example of a custom loss is in :mod:`sk_margin.nets.losses`.
"""

import inspect

import torch
from sklearn.utils._param_validation import validate_parameter_constraints
from torch import nn
from torch.nn import functional as F

__all__ = [
    "CrossEntropyMarginLoss",
    "MarginLoss",
    "reduce_loss",
    "runner_up",
    "target_score",
]

TINY = 1e-12
_KEYWORD_KINDS = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)


# ----------------------------------------------------------------- helpers ---
def reduce_loss(per_sample, sample_weight=None):
    """Batch mean of per-sample losses, or their weighted mean.

    Parameters
    ----------
    per_sample : torch.Tensor of shape (n_samples,)
        The loss of each sample.
    sample_weight : torch.Tensor or array-like of shape (n_samples,), default=None
        Weights: a weight of 2 counts a sample twice, a weight of 0 removes it.

    Returns
    -------
    loss : torch.Tensor
        ``mean(l)``, or ``sum(w * l) / sum(w)`` (0 when all weights are 0).

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets.losses import reduce_loss
    >>> reduce_loss(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 0.0]))
    tensor(1.)
    """
    if sample_weight is None:
        return per_sample.mean()
    w = torch.as_tensor(sample_weight).to(per_sample)
    if w.shape != per_sample.shape:
        raise ValueError(
            f"sample_weight has shape {tuple(w.shape)}, but the batch has "
            f"{per_sample.shape[0]} samples; expected shape ({per_sample.shape[0]},)."
        )
    return (w * per_sample).sum() / w.sum().clamp_min(TINY)


def target_score(scores, target):
    """``scores[i, target[i]]`` for every row.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_samples, n_classes)
        Logits, or any per-class scores.
    target : torch.Tensor of shape (n_samples,)
        Class indices (long).

    Returns
    -------
    score : torch.Tensor of shape (n_samples,)
        The score of each row's target class.
    """
    return scores.gather(1, target[:, None])[:, 0]


def runner_up(scores, target):
    """Largest score over the classes ``j != target``, masked by index.

    Parameters
    ----------
    scores : torch.Tensor of shape (n_samples, n_classes)
        Logits, or any per-class scores.
    target : torch.Tensor of shape (n_samples,)
        Class indices (long).

    Returns
    -------
    values, indices : torch.Tensor of shape (n_samples,)
        The largest score of the other classes and its class, as from
        :func:`torch.max`. Ties with the target score are kept, so the margin
        ``target_score - values`` of a tie is exactly 0.
    """
    masked = scores.scatter(1, target[:, None], -torch.inf)
    return masked.max(1)


def check_loss_inputs(logits, target):
    """``target`` as long class indices, after checking both shapes."""
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


def log_softplus(z):
    """``log(softplus(z))`` without underflow: it tends to ``z`` as z -> -inf."""
    safe = z.clamp_min(-20.0)  # keeps the unused branch finite for autograd
    return torch.where(z > -20.0, torch.log(F.softplus(safe)), z)


def hyperparameter_names(cls):
    """Names of the keyword arguments of ``cls.__init__``, or None for ``**kwargs``."""
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in _KEYWORD_KINDS]


# -------------------------------------------------------------- interface ---
class MarginLoss(nn.Module):
    """Base class of the margin losses: one ``forward``, each loss its formula.

    Subclasses pass their hyperparameters to ``super().__init__(**params)``
    and implement :meth:`per_sample` (and optionally :meth:`batch_term`); see
    the module docstring of :mod:`sk_margin.nets.losses` for an example.

    Parameters
    ----------
    **params : dict
        Hyperparameters, stored as attributes of the same name (so that
        skorch's ``criterion__name`` routing and ``GridSearchCV`` reach them)
        and checked against the class's ``_parameter_constraints`` (the
        constraints of ``sklearn.utils._param_validation``, such as
        ``Interval(Real, 0, None, closed="left")``): a value out of range is
        an ``InvalidParameterError`` (a ``ValueError``) naming the parameter,
        raised when the loss is built, before any training.
    """

    needs_input_grad = False
    needs_features = False
    _parameter_constraints: dict = {}

    def __init__(self, **params):
        super().__init__()
        for name, value in params.items():
            setattr(self, name, value)
        self._validate_hyperparameters(params)

    def _validate_hyperparameters(self, params):
        constraints = {
            name: c for name, c in self._parameter_constraints.items() if name in params
        }
        validate_parameter_constraints(
            constraints, params, caller_name=type(self).__name__
        )

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        """The loss of each sample, before reduction.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Decision scores of the network.
        target : torch.Tensor of shape (n_samples,)
            Class indices (long), checked.
        X : torch.Tensor, default=None
            The input batch the network received; requires grad when
            ``needs_input_grad`` is True.
        module : torch.nn.Module, default=None
            The network, for losses that read its weights.
        features : torch.Tensor of shape (n_samples, n_features), default=None
            Input of the network's last ``nn.Linear`` (``needs_features``).

        Returns
        -------
        loss : torch.Tensor of shape (n_samples,)
            One loss per sample.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement per_sample(logits, target, ...)."
        )

    def batch_term(self, logits, target, *, X=None, module=None, features=None):
        """A term added once per batch, after the reduction; None for none.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Decision scores of the network.
        target : torch.Tensor of shape (n_samples,)
            Class indices (long), checked.
        X : torch.Tensor, default=None
            The input batch.
        module : torch.nn.Module, default=None
            The network.
        features : torch.Tensor of shape (n_samples, n_features), default=None
            Input of the network's last ``nn.Linear``.

        Returns
        -------
        term : torch.Tensor or None
            A scalar, or None.
        """
        return None

    def forward(
        self, logits, target, *, X=None, module=None, features=None, sample_weight=None
    ):
        """Loss of a batch: the reduced per-sample losses plus the batch term.

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
            Scalar: the (weighted) batch mean of :meth:`per_sample`, plus
            :meth:`batch_term`.
        """
        target = check_loss_inputs(logits, target)
        inputs = {"X": X, "module": module, "features": features}
        loss = reduce_loss(self.per_sample(logits, target, **inputs), sample_weight)
        extra = self.batch_term(logits, target, **inputs)
        return loss if extra is None else loss + extra

    def input_grad_needed(self, module):
        """Whether the net must make the input batch require grad.

        Parameters
        ----------
        module : torch.nn.Module
            The network, in the mode (training or eval) of the coming pass.

        Returns
        -------
        needed : bool
            ``needs_input_grad`` unless a subclass knows better.
        """
        return bool(self.needs_input_grad)

    def extra_repr(self):
        """Hyperparameters shown by ``repr``.

        Returns
        -------
        text : str
            ``name=value`` pairs of the ``__init__`` keyword arguments.
        """
        names = hyperparameter_names(type(self)) or []
        return ", ".join(f"{n}={getattr(self, n, None)!r}" for n in names)


class CrossEntropyMarginLoss(MarginLoss):
    """Plain cross-entropy, the baseline: ``-log softmax(f)_y``.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets.losses import CrossEntropyMarginLoss
    >>> CrossEntropyMarginLoss()(torch.zeros(2, 4), torch.tensor([0, 3]))
    tensor(1.3863)
    """

    def __init__(self):
        super().__init__()

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        return F.cross_entropy(logits, target, reduction="none")

    per_sample.__doc__ = MarginLoss.per_sample.__doc__
