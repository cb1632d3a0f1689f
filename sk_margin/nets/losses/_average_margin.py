"""The average-margin regulariser of Wu & Yu (AMR, eq. 15)."""

from numbers import Real

import torch
from sklearn.utils._param_validation import Interval
from torch import nn
from torch.nn import functional as F

from sk_margin.nets.losses._base import TINY, MarginLoss, runner_up, target_score

__all__ = ["AverageMarginLoss"]

_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


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
        Weight of the margin reward, ``>= 0``.
    tau : float, default=5.0
        Truncation of the feature-space margin, ``>= 0``.
    beta : float, default=1e-3
        Weight of the orthogonality penalty, ``>= 0``.

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
    _parameter_constraints: dict = {
        "lam": [Interval(Real, 0, None, closed="left")],
        "tau": [Interval(Real, 0, None, closed="left")],
        "beta": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, lam=0.1, tau=5.0, beta=1e-3):
        super().__init__(lam=lam, tau=tau, beta=beta)

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
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
        scores = features @ (W / W.norm(dim=1, keepdim=True).clamp_min(TINY)).T
        margin = target_score(scores, target) - runner_up(scores, target)[0]
        correct = (logits.argmax(1) == target).to(logits)
        reward = correct * margin.clamp(0.0, float(self.tau))
        per_sample = F.cross_entropy(logits, target, reduction="none")
        return per_sample - self.lam * reward

    per_sample.__doc__ = MarginLoss.per_sample.__doc__

    def batch_term(self, logits, target, *, X=None, module=None, features=None):
        """``beta sum_l ||W_l W_l^T - I||_F^2``, or None when ``beta`` is 0.

        Parameters
        ----------
        logits : torch.Tensor of shape (n_samples, n_classes)
            Decision scores of the network.
        target : torch.Tensor of shape (n_samples,)
            Class indices (long).
        X : torch.Tensor, default=None
            Unused.
        module : torch.nn.Module, default=None
            The network, whose ``nn.Linear`` and ``nn.Conv*d`` weights are
            penalised.
        features : torch.Tensor, default=None
            Unused.

        Returns
        -------
        term : torch.Tensor or None
            The orthogonality penalty, once per batch.
        """
        if not self.beta:
            return None
        return self.beta * _orthogonality_penalty(module)
