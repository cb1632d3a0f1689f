"""The interface of the margin losses: :class:`MarginLoss` and shared helpers.

The losses themselves, and the registry that selects them by name, are in
:mod:`sk_margin.nets.losses`.

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

A loss that needs input gradients only for some networks (e.g. when it has a
closed form for others) overrides :meth:`MarginLoss.input_grad_needed`, which
the net asks before every forward pass; by default it returns
``needs_input_grad``.

Adding your own loss takes a subclass; pass the class (or an instance) as the
criterion, e.g. ``MarginNetClassifier(criterion=SquaredHinge,
criterion__mu=2.0)``:

>>> import torch
>>> from sk_margin.nets.losses import MarginLoss, _reduce
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

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["MarginLoss"]

_TINY = 1e-12
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
        params = inspect.signature(type(self).__init__).parameters.values()
        names = [p.name for p in params if p.kind in _KEYWORD_KINDS][1:]
        return ", ".join(f"{n}={getattr(self, n, None)!r}" for n in names)


_FORWARD_DOC = MarginLoss.forward.__doc__
