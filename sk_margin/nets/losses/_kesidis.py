"""The margin objectives of Kesidis, Miller & Xiang (eqs. 6-9).

Each takes a margin ``mu``; the training procedure that re-weights samples
whose margin constraint is violated is run by
:class:`~sk_margin.MarginNetClassifier`. Selected by name through
:data:`sk_margin.nets.losses.LOSSES`.
"""

import math
from numbers import Real

import torch
from sklearn.utils._param_validation import Interval
from torch.nn import functional as F

from sk_margin.nets.losses._base import (
    TINY,
    MarginLoss,
    log_softplus,
    runner_up,
    target_score,
)

__all__ = [
    "MarginHingeLoss",
    "MarginRatioLoss",
    "MarginSoftmaxLoss",
    "NormalizedMarginLoss",
]


class _KesidisLoss(MarginLoss):
    """A margin objective of Kesidis et al.: one hyperparameter, the margin."""

    _parameter_constraints: dict = {"mu": [Interval(Real, 0, None, closed="left")]}

    def __init__(self, mu=1.0):
        super().__init__(mu=mu)


class MarginRatioLoss(_KesidisLoss):
    """Margin-ratio loss, eq. 6 of Kesidis, Miller & Xiang.

    ``-log(s_c / ((C-1) mu + sum_{i != c} s_i))`` with ``s = softplus(f)``.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin, ``>= 0``.

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

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        mu = float(self.mu)
        log_s = log_softplus(logits)
        others = log_s.scatter(1, target[:, None], -torch.inf)
        extra = (logits.shape[1] - 1) * mu
        log_mu = torch.full_like(log_s[:, :1], math.log(extra) if extra else -math.inf)
        log_den = torch.logsumexp(torch.cat([others, log_mu], 1), 1)
        return log_den - target_score(log_s, target)

    per_sample.__doc__ = MarginLoss.per_sample.__doc__


class MarginSoftmaxLoss(_KesidisLoss):
    """Cross-entropy with ``mu`` added to the non-target logits (eq. 7).

    Eq. 7 of Kesidis, Miller & Xiang: LMT with a fixed margin ``mu`` in place
    of ``sqrt(2) L eps``.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin, ``>= 0``.
    """

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        shift = torch.full_like(logits, float(self.mu)).scatter(1, target[:, None], 0.0)
        return F.cross_entropy(logits + shift, target, reduction="none")

    per_sample.__doc__ = MarginLoss.per_sample.__doc__


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


class NormalizedMarginLoss(_KesidisLoss):
    """Normalised margin violation, eq. 8 of Kesidis, Miller & Xiang.

    ``[max_{i != c} s_i + mu - s_c]_+ / ((C-1) mu + sum_j s_j)`` with
    ``s = softplus(f)``.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin, ``>= 0``.

    Notes
    -----
    Softplus rectifies the logits as in :class:`MarginRatioLoss` (eq. 8 too
    assumes ``f >= 0``: the denominator is then positive).
    """

    __doc__ += _HINGE_NOTE

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        mu = float(self.mu)
        s = F.softplus(logits)
        violation = runner_up(s, target)[0] + mu - target_score(s, target)
        denominator = (logits.shape[1] - 1) * mu + s.sum(1)
        return violation.clamp_min(0.0) / denominator.clamp_min(TINY)

    per_sample.__doc__ = MarginLoss.per_sample.__doc__


class MarginHingeLoss(_KesidisLoss):
    """Margin hinge, eq. 9 of Kesidis, Miller & Xiang.

    ``[max_{i != c} f_i + mu - f_c]_+`` on the raw logits.

    Parameters
    ----------
    mu : float, default=1.0
        Required margin, ``>= 0``.

    Notes
    -----
    Eq. 9 needs no rectified outputs, so the raw logits are used (the
    paper's own experiment has no ReLU after the last layer).
    """

    __doc__ += _HINGE_NOTE

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        violation = runner_up(logits, target)[0] + float(self.mu)
        return (violation - target_score(logits, target)).clamp_min(0.0)

    per_sample.__doc__ = MarginLoss.per_sample.__doc__
