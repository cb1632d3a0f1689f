"""How a skorch net hands a margin loss what it declares it needs.

:class:`MarginLossHooks` overrides skorch's ``infer``, ``get_loss`` and
``validation_step`` so that a :class:`~sk_margin.nets.losses.MarginLoss`
receives the input batch (requiring grad for the input-gradient losses), the
network, the penultimate features and the sample weights; any other torch
loss gets ``(logits, target)`` as in skorch.
"""

from collections.abc import Mapping

import numpy as np
import torch
from skorch.dataset import unpack_data
from skorch.utils import to_tensor

from sk_margin.nets.losses import MarginLoss

__all__ = ["MarginLossHooks"]


def _last_linear(module):
    last = None
    for layer in module.modules():
        if isinstance(layer, torch.nn.Linear):
            last = layer
    if last is None:
        raise TypeError(
            f"The criterion needs the penultimate features, i.e. the input of the "
            f"network's last nn.Linear, but {type(module).__name__} has no "
            "nn.Linear layer."
        )
    return last


class MarginLossHooks:
    """skorch training hooks for margin losses (a mixin before skorch's net).

    Also the re-weighting rounds of the Kesidis losses, which retrain with
    the weights of the samples whose margin constraint is violated raised.
    """

    def _reweights(self):
        return self.max_reweight_rounds > 0 and hasattr(self.criterion_, "mu")

    def _reweight_schedule(self):
        """``(first, each)``: epochs of the first round and of each re-weighting
        round, or ``(None, None)`` without re-weighting."""
        if not self._reweights():
            return None, None
        rounds, total = self.max_reweight_rounds, self.max_epochs
        if self.reweight_epochs == "auto":
            each = max(1, total // (2 * rounds))
            return max(1, total - rounds * each), each
        first = total - rounds * self.reweight_epochs
        if first < 1:
            raise ValueError(
                f"max_epochs={total} leaves no epoch for the first training "
                f"round: max_reweight_rounds={rounds} rounds of "
                f"reweight_epochs={self.reweight_epochs} take "
                f"{rounds * self.reweight_epochs}. Raise max_epochs above that, or "
                "lower reweight_epochs or max_reweight_rounds."
            )
        return first, self.reweight_epochs

    def _reweighting_rounds(self, X, y_idx, weights, fit_params):
        """Kesidis, Miller & Xiang, Section IV: multiply violated weights by delta."""
        mu = float(self.criterion_.mu)
        for round_ in range(self.max_reweight_rounds + 1):
            # A sample of weight 0 is not in the training set: its constraint
            # neither counts nor keeps the rounds going (weighting by an
            # integer k is then the same as repeating a sample k times).
            violated = (self._signed_margins(X, y_idx) < mu) & (weights > 0)
            self.history.record("reweight_round", round_)
            self.history.record("margin_violations", int(violated.sum()))
            if not violated.any() or round_ == self.max_reweight_rounds:
                break
            weights = np.where(violated, weights * self.reweight_delta, weights)
            weights = weights.astype(X.dtype)
            data = {"X": X, "sample_weight": weights}
            super().partial_fit(data, y_idx, **fit_params)
        return weights

    def infer(self, x, **fit_params):
        """Forward pass; supplies what the criterion declares it needs.

        Parameters
        ----------
        x : torch.Tensor or dict
            A batch: the inputs, or a dict with ``"X"`` and ``"sample_weight"``.
        **fit_params : dict
            Passed to the module's forward.

        Returns
        -------
        torch.Tensor
            The logits.
        """
        if isinstance(x, Mapping):
            x = x["X"]
        x = to_tensor(x, device=self.device)
        crit = getattr(self, "criterion_", None)
        if (
            isinstance(crit, MarginLoss)
            and torch.is_grad_enabled()
            and crit.input_grad_needed(self.module_)
        ):
            x.requires_grad_(True)
        self._features = None
        if isinstance(crit, MarginLoss) and crit.needs_features:

            def keep(_module, inputs, _output):
                self._features = inputs[0]

            handle = _last_linear(self.module_).register_forward_hook(keep)
            try:
                return self.module_(x, **fit_params)
            finally:
                handle.remove()
        return self.module_(x, **fit_params)

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Loss of a batch: the criterion sees inputs, module, features, weights.

        Parameters
        ----------
        y_pred : torch.Tensor of shape (n, n_classes)
            Logits.
        y_true : torch.Tensor of shape (n,)
            Encoded labels.
        X : dict or torch.Tensor, default=None
            The batch as given to :meth:`infer`.
        training : bool, default=False
            Whether the module is training.

        Returns
        -------
        torch.Tensor
            The scalar loss.
        """
        y_true = to_tensor(y_true, device=self.device)
        weight, data = None, X
        if isinstance(X, Mapping):
            weight, data = X.get("sample_weight"), X["X"]
        if not isinstance(self.criterion_, MarginLoss):
            return self.criterion_(y_pred, y_true)
        if weight is not None:
            weight = to_tensor(weight, device=self.device)
        features, self._features = getattr(self, "_features", None), None
        return self.criterion_(
            y_pred,
            y_true,
            X=data,
            module=self.module_,
            features=features,
            sample_weight=weight,
        )

    def validation_step(self, batch, **fit_params):
        """Validation loss; keeps autograd on for double-backprop losses.

        Parameters
        ----------
        batch : tuple
            A batch from the validation iterator.
        **fit_params : dict
            Passed to the module's forward.

        Returns
        -------
        dict
            ``{"loss": loss, "y_pred": logits}``, both detached.
        """
        crit = self.criterion_
        self._set_training(False)
        if not (isinstance(crit, MarginLoss) and crit.input_grad_needed(self.module_)):
            return super().validation_step(batch, **fit_params)
        Xi, yi = unpack_data(batch)
        with torch.enable_grad():
            y_pred = self.infer(Xi, **fit_params)
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss.detach(), "y_pred": y_pred.detach()}
