"""Lipschitz-margin training: LMT (Tsuzuku et al.) and LC-LMT (Ono et al.).

Both inflate non-target logits by ``sqrt(2) L eps`` (Ono et al., eq. 3), ``L``
an upper bound of the network's l2 Lipschitz constant kept cheap in training
by persistent power iteration (:mod:`sk_margin.nets`). Selected by
name through :data:`sk_margin.nets.losses.LOSSES`.
"""

import math
from numbers import Real

import torch
from sklearn.utils._param_validation import Interval, StrOptions
from torch import nn
from torch.nn import functional as F

from sk_margin.nets.certify._power_iteration import PowerIterationLipschitz
from sk_margin.nets.losses._base import TINY, MarginLoss, runner_up, target_score

__all__ = ["LCLMTLoss", "LMTLoss"]


class _LipschitzMarginLoss(MarginLoss):
    """Shared code of LMT and LC-LMT: the Lipschitz estimate and the inflation."""

    _runner_up_only = False
    _parameter_constraints: dict = {
        "eps": [Interval(Real, 0, None, closed="left")],
        "clip": ["boolean"],
        "lipschitz": [StrOptions({"estimate", "bound"})],
    }

    def __init__(self, eps=0.5, *, clip=False, lipschitz="estimate"):
        super().__init__(eps=eps, clip=clip, lipschitz=lipschitz)
        self._estimator = PowerIterationLipschitz(bound=lipschitz == "bound")

    @property
    def power_iterates_(self):
        """Power-iteration vectors of the Lipschitz estimate (see Attributes)."""
        return self._estimator.power_iterates_

    @property
    def lipschitz_(self):
        """The estimate used by the last call (see Attributes)."""
        return self._estimator.lipschitz_

    def lipschitz_estimate(self, module, X=None):
        """Estimate of the l2 Lipschitz constant of ``module``.

        The product over the leaf layers of per-layer bounds, the spectral
        norms of ``nn.Linear`` / convolution layers coming from one persistent
        power-iteration step per call (see the class Notes and
        :class:`sk_margin.nets.PowerIterationLipschitz`).

        Parameters
        ----------
        module : torch.nn.Module
            The network, treated as the chain of its leaf modules.
        X : torch.Tensor, default=None
            The input batch; needed once, to find the input shape of
            convolution and pooling layers.

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
        self._estimator.bound = self.lipschitz == "bound"  # may be set later
        return self._estimator(module, X)

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        lipschitz = self.lipschitz_estimate(module, X).to(logits)
        amount = math.sqrt(2.0) * self.eps * lipschitz
        runner_val, runner_idx = runner_up(logits, target)
        if self._runner_up_only:
            where = F.one_hot(runner_idx, logits.shape[1]).to(logits)
        else:
            where = torch.ones_like(logits).scatter(1, target[:, None], 0.0)
        if self.clip:
            margin = (target_score(logits, target) - runner_val).detach()
            full = amount.detach()
            factor = (margin / full.clamp_min(TINY)).clamp(0.0, 1.0)
            amount = torch.where(full > 0, factor, 0.0) * amount
        inflated = logits + amount.reshape(-1, 1) * where
        return F.cross_entropy(inflated, target, reduction="none")

    per_sample.__doc__ = MarginLoss.per_sample.__doc__


_LMT_NOTES = """
    Notes
    -----
    With ``lipschitz="bound"``, ``L`` is the product of the sound per-layer
    bounds the certificate uses, computed from the weights at every step
    (:class:`sk_margin.nets.PowerIterationLipschitz` with ``bound=True``):
    a sample trained to the margin ``sqrt(2) L eps`` is certified at ``eps``.
    Its gradient is that of the estimate below. It costs a Gram matrix and
    an eigenvalue problem per dense layer per step: 3-4 times the time per
    epoch on a 784-256-256-10 MLP (``benchmarks/bench_lmt_sound.py``), where
    it certified 2 points more training digits at ``eps=1`` with LC-LMT,
    and made LMT, whose target became unreachable, lose half its accuracy.

    With ``lipschitz="estimate"`` (the default, as in LMT), ``L`` is the
    estimate of
    :class:`sk_margin.nets.PowerIterationLipschitz`, from below at
    every step, of the product bound ``prod_l Lip(layer_l)`` over the leaf
    modules of the network (assumed to be their chain: operations written in
    ``forward`` are invisible). The spectral norms of ``nn.Linear`` and
    convolution layers (bias excluded) come from *one* power-iteration step
    per call, with vectors kept in ``power_iterates_`` across calls, as in
    LMT; the estimate is ``u^T W v`` with ``u, v`` detached, so the margin
    term trains the weights. Layers without a weight matrix use the rules of
    the sound bounds (:mod:`sk_margin.nets`); BatchNorm uses its
    running variance (the authors use the batch variance in training).
    Unsupported layers raise a TypeError naming the layer.

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
        Target l2 robustness radius, ``>= 0``.
    clip : bool, default=False
        Clip the inflation as the authors' released code does (see Notes).
    lipschitz : {"estimate", "bound"}, default="estimate"
        ``"estimate"``: one persistent power-iteration step per layer and
        step, which ends below the constant the certificate uses (12-25% on
        MNIST MLPs), so that the net is certified for less than ``eps``;
        ``"bound"``: that constant itself, an upper bound at every step,
        slower (see Notes).
    """

    __doc__ += _LMT_NOTES


class LCLMTLoss(_LipschitzMarginLoss):
    """LC-LMT: inflate only the largest non-target logit by ``sqrt(2) L eps``.

    Algorithm 2 of Ono, Takahashi & Kakizaki (lightweight Lipschitz margin
    training); the same ``L`` estimate as :class:`LMTLoss`.

    Parameters
    ----------
    eps : float, default=0.5
        Target l2 robustness radius, ``>= 0``.
    clip : bool, default=False
        Clip the inflation so that the runner-up never overtakes the target
        (the rule of the LMT authors' code, see Notes).
    lipschitz : {"estimate", "bound"}, default="estimate"
        ``"estimate"``: one persistent power-iteration step per layer and
        step, which ends below the constant the certificate uses (12-25% on
        MNIST MLPs), so that the net is certified for less than ``eps``;
        ``"bound"``: that constant itself, an upper bound at every step,
        slower (see Notes).
    """

    __doc__ += _LMT_NOTES
    _runner_up_only = True
