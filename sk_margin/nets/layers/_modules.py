"""Default torch modules for ``MarginNetClassifier``: an MLP and a small CNN.

Both are plain :class:`torch.nn.Sequential` containers of standard torch layers
(``Flatten``, ``Unflatten``, ``Linear``, ``Conv2d``, ``AvgPool2d``, ``ReLU``,
``Softplus``, ``Tanh``, ``Dropout``), listed flat in the order they are applied,
so that :mod:`sk_margin.nets` can walk ``module.children()`` and multiply
per-layer Lipschitz constants. They return raw logits: no softmax.

Sizes are constructor keywords (``input_dim`` or ``input_shape``, and
``n_classes``) so that the net can infer them from the training data and pass
them as ``module__input_dim=...``; :func:`default_module_for` picks the module
and its size keyword from the per-sample shape of ``X``.
"""

import numbers

from torch import nn

from sk_margin._validation import is_positive_int

__all__ = [
    "MLP",
    "SmallCNN",
    "default_module_for",
]

_ACTIVATIONS = ("relu", "softplus", "tanh")


def _check_positive_int(value, name):
    """Return ``value`` as an ``int`` if it is an integer >= 1, else raise."""
    if is_positive_int(value):
        return int(value)
    raise ValueError(f"{name} must be a positive int, got {value!r}.")


def _check_int_tuple(values, name, example):
    """Return ``values`` as a tuple of positive ints, else raise."""
    try:
        values = tuple(values)
    except TypeError:
        raise ValueError(
            f"{name} must be a sequence of positive ints such as {example}, "
            f"got {values!r}."
        ) from None
    for v in values:
        if not is_positive_int(v):
            raise ValueError(
                f"{name} must be a sequence of positive ints such as {example}, "
                f"got {values!r}."
            )
    return tuple(int(v) for v in values)


def _make_activation(activation, beta):
    """A fresh activation layer from its name."""
    if activation == "relu":
        return nn.ReLU()
    if activation == "softplus":
        return nn.Softplus(beta=beta)
    if activation == "tanh":
        return nn.Tanh()
    raise ValueError(
        f"activation must be one of {', '.join(map(repr, _ACTIVATIONS))}, "
        f"got {activation!r}."
    )


def _check_activation(activation, beta):
    """Validate ``activation`` and ``beta`` before any layer is built."""
    _make_activation(activation, beta)  # raises on an unknown name
    if activation == "softplus" and (
        isinstance(beta, bool) or not isinstance(beta, numbers.Real) or beta <= 0
    ):
        raise ValueError(f"beta must be a positive number, got {beta!r}.")


