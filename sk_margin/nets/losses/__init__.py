"""Torch margin-training losses, usable as the skorch ``criterion``.

Every loss is a :class:`MarginLoss`: a plain :class:`torch.nn.Module` whose
hyperparameters are keyword arguments of ``__init__``, stored as attributes of
the same name and checked when the loss is built, so that skorch routing
(``criterion__eps=0.5``) and ``GridSearchCV`` (``{"criterion__eps": [0.1,
0.5]}``) reach them. Losses are selected by name through :data:`LOSSES` /
:func:`resolve_loss`; :func:`build_loss` is what the net calls.

======================  ==========================  ========================
name                    paper                       hyperparameters
======================  ==========================  ========================
``cross_entropy``       baseline
``lmt``                 Tsuzuku et al. 2018         ``eps``, ``clip``
``lc_lmt``              Ono et al., Algorithm 2     ``eps``, ``clip``
``margin_ratio``        Kesidis et al., eq. 6       ``mu``
``margin_softmax``      Kesidis et al., eq. 7       ``mu``
``normalized_margin``   Kesidis et al., eq. 8       ``mu``
``margin_hinge``        Kesidis et al., eq. 9       ``mu``
``amr``                 Wu & Yu, eq. 15             ``lam``, ``tau``, ``beta``
``gradient_margin``     Matyasko & Chau             ``C``, ``q``
``cross_lipschitz``     Hein & Andriushchenko,      ``lam``
                        eq. 6
``certified_margin``    Leino et al. 2021 (radius   ``margin``,
                        form of the bottom class)   ``temperature``
======================  ==========================  ========================

Your own loss subclasses :class:`MarginLoss` and supplies its per-sample
formula; :func:`target_score`, :func:`runner_up` and :func:`reduce_loss` are
the helpers the built-in losses use:

>>> import torch
>>> from sk_margin.nets.losses import MarginLoss, runner_up, target_score
>>> class SquaredHinge(MarginLoss):
...     def __init__(self, mu=1.0):
...         super().__init__(mu=mu)
...
...     def per_sample(self, logits, target, **inputs):
...         margin = target_score(logits, target) - runner_up(logits, target)[0]
...         return torch.relu(self.mu - margin) ** 2
>>> SquaredHinge(mu=1.0)(torch.tensor([[2.0, 0.5], [0.0, 0.2]]), torch.tensor([0, 0]))
tensor(0.7200)
"""

import difflib

from torch import nn

from sk_margin.nets.losses._average_margin import AverageMarginLoss
from sk_margin.nets.losses._base import (
    CrossEntropyMarginLoss,
    MarginLoss,
    hyperparameter_names,
    reduce_loss,
    runner_up,
    target_score,
)
from sk_margin.nets.losses._certified_margin import CertifiedMarginLoss
from sk_margin.nets.losses._gradient_losses import (
    CrossLipschitzLoss,
    GradientMarginLoss,
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
    "CertifiedMarginLoss",
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
    "build_loss",
    "reduce_loss",
    "resolve_loss",
    "runner_up",
    "target_score",
]


#: The losses by name, for ``MarginNetClassifier(criterion=name)``.
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
    "certified_margin": CertifiedMarginLoss,
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
            close = difflib.get_close_matches(name_or_class, list(LOSSES), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(
                f"Unknown loss {name_or_class!r}; valid names are "
                f"{', '.join(sorted(LOSSES))}, or pass a MarginLoss class or "
                f"instance.{hint}"
            ) from None
    if isinstance(name_or_class, nn.Module) or (
        isinstance(name_or_class, type) and issubclass(name_or_class, nn.Module)
    ):
        return name_or_class
    raise TypeError(
        "A loss must be a name, a torch.nn.Module subclass or instance, got "
        f"{type(name_or_class).__name__}."
    )


def build_loss(criterion, params):
    """The loss of a net's ``criterion`` and ``criterion__*`` parameters, checked.

    Parameters
    ----------
    criterion : str, type or torch.nn.Module
        A name of :data:`LOSSES`, a loss class or a loss instance.
    params : dict
        Keyword arguments of the loss (the net's ``criterion__*`` parameters).

    Returns
    -------
    loss_class : type or torch.nn.Module
        What :func:`resolve_loss` returns.
    params : dict
        ``params``, each checked to be a keyword argument of the loss class
        (the values are checked when the loss is built).

    Raises
    ------
    ValueError
        For a keyword the loss does not take: the message lists those it
        takes and suggests the closest.

    Examples
    --------
    >>> from sk_margin.nets.losses import build_loss
    >>> build_loss("lc_lmt", {"eps": 0.3})[0].__name__
    'LCLMTLoss'
    >>> build_loss("lc_lmt", {"mu": 0.3})
    Traceback (most recent call last):
    ...
    ValueError: criterion__mu is not a parameter of LCLMTLoss (criterion='lc_lmt'); ...
    """
    loss = resolve_loss(criterion)
    cls = loss if isinstance(loss, type) else type(loss)
    names = hyperparameter_names(cls)
    unknown = [] if names is None else sorted(set(params) - set(names))
    if unknown:
        name = unknown[0]
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean criterion__{close[0]}?" if close else ""
        valid = ", ".join(f"criterion__{n}" for n in names) or "none"
        shown = f" (criterion={criterion!r})" if isinstance(criterion, str) else ""
        raise ValueError(
            f"criterion__{name} is not a parameter of {cls.__name__}{shown}; "
            f"its parameters are: {valid}.{hint}"
        )
    return loss, params
