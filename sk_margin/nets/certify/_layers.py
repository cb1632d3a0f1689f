"""One walk over a network's layers, shared by the bounds and the estimate.

A network is bounded as the chain of its layers: :func:`sequential_layers`
opens nested ``nn.Sequential`` containers (those that run their children in
order) and lists every layer in execution order, a layer used twice twice.
The sound bounds of :mod:`sk_margin.nets.certify._lipschitz` and the training-time
estimate of :mod:`sk_margin.nets.certify._power_iteration` both walk a network with
it, and :func:`trace_input_shapes` finds the input shape of each layer.
"""

import contextlib

import torch
from torch import nn

from sk_margin.certify import ROUNDING_SLACK

__all__ = ["eval_mode", "sequential_layers", "trace_input_shapes"]


def upper(value):
    """``value`` enlarged by :data:`~sk_margin.certify.ROUNDING_SLACK`, a float."""
    return float(value) * (1.0 + ROUNDING_SLACK)


def type_name(layer):
    """``nn.Linear`` for torch's own layers (or classes), the qualified name else."""
    cls = layer if isinstance(layer, type) else type(layer)
    if cls.__module__.startswith("torch.nn"):
        return f"nn.{cls.__name__}"
    return cls.__qualname__


# The methods through which a torch layer computes its output.
_COMPUTE = ("forward", "_conv_forward", "__call__", "_call_impl")


def base_class(layer):
    """The torch class whose computation ``layer`` runs, else ``type(layer)``.

    A subclass of a torch layer is seen as that layer when it overrides none
    of the methods that compute the output (``forward``, the convolutions'
    ``_conv_forward``, ``__call__``): torch's parametrized copies of a class,
    or a library's layer that only constrains its weight at construction
    (deel-torchlip's ``SpectralLinear``). Its rules then read its parameters
    as they are at certification time. A subclass that overrides one of them
    may compute something else, and keeps its own class.
    """
    cls = type(layer)
    base = next(
        (c for c in cls.__mro__ if c.__module__.startswith("torch.nn.modules")),
        None,
    )
    if base is None or base is nn.Module:
        return cls
    if all(getattr(cls, name, None) is getattr(base, name, None) for name in _COMPUTE):
        return base
    return cls


@contextlib.contextmanager
def eval_mode(module):
    """Eval mode and no autograd; restores every submodule's training flag."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        for m, mode in modes:
            m.training = mode


def _is_plain_sequential(module):
    """An ``nn.Sequential``, or a subclass running its children the same way."""
    names = ("forward", "__iter__", "__call__", "_call_impl")
    return isinstance(module, nn.Sequential) and all(
        getattr(type(module), n) is getattr(nn.Sequential, n) for n in names
    )


def _check_hooks(module, where):
    if module._forward_hooks or module._forward_pre_hooks:
        raise TypeError(
            f"Cannot bound the Lipschitz constant of {where}: it has forward "
            "hooks, which may change its output. Remove them (for spectral or "
            "weight normalisation use torch.nn.utils.parametrizations instead)."
        )


def _check_global_hooks():
    global_hooks = (
        getattr(torch.nn.modules.module, "_global_forward_hooks", None),
        getattr(torch.nn.modules.module, "_global_forward_pre_hooks", None),
    )
    if any(global_hooks):
        raise TypeError(
            "Cannot bound Lipschitz constants while global forward hooks are "
            "registered (torch.nn.modules.module.register_module_forward_hook)."
        )


def _flatten(module, name, check_hooks):
    if check_hooks:
        where = f"'{name}' ({type_name(module)})" if name else "the module"
        _check_hooks(module, where)
    if _is_plain_sequential(module):
        out = []
        # _modules, not named_children(): a layer used twice must count twice.
        for child_name, child in module._modules.items():
            child_path = f"{name}.{child_name}" if name else child_name
            out += _flatten(child, child_path, check_hooks)
        return out
    return [(name, module)]


def sequential_layers(module, *, check_hooks=True):
    """The layers of a network in execution order, nested Sequentials opened.

    Parameters
    ----------
    module : torch.nn.Module
        An ``nn.Sequential`` (possibly nested, or a subclass that runs its
        children the same way), or a single layer.
    check_hooks : bool, default=True
        Raise a TypeError when a forward hook (of a layer, a container or
        global) could change what the chain computes.

    Returns
    -------
    layers : list of tuple (str, torch.nn.Module)
        ``(name, layer)``: the dotted path of the layer in ``module`` (``""``
        for ``module`` itself). A layer used twice appears twice, under each
        of its names; a container that is not a plain ``nn.Sequential`` is
        one layer.
    """
    if check_hooks:
        _check_global_hooks()
    return _flatten(module, "", check_hooks)


def describe(position, name, layer):
    """``layer 3 (nn.Linear at 'head.0')``, for error messages."""
    where = "" if name in ("", str(position)) else f" at '{name}'"
    return f"layer {position} ({type_name(layer)}{where})"


def trace_input_shapes(layers, x, *, what=None, describe_as=None):
    """The input shape of every layer of a chain, from one forward pass of ``x``.

    Parameters
    ----------
    layers : list of torch.nn.Module
        The chain, in execution order (see :func:`sequential_layers`).
    x : torch.Tensor
        An input batch of the chain (one sample is enough); run without
        autograd.
    what : str, default=None
        How the error message names the input.
    describe_as : list of str, default=None
        Descriptions of the layers for the error message.

    Returns
    -------
    shapes : list of tuple of int
        The shape of each layer's input, batch dimension included.
    """
    if what is None:
        what = f"An input of shape {tuple(x.shape[1:])} per sample"
    shapes = []
    with torch.no_grad():
        for position, layer in enumerate(layers):
            shapes.append(tuple(x.shape))
            try:
                x = layer(x)
            except (RuntimeError, ValueError, TypeError) as err:
                desc = (
                    describe_as[position]
                    if describe_as
                    else describe(position, "", layer)
                )
                raise ValueError(
                    f"{what} does not fit {desc}, which fails on an input of "
                    f"shape {shapes[-1]}: {err}"
                ) from err
    return shapes
