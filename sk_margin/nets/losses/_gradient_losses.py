"""Losses that penalise input gradients: Matyasko & Chau, Hein & Andriushchenko."""

from numbers import Real

from sklearn.utils._param_validation import Interval
from torch.nn import functional as F

from sk_margin.nets.losses._base import MarginLoss, runner_up, target_score
from sk_margin.nets.losses._input_gradients import (
    centred_gradient_spread,
    closed_form_layers,
    input_gradients,
    max_gradient_difference,
)

__all__ = ["CrossLipschitzLoss", "GradientMarginLoss"]


class _GradientPenalty:
    """For losses that penalise input gradients, with weight ``self.<_weight>``."""

    _weight = None

    def input_grad_needed(self, module):
        """Whether input gradients are needed: not for one-hidden-layer nets.

        Parameters
        ----------
        module : torch.nn.Module
            The network, in the mode of the coming pass.

        Returns
        -------
        needed : bool
            False when ``closed_form_layers`` applies, or when the penalty's
            weight is 0 (the penalty is then skipped).
        """
        return getattr(self, self._weight) != 0 and closed_form_layers(module) is None


class GradientMarginLoss(_GradientPenalty, MarginLoss):
    """Multiclass hinge plus gradient-difference penalty (Matyasko & Chau).

    Per sample ``max_{j != y} (1 + f_j - f_y)_+ + C max_{j != y}
    ||grad_x f_y - grad_x f_j||_q`` (slides, "Multiclass deep margin
    maximization", Theorem IV.2), by double back-propagation.

    Parameters
    ----------
    C : float, default=0.1
        Weight of the gradient penalty, ``>= 0``.
    q : float, default=2
        Norm of the gradient differences, ``>= 1`` (``2``: "l2", ``1``: "l1").

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
    form (see ``max_gradient_difference`` in the source, from
    the hidden activations, no double back-propagation). For other networks
    the ``K`` input gradients come from ``K`` backward passes of summed
    logits, which are per-sample gradients unless samples interact
    (BatchNorm in training mode).
    """

    needs_input_grad = True
    _weight = "C"
    needs_features = True
    _parameter_constraints: dict = {
        "C": [Interval(Real, 0, None, closed="left")],
        "q": [Interval(Real, 1, None, closed="both")],  # q = inf allowed
    }

    def __init__(self, C=0.1, q=2):
        super().__init__(C=C, q=q)

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        hinge = (
            1.0 + runner_up(logits, target)[0] - target_score(logits, target)
        ).relu()
        if self.C == 0:  # no penalty: skip the input gradients
            return hinge
        q = float(self.q)
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
        return hinge + self.C * penalty

    per_sample.__doc__ = MarginLoss.per_sample.__doc__


class CrossLipschitzLoss(_GradientPenalty, MarginLoss):
    """Cross-entropy plus the Cross-Lipschitz regulariser (Hein & Andriushchenko).

    ``mean CE + lam / (n K^2) sum_i sum_{l,m} ||grad f_l(x_i) - grad f_m(x_i)||^2``
    (eqs. 6-7), through ``sum_{l,m} ||g_l - g_m||^2 = 2K sum_l ||g_l - g_mean||^2``
    so that ``K`` input gradients suffice.

    Parameters
    ----------
    lam : float, default=0.01
        Regularisation weight ``lambda``, ``>= 0``.

    Notes
    -----
    For one-hidden-layer networks the regulariser is computed in closed form
    (``centred_gradient_spread`` in the source, from the
    hidden activations, no double back-propagation). The paper's printed
    closed form (Section 3) lacks a factor ``K`` on ``sum_l w_lr w_ls`` and
    sums ``sigma'`` over pairs ``i, j`` where a single ``i`` is meant; ours is
    derived in that function's docstring and tested against autograd. Other
    networks take ``K`` input gradients from autograd; they are per-sample
    unless samples interact (BatchNorm in training mode).
    """

    needs_input_grad = True
    needs_features = True
    _parameter_constraints: dict = {"lam": [Interval(Real, 0, None, closed="left")]}

    _weight = "lam"

    def __init__(self, lam=0.01):
        super().__init__(lam=lam)

    def per_sample(self, logits, target, *, X=None, module=None, features=None):
        per_sample = F.cross_entropy(logits, target, reduction="none")
        if self.lam == 0:  # no penalty: skip the input gradients
            return per_sample
        layers = closed_form_layers(module) if features is not None else None
        if layers is not None:
            spread = centred_gradient_spread(layers, features)
        else:
            G = input_gradients(logits, X, type(self).__name__)
            spread = (G - G.mean(1, keepdim=True)).pow(2).sum((1, 2))
        return per_sample + self.lam * (2.0 / logits.shape[1]) * spread

    per_sample.__doc__ = MarginLoss.per_sample.__doc__