class MLP(nn.Sequential):
    """Fully connected network returning logits.

    The layers are ``Flatten``, then for each hidden size ``Linear ->
    activation [-> Dropout]``, then a final ``Linear`` to ``n_classes`` raw
    logits. With ``hidden_sizes=()`` the model is linear: ``Flatten ->
    Linear``.

    Parameters
    ----------
    input_dim : int
        Number of input features. Inputs of shape ``(n, input_dim)`` are used
        as they are; inputs of shape ``(n, *shape)`` with
        ``prod(shape) == input_dim`` (e.g. images) are flattened first.
    n_classes : int
        Number of classes, i.e. of output logits.
    hidden_sizes : sequence of int, default=(256,)
        Widths of the hidden layers; ``()`` gives a linear model.
    activation : {"relu", "softplus", "tanh"}, default="relu"
        Non-linearity after each hidden ``Linear``. ``"softplus"`` is
        ``nn.Softplus(beta=beta)``, a smooth ReLU; Hein & Andriushchenko (2017)
        use it with ``beta=10``.
    beta : float, default=1.0
        Sharpness of the softplus; ignored by the other activations.
    dropout : float, default=0.0
        Dropout probability after each hidden activation; ``0`` adds no
        ``Dropout`` layer.

    See Also
    --------
    SmallCNN : Small convolutional network for images.
    default_module_for : Pick the module from the shape of the data.

    Notes
    -----
    Every child is a standard torch layer, applied in order, so the network
    is ``children[-1] o ... o children[0]`` and its Lipschitz constant is at
    most the product of the children's. ``Flatten`` is an isometry; ``ReLU``,
    ``Tanh`` and ``Softplus`` (for any ``beta``) are 1-Lipschitz; ``Dropout``
    is the identity in evaluation mode, the mode in which bounds and
    certificates apply.

    References
    ----------
    M. Hein and M. Andriushchenko, "Formal Guarantees on the Robustness of a
    Classifier against Adversarial Manipulation", NeurIPS 2017.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import MLP
    >>> net = MLP(input_dim=4, n_classes=3, hidden_sizes=(8,), activation="tanh")
    >>> net
    MLP(
      (0): Flatten(start_dim=1, end_dim=-1)
      (1): Linear(in_features=4, out_features=8, bias=True)
      (2): Tanh()
      (3): Linear(in_features=8, out_features=3, bias=True)
    )
    >>> net(torch.zeros(5, 4)).shape
    torch.Size([5, 3])
    >>> net(torch.zeros(5, 2, 2)).shape  # flattened to 4 features
    torch.Size([5, 3])
    """

    def __init__(
        self,
        input_dim,
        n_classes,
        hidden_sizes=(256,),
        activation="relu",
        beta=1.0,
        dropout=0.0,
    ):
        input_dim = _check_positive_int(input_dim, "input_dim")
        n_classes = _check_positive_int(n_classes, "n_classes")
        hidden_sizes = _check_int_tuple(hidden_sizes, "hidden_sizes", "(256,)")
        _check_activation(activation, beta)
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, numbers.Real)
            or not 0 <= dropout < 1
        ):
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")

        layers = [nn.Flatten()]
        width = input_dim
        for size in hidden_sizes:
            layers += [nn.Linear(width, size), _make_activation(activation, beta)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = size
        layers.append(nn.Linear(width, n_classes))
        super().__init__(*layers)
        self.input_dim = input_dim
        self.n_classes = n_classes


def _conv_pool_size(size, kernel_size):
    """Spatial size after ``Conv2d(k, padding=k // 2)`` then ``AvgPool2d(2)``."""
    return (size + 2 * (kernel_size // 2) - kernel_size + 1) // 2


class SmallCNN(nn.Sequential):
    """Small convolutional network for images, returning logits.

    The layers are ``Flatten -> Unflatten(1, input_shape)``, then for each
    entry ``c`` of ``channels`` a block ``Conv2d(c, kernel_size,
    padding=kernel_size // 2) -> activation -> AvgPool2d(2)``, then
    ``Flatten -> Linear(hidden_size) -> activation -> Linear(n_classes)``.

    Parameters
    ----------
    input_shape : tuple of int (C, H, W)
        Shape of one image: channels, height, width.
    n_classes : int
        Number of classes, i.e. of output logits.
    channels : sequence of int, default=(16, 32)
        Output channels of the convolutional blocks; each block halves the
        height and the width (rounding down).
    kernel_size : int, default=3
        Side of the square convolution kernels; the padding ``kernel_size //
        2`` keeps the spatial size for odd kernels.
    hidden_size : int, default=128
        Width of the fully connected hidden layer.
    activation : {"relu", "softplus", "tanh"}, default="relu"
        Non-linearity after each convolution and after the hidden ``Linear``;
        ``"softplus"`` is ``nn.Softplus(beta=beta)``.
    beta : float, default=1.0
        Sharpness of the softplus; ignored by the other activations.

    See Also
    --------
    MLP : Fully connected network.
    default_module_for : Pick the module from the shape of the data.

    Notes
    -----
    **Input convention.** The module accepts any batch ``(n, *shape)`` with
    ``prod(shape) == C * H * W``: images ``(n, C, H, W)``, flat rows
    ``(n, C * H * W)`` as scikit-learn passes them, or ``(n, H, W)`` when
    ``C == 1``. The leading ``Flatten -> Unflatten`` pair (both standard
    layers) reshapes every one of them to ``(n, C, H, W)``, so the net never
    has to; flat rows must be in C (row-major) order of ``(C, H, W)``.

    **Why average pooling.** ``AvgPool2d(2)`` is *linear*, with l2 operator
    norm exactly ``1/2`` for non-overlapping 2x2 windows, so a Lipschitz bound
    can merge it with the adjacent convolution into one linear map and take
    that map's spectral norm, which is tighter than the product of the two
    norms. Max pooling is only known to be 1-Lipschitz and, being
    non-linear, cannot be merged.

    As in :class:`MLP`, every child is a standard torch layer applied in
    order; the reshaping layers are isometries and the activations are
    1-Lipschitz.

    Examples
    --------
    >>> import torch
    >>> from sk_margin.nets import SmallCNN
    >>> net = SmallCNN(input_shape=(1, 8, 8), n_classes=10)
    >>> net(torch.zeros(5, 1, 8, 8)).shape
    torch.Size([5, 10])
    >>> net(torch.zeros(5, 64)).shape  # flat rows, as scikit-learn passes them
    torch.Size([5, 10])
    >>> [type(layer).__name__ for layer in net]  # doctest: +NORMALIZE_WHITESPACE
    ['Flatten', 'Unflatten', 'Conv2d', 'ReLU', 'AvgPool2d', 'Conv2d', 'ReLU',
     'AvgPool2d', 'Flatten', 'Linear', 'ReLU', 'Linear']
    """

    def __init__(
        self,
        input_shape,
        n_classes,
        channels=(16, 32),
        kernel_size=3,
        hidden_size=128,
        activation="relu",
        beta=1.0,
    ):
        input_shape = _check_int_tuple(input_shape, "input_shape", "(1, 28, 28)")
        if len(input_shape) != 3:
            hint = (
                f"; for a single-channel image pass (1, {input_shape[0]}, "
                f"{input_shape[1]})"
                if len(input_shape) == 2
                else ""
            )
            raise ValueError(
                f"input_shape must be (C, H, W), got {input_shape!r}{hint}."
            )
        n_classes = _check_positive_int(n_classes, "n_classes")
        channels = _check_int_tuple(channels, "channels", "(16, 32)")
        kernel_size = _check_positive_int(kernel_size, "kernel_size")
        hidden_size = _check_positive_int(hidden_size, "hidden_size")
        _check_activation(activation, beta)

        n_channels, height, width = input_shape
        for _ in channels:
            height = _conv_pool_size(height, kernel_size)
            width = _conv_pool_size(width, kernel_size)
        if height < 1 or width < 1:
            raise ValueError(
                f"input_shape {input_shape!r} is too small for {len(channels)} "
                f"convolution + 2x2 pooling blocks with kernel_size={kernel_size}; "
                "use fewer channels entries or larger images."
            )

        layers = [nn.Flatten(), nn.Unflatten(1, input_shape)]
        for c in channels:
            layers += [
                nn.Conv2d(n_channels, c, kernel_size, padding=kernel_size // 2),
                _make_activation(activation, beta),
                nn.AvgPool2d(2),
            ]
            n_channels = c
        layers += [
            nn.Flatten(),
            nn.Linear(n_channels * height * width, hidden_size),
            _make_activation(activation, beta),
            nn.Linear(hidden_size, n_classes),
        ]
        super().__init__(*layers)
        self.input_shape = input_shape
        self.n_classes = n_classes


def default_module_for(X_shape):
    """Default module class and its size keyword for samples of a given shape.

    Parameters
    ----------
    X_shape : tuple of int
        Shape of *one* sample, i.e. ``X.shape[1:]``: ``(n_features,)`` for
        tabular data, ``(C, H, W)`` or ``(H, W)`` for images.

    Returns
    -------
    module_class : type
        :class:`MLP` for 1-D samples, :class:`SmallCNN` for 2-D and 3-D ones.
    kwargs : dict
        ``{"input_dim": n_features}`` for :class:`MLP`,
        ``{"input_shape": (C, H, W)}`` for :class:`SmallCNN`, with ``C = 1``
        for ``(H, W)`` samples. ``n_classes`` is left to the caller.

    Notes
    -----
    :class:`SmallCNN` reshapes its input itself, so ``(n, H, W)`` batches and
    flat ``(n, C * H * W)`` rows need no reshaping by the net.

    Examples
    --------
    >>> from sk_margin.nets import default_module_for
    >>> module, kwargs = default_module_for((64,))
    >>> module.__name__, kwargs
    ('MLP', {'input_dim': 64})
    >>> module, kwargs = default_module_for((28, 28))
    >>> module.__name__, kwargs
    ('SmallCNN', {'input_shape': (1, 28, 28)})
    """
    shape = _check_int_tuple(X_shape, "X_shape", "(64,) or (1, 28, 28)")
    if len(shape) == 1:
        return MLP, {"input_dim": shape[0]}
    if len(shape) == 2:
        return SmallCNN, {"input_shape": (1, *shape)}
    if len(shape) == 3:
        return SmallCNN, {"input_shape": shape}
    raise ValueError(
        "X_shape must be the shape of one sample: (n_features,), (H, W) or "
        f"(C, H, W); got {shape!r}, with {len(shape)} dimensions. Pass "
        "X.shape[1:], not X.shape, or flatten the samples."
    )
