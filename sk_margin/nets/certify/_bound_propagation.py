"""Linear bound propagation from an l2 ball (CROWN-style), and its radius.

For a network ``f`` (a chain of supported layers, see
:func:`sk_margin.nets.certify._layers.sequential_layers`), a point ``x`` and a radius
``r``, :class:`BoundPropagation` computes sound lower bounds of every margin
``g_j = f_c - f_j`` over the ball ``B(x, r)``:

- every non-linear layer (ReLU, LeakyReLU, Softplus, Tanh, Sigmoid,
  MaxPool2d) is enclosed, on the interval of its inputs over the ball, between
  two linear functions (a linear relaxation); a layer sorting pairs
  (GroupSort-2, MaxMin) is linear but for a ReLU of each pair's difference,
  relaxed on the interval of that difference;
- a linear function ``Lambda . h + beta`` of any layer's output is carried
  back to the input through the transposed affine layers and the relaxations
  (for a lower bound, the lower relaxation where a coefficient is positive,
  the upper one where it is negative), giving ``a^T x' + b`` with
  ``a^T x' + b <= Lambda . h(x')`` on the ball, whose minimum over ``B(x, r)``
  is ``a^T x + b - r ||a||_2``;
- the intervals of the non-linear layers' inputs come from the same backward
  pass, layer after layer (exactly for the first one: ``u_k^T x + c_k +- r
  ||u_k||``), or, where that pass would cost too much (wide convolution
  layers), from interval arithmetic on the previous layer's bounds. For a
  ReLU (or leaky ReLU) layer the backward pass runs only for the neurons
  whose cheaper interval contains 0: the relaxation of the others is exact
  whatever their interval.

This is the bound propagation of Zhang et al. (CROWN, 2018) and Weng et al.
(Fast-Lin, 2018), with the l2 ball's dual norm at the input. Every bound is
sound for the ball it was computed for, and for every smaller ball: the
relaxations fitted on the intervals over ``B(x, R)`` hold on the smaller
intervals, so the final bound ``a^T x + b - r ||a||_2`` is a line in ``r``
valid for all ``r <= R``, and one propagation proves the radius ``min(R,
(a^T x + b) / ||a||)``. :func:`bound_propagation_radius` searches the fixed
point of that map (:func:`sk_margin.certify.proved_radius_search`, 3-4
propagations per point where bisection needed 8-9) and returns only radii a
propagation proved.

References
----------
.. [1] H. Zhang, T.-W. Weng, P.-Y. Chen, C.-J. Hsieh and L. Daniel. Efficient
   neural network robustness certification with general activation functions.
   NeurIPS 2018.
.. [2] T.-W. Weng et al. Towards fast computation of certified robustness for
   ReLU networks. ICML 2018.
"""

import functools
import math

import numpy as np
import torch
from torch import nn

from sk_margin.certify import (
    BISECTION_STEPS,
    ROUNDING_SLACK,
    proved_radius_search,
)
from sk_margin.margins import first_order_margin
from sk_margin.nets.certify._layers import (
    eval_mode,
    sequential_layers,
    trace_input_shapes,
)
from sk_margin.nets.certify._lipschitz import layer_lipschitz_bounds
from sk_margin.nets.certify._local import derivative_range
from sk_margin.nets.certify._propagation_rules import (
    ACTIVATIONS,
    MaxPool,
    PairSort,
    abs_forward,
    abs_transpose,
    relax,
    transpose,
    unsupported_layer,
)
from sk_margin.nets.certify._sorting import group_sort

__all__ = ["BoundPropagation", "bound_propagation_radius"]

# A backward pass that gives the bounds of a layer's inputs carries one row
# per neuron; above this many entries per point (rows x widest layer on the
# way back) the interval of that layer comes from interval arithmetic.
_BACKWARD_ENTRIES = 2**19
# Entries of the coefficient arrays per batch of points.
_BATCH_ENTRIES = 2**23
# The Gram matrix of the first affine map is used up to this many outputs.
_GRAM_MAX = 4096
# Lines of intermediate bounds fitted for radius R are reused for radii in
# [f R, R]: only for packed (convolutional) layers, whose fresh bounds cost
# the most; measured on a cross-entropy SmallCNN, 0.8 halves the fresh
# passes for a radius 0-6% smaller.
_REUSE = {"packed": 0.8, "unstable": 1.0}
# Each check of a radius costs a full propagation: the bisection stops once
# the radius is known to this relative precision.
_RTOL = 5e-3


class BoundPropagation:
    """Bound propagation through a chain of layers from l2 balls (see module).

    Parameters
    ----------
    module : torch.nn.Module
        The network, float64 and in eval mode (see :func:`unsupported_layer`
        for the layers it may contain).
    input_shape : tuple of int
        Shape of one input sample.
    """

    def __init__(self, module, input_shape):
        reason = unsupported_layer(module)
        if reason is not None:
            raise TypeError(f"Bound propagation cannot certify this network: {reason}.")
        self.module = module
        self.layers = [layer for _, layer in sequential_layers(module)]
        self.input_shape = tuple(input_shape)
        ref = next(module.parameters(), None)
        self.dtype = ref.dtype if ref is not None else torch.float64
        x = torch.zeros((1, *self.input_shape), dtype=self.dtype)
        shapes = trace_input_shapes(self.layers, x)
        self.in_shapes = [s[1:] for s in shapes]
        with torch.no_grad():
            out = x
            for layer in self.layers:
                out = layer(out)
        self.out_shapes = self.in_shapes[1:] + [tuple(out.shape[1:])]
        self.pools = {
            i: MaxPool(layer, self.in_shapes[i])
            for i, layer in enumerate(self.layers)
            if isinstance(layer, nn.MaxPool2d)
        }
        self.pairs = {
            i: PairSort(layer, self.in_shapes[i])
            for i, layer in enumerate(self.layers)
            if group_sort(layer) is not None
        }
        self.nonlinear = [i for i in range(len(self.layers)) if self._is_nonlinear(i)]
        with torch.no_grad():
            self.offsets = [
                layer(torch.zeros((1, *s), dtype=self.dtype))[0]
                if not self._is_nonlinear(i)
                else None
                for i, (layer, s) in enumerate(
                    zip(self.layers, self.in_shapes, strict=True)
                )
            ]
        self.first = self.nonlinear[0] if self.nonlinear else len(self.layers)
        self._rows_cache = {}
        self._packing_cache = {}

    # The statistics of the first affine map and the Lipschitz spreads cost
    # the most to set up (seconds for a wide first convolution): computed on
    # first use, so that "auto" can ask backward_everywhere for free.
    @functools.cached_property
    def _prefix(self):
        return self._prefix_stats(self.first)

    @property
    def first_row_norms(self):
        """Row norms of the affine map before the first non-linear layer."""
        return self._prefix[0]

    @property
    def gram(self):
        """Gram matrix of that map's rows, or None (more outputs than inputs,
        or more than :data:`_GRAM_MAX`)."""
        return self._prefix[1]

    @property
    def first_pair_norms(self):
        """Norms of the differences of each sorted pair's rows, where the first
        non-linear layer sorts pairs (else None)."""
        return self._prefix[2]

    @functools.cached_property
    def spreads(self):
        """Lipschitz spreads of the non-linear layers' inputs over the ball."""
        return self._lipschitz_spreads()

    def _is_nonlinear(self, i):
        layer = self.layers[i]
        return isinstance(layer, ACTIVATIONS) or i in self.pools or i in self.pairs

    def _forward(self, i, z):
        with torch.no_grad():
            return self.layers[i](z)

    def _transpose(self, i, lam):
        return transpose(self.layers[i], lam, self.in_shapes[i], self.out_shapes[i])

    def _abs_transpose(self, i, rad):
        layer, shapes = self.layers[i], (self.in_shapes[i], self.out_shapes[i])
        return abs_transpose(layer, rad, *shapes)

    def _prefix_stats(self, end):
        """Row norms ``||u_k||_2`` of the affine map of layers ``[0, end)``.

        Also its Gram matrix ``G = A A^T`` when the map has at most as many
        outputs as inputs (and at most :data:`_GRAM_MAX` of them): then
        ``||lambda^T A||^2 = lambda^T G lambda`` is cheaper than carrying
        ``lambda`` back through the map. And when layer ``end`` sorts pairs,
        the norms ``||u_a - u_b||`` of the differences of each pair's rows
        (else None).
        """
        d = math.prod(self.input_shape)
        shape = self.in_shapes[end] if end < len(self.layers) else self.out_shapes[-1]
        width = math.prod(shape)
        gram = None
        if width <= min(d, _GRAM_MAX):
            gram = torch.zeros((width, width), dtype=self.dtype)
        total = torch.zeros(width, dtype=self.dtype)
        pair = self.pairs.get(end)
        pair_total = None if pair is None else torch.zeros(width // 2, dtype=self.dtype)
        zero = self._affine_chain(
            torch.zeros((1, *self.input_shape), dtype=self.dtype), 0, end
        ).reshape(1, width)
        step = max(1, _BATCH_ENTRIES // max(1, width))
        for start in range(0, d, step):
            rows = min(step, d - start)
            basis = torch.zeros((rows, d), dtype=self.dtype)
            basis[torch.arange(rows), torch.arange(start, start + rows)] = 1.0
            out = self._affine_chain(basis.reshape(rows, *self.input_shape), 0, end)
            cols = out.reshape(rows, width) - zero  # rows of A^T
            total += (cols**2).sum(0)
            if gram is not None:
                gram += cols.T @ cols
            if pair is not None:
                diff = pair.differences(cols.reshape(rows, *shape))
                pair_total += (diff.reshape(rows, -1) ** 2).sum(0)
        norms = (total.sqrt() * (1.0 + ROUNDING_SLACK)).reshape(shape)
        pair_norms = None
        if pair is not None:
            pair_norms = pair_total.sqrt() * (1.0 + ROUNDING_SLACK)
            pair_norms = pair_norms.reshape(shape[0] // 2, *shape[1:])
        return norms, gram, pair_norms

    def _lipschitz_spreads(self):
        """How far each non-linear layer's inputs can move, per unit of radius.

        For a non-linear layer ``i`` after the first, its input is ``A h + c``
        with ``h`` the output of the previous non-linear layer ``p``, a
        function of the input with Lipschitz constant at most ``L_p``, the
        product of the sound layer bounds up to ``p``. On ``B(x, r)`` each
        input ``k`` then stays within ``r L_p ||A_k||_2`` of its value at
        ``x`` (the differences of a pair sort within ``r L_p ||A_a -
        A_b||``). For networks that are 1-Lipschitz by construction these
        intervals are far tighter than the backward passes'. Returns
        ``{i: spread}``, leaving out the chains too large to probe.
        """
        bounds = [
            b for _, _, b in layer_lipschitz_bounds(self.module, self.input_shape)
        ]
        spreads = {}
        for prev, i in zip(self.nonlinear[:-1], self.nonlinear[1:], strict=True):
            shape_in, shape_out = self.out_shapes[prev], self.in_shapes[i]
            d, width = math.prod(shape_in), math.prod(shape_out)
            scale = math.prod(bounds[: prev + 1]) * (1.0 + ROUNDING_SLACK)
            if d * width > 4 * _BATCH_ENTRIES:
                # Convolutional layers: the norms of the packed rows, per window.
                pack = self._packing(i) if self._piecewise(i) else None
                if pack is not None:  # its rows start at prev's output
                    norms = pack.row_norms(prev).reshape(shape_out)
                    spreads[i] = scale * norms * (1.0 + ROUNDING_SLACK)
                continue
            basis = torch.eye(d, dtype=self.dtype).reshape(d, *shape_in)
            zero = torch.zeros((1, *shape_in), dtype=self.dtype)
            cols = self._affine_chain(basis, prev + 1, i)
            cols = cols - self._affine_chain(zero, prev + 1, i)  # rows of A^T
            if i in self.pairs:
                cols = self.pairs[i].differences(cols)
            norms = cols.flatten(1).norm(dim=0).reshape(cols.shape[1:])
            spreads[i] = scale * norms * (1.0 + ROUNDING_SLACK)
        return spreads

    def _affine_chain(self, z, start, end):
        for i in range(start, end):
            z = self._forward(i, z)
        return z

    # -------------------------------------------------------------- bounds
    def _relaxations(self, i, lo, hi):
        """The relaxation of layer ``i`` on ``[lo, hi]``.

        For a pair sort, ``[lo, hi]`` bounds the differences of its pairs.
        """
        if i in self.pools:
            return self.pools[i].fit(lo, hi)
        if i in self.pairs:
            return self.pairs[i].fit(lo, hi)
        return relax(self.layers[i], lo, hi)

    def _backward(
        self,
        lam,
        end,
        relaxations,
        x,
        radius,
        first_centre,
        lower=True,
        split=False,
        segments=None,
    ):
        """Lower (or upper) bounds over the balls of ``lam . h_end(x')``.

        ``lam`` has shape (n, m, *shape of the input of layer ``end``);
        ``first_centre`` is the input of the first non-linear layer at ``x``.
        With ``split``, the lower bound as ``(c, s)``, ``c - r s`` (for the
        relaxations' radius ``r`` and, since the relaxations hold on every
        smaller ball, for any smaller radius too). With ``segments``
        (:class:`_Segments`), each row of ``lam`` packs several functions
        whose coefficients never overlap: every sum is then taken per
        function, and the bounds have shape (n, m, number of functions).
        """
        # ``lam`` may have a batch dimension of 1, shared by every row, until
        # the first relaxation makes it row-dependent: the affine layers
        # after the last relaxation are then transposed once, not per row.
        n, m = radius.shape[0], lam.shape[1]

        def total(t, i):
            if segments is None:
                return t.flatten(2).sum(2)
            return segments.reduce(t, i)

        width = () if segments is None else (segments.size,)
        bias = torch.zeros((lam.shape[0], m, *width), dtype=self.dtype)
        stop = self.first if self.gram is not None and segments is None else 0
        for i in range(end - 1, stop - 1, -1):
            if i in self.pools:
                channels = self.out_shapes[i][0]
                lam = lam.expand(n, *lam.shape[1:]).reshape(n, m, channels, -1)
                lam, b = relaxations[i].backward(lam, lower)
                bias = bias + b
            elif i in self.pairs:
                lam = lam.expand(n, *lam.shape[1:])
                lam, b = relaxations[i].backward(lam, lower)
                bias = bias + b
            elif self._is_nonlinear(i):
                low_a, low_b, up_a, up_b = relaxations[i]
                pos, neg = lam.clamp(min=0), lam.clamp(max=0)
                if lower:
                    a, b, a2, b2 = low_a, low_b, up_a, up_b
                else:
                    a, b, a2, b2 = up_a, up_b, low_a, low_b
                bias = bias + total(pos * b[:, None] + neg * b2[:, None], i)
                lam = pos * a[:, None] + neg * a2[:, None]
            else:
                if segments is None or self.offsets[i].any():
                    bias = bias + total(lam * self.offsets[i], i)
                lam = self._transpose(i, lam)
        flat = lam.flatten(2)
        sign = -1.0 if lower else 1.0
        if segments is not None:
            centre = segments.reduce(lam * x[:, None], -1)
            norm = segments.reduce(lam * lam, -1).sqrt()
        elif stop > 0:
            # lam sits on the output of the first affine map A x + c:
            # lam . (A x' + c) >= lam . (A x + c) - r sqrt(lam^T G lam).
            centre = (flat * first_centre.flatten(1)[:, None]).sum(2)
            quad = ((flat @ self.gram) * flat).sum(2)
            # Rounding slack relative to the triangle-inequality scale.
            scale = (flat**2 @ self.gram.diagonal()).clamp_min(0.0)
            norm = (quad.clamp_min(0.0) + 1e-12 * scale).sqrt()
        else:
            centre = (flat * x.flatten(1)[:, None]).sum(2)
            norm = flat.norm(dim=2)
        norm = norm * (1.0 + ROUNDING_SLACK)
        if split:
            return centre + bias, norm
        r = radius.reshape(-1, *([1] * (norm.ndim - 1)))
        return centre + bias + sign * r * norm

    @property
    def backward_everywhere(self):
        """Whether every layer's interval comes from a backward pass (or is exact).

        Full, per unstable neuron, or packed (convolutional ReLU layers). Where
        interval arithmetic stands in (wide convolutions before max pooling,
        pair sorts or smooth activations), the bounds are usually looser than
        the global Lipschitz bounds, and ``"auto"`` leaves bound propagation
        out.
        """
        return all(
            self._backward_cost(i) <= _BACKWARD_ENTRIES
            or self._tightening(i) is not None
            for i in self.nonlinear[1:]
        )

    def entries_per_row(self):
        """Largest coefficient array per point of one bound computation."""
        widest = max(math.prod(s) for s in self.in_shapes)
        costs = [self._backward_cost(i) for i in self.nonlinear[1:]]
        costs = [c for c in costs if c <= _BACKWARD_ENTRIES]
        return max([math.prod(self.out_shapes[-1]) * widest, *costs])

    def rows_per_call(self):
        """How many points one propagation bounds at once."""
        return max(1, _BATCH_ENTRIES // self.entries_per_row())

    def _backward_cost(self, end):
        neurons = math.prod(self.in_shapes[end])
        widest = max(math.prod(s) for s in self.in_shapes[: end + 1])
        return neurons * widest

    def _lines(self, i, way, lo, hi, relaxations, x, radius, first_centre, memo):
        """Bounds of layer ``i``'s unstable neurons as lines in the radius.

        Lines computed for a larger ball hold on the smaller ones: with a
        ``memo`` (:class:`_LineMemo`), rows whose radius is at most, and not
        much below, the radius of their stored lines reuse them.
        """
        method = self._unstable_backward if way == "unstable" else self._packed_backward
        args = (relaxations, x, radius, first_centre)
        if memo is None:
            return method(i, lo, hi, *args)
        stored, reuse = memo.get(i, radius, _REUSE[way])
        if not reuse.any():
            fresh = method(i, lo, hi, *args)
            memo.put(i, ~reuse, radius, fresh)
            return fresh
        if reuse.all():
            return stored
        rows = torch.nonzero(~reuse)[:, 0]
        taken = {j: _take(rel, rows) for j, rel in relaxations.items()}
        fresh = method(i, lo[rows], hi[rows], taken, x[rows], radius[rows],
                       first_centre[rows])  # fmt: skip
        memo.put(i, ~reuse, radius, fresh)
        stored[:, rows] = fresh
        return stored

    def bounds(self, x, radius, memo=None):
        """Interval of every non-linear layer's input over the balls, and relaxations.

        Parameters
        ----------
        x : torch.Tensor of shape (n, *input_shape)
            Centres, float64.
        radius : torch.Tensor of shape (n,)
            Radii.
        memo : _LineMemo, default=None
            Lines of earlier calls on the same points, reused where they hold.

        Returns
        -------
        relaxations : dict
            Per non-linear layer index, the relaxation fitted on its interval.
        intervals : dict
            Per non-linear layer index, ``(lo, hi)`` of its inputs.
        first_centre : torch.Tensor
            The input of the first non-linear layer at ``x``.
        """
        n = x.shape[0]
        relaxations, intervals = {}, {}
        first_centre = self._affine_chain(x, 0, self.first)
        centre, done = first_centre, self.first
        for k, i in enumerate(self.nonlinear):
            centre = self._affine_chain(centre, done, i)
            shape = self.in_shapes[i]
            if k == 0:  # exact: an affine map of the input
                lo, hi = _ball(centre, radius, self.first_row_norms)
            else:
                # Interval arithmetic from the previous bounds is cheap; where
                # a backward pass is affordable too, both intervals hold and
                # so does their intersection.
                lo, hi = self._interval(intervals, relaxations, i, n)
                if i in self.spreads and i not in self.pairs:
                    ball = _ball(centre, radius, self.spreads[i])
                    lo, hi = _intersect((lo, hi), ball)
                affordable = self._backward_cost(i) <= _BACKWARD_ENTRIES
                way = self._tightening(i)
                if way is not None:
                    lines = self._lines(i, way, lo, hi, relaxations, x, radius,
                                        first_centre, memo)  # fmt: skip
                    lo, hi = _apply_lines(lo, hi, lines, radius)
                elif affordable and i not in self.pairs:
                    eye = torch.eye(math.prod(shape), dtype=self.dtype)
                    eye = eye.reshape(1, -1, *shape)  # shared by every row
                    args = (eye, i, relaxations, x, radius, first_centre)
                    back_lo = self._backward(*args).reshape(n, *shape)
                    back_hi = self._backward(*args, lower=False).reshape(n, *shape)
                    lo, hi = _intersect((lo, hi), (back_lo, back_hi))
                    hi = torch.maximum(hi, lo)  # rounding only
            intervals[i] = (lo, hi)
            if i in self.pairs:
                args = (i, k, lo, hi, centre, relaxations, x, radius, first_centre)
                relaxations[i] = self._relaxations(i, *self._differences(*args))
            else:
                relaxations[i] = self._relaxations(i, lo, hi)
            centre = self._forward(i, centre)
            done = i + 1
        return relaxations, intervals, first_centre

    def _piecewise(self, i):
        layer = self.layers[i]
        return isinstance(layer, (nn.ReLU, nn.LeakyReLU)) and i not in self.pairs

    def _tightening(self, i):
        """How the intervals of ReLU layer ``i`` are tightened, if they are.

        ``"unstable"``: a backward pass per unstable neuron, where a full
        pass is affordable or the rows of the affine map before the layer
        are few (dense layers); ``"packed"``: packed rows (convolutional
        layers, :meth:`_packing`); None: interval arithmetic only.
        """
        if not self._piecewise(i):
            return None
        if self._backward_cost(i) <= _BACKWARD_ENTRIES:
            return "unstable"
        if self._packing(i) is not None:
            return "packed"
        start = self._after_previous(i)
        size = math.prod(self.in_shapes[i]) * math.prod(self.in_shapes[start])
        return "unstable" if size <= 4 * _BATCH_ENTRIES else None

    def _unstable_backward(self, i, lo, hi, relaxations, x, radius, first_centre):
        """Bounds, by backward passes, of the neurons of layer ``i`` whose interval
        contains 0: ``(lo_value, lo_slope, hi_value, hi_slope)``, each ``(n,
        width)``, NaN for the other neurons (see :func:`_apply_lines`).

        Only those neurons of a ReLU (or leaky ReLU) can change state on the
        ball; a tighter interval would not change the relaxation of the others.
        The rows of the affine layers between the previous non-linear layer
        and ``i`` are carried back once (:meth:`_rows_before`); each unstable
        neuron of each point is then one row of the backward pass, with its
        point's relaxations.
        """
        n, shape = lo.shape[0], self.in_shapes[i]
        width = math.prod(shape)
        flat_lo, flat_hi = lo.reshape(n, width), hi.reshape(n, width)
        point, neuron = torch.nonzero((flat_lo < 0) & (flat_hi > 0), as_tuple=True)
        if not len(point):
            return torch.full((4, n, width), torch.nan, dtype=self.dtype)
        start, rows, offset = self._rows_before(i)
        lines = torch.full((4, n, width), torch.nan, dtype=self.dtype)
        chunk = max(1, _BATCH_ENTRIES // (2 * self._widest(start)))
        for s in range(0, len(point), chunk):
            p, k = point[s : s + chunk], neuron[s : s + chunk]
            lam = rows[k][:, None]
            lam = torch.cat([lam, -lam], 1)  # lower bounds of +-h_k
            taken = {j: _take(rel, p) for j, rel in relaxations.items()}
            x_p = x[p] if self.gram is None else None  # unused with the Gram
            args = (lam, start, taken, x_p, radius[p], first_centre[p])
            value, slope = self._backward(*args, split=True)
            lines[:, p, k] = torch.stack(
                [
                    offset[k] + value[:, 0],
                    slope[:, 0],
                    offset[k] - value[:, 1],
                    slope[:, 1],
                ]
            )
        return lines

    def _packing(self, i):
        """How the neurons of the image-shaped layer ``i`` share backward rows.

        A neuron of a convolutional layer depends on a small window of every
        earlier layer. Neurons of one channel whose windows never overlap, at
        any layer down to the input, can be carried back in one row: the
        coefficients stay apart, the relaxations (elementwise) treat each
        where it is, and every sum is taken per window (:class:`_Segments`).
        The neurons at positions ``(a + s u, b + s v)`` of one channel form
        a group, for the smallest spacing ``s`` at which the windows are
        apart; a layer of ``C`` channels then needs ``C s^2`` rows instead
        of one per neuron. The windows are those of ``|A|`` (a coefficient
        can only be non-zero inside), found once per network.

        Returns None where it does not apply: a layer that is not (C, H, W),
        or max pooling or pair sorting before it (their relaxations sum
        across windows).
        """
        if i in self._packing_cache:
            return self._packing_cache[i]
        self._packing_cache[i] = None
        shape = self.in_shapes[i]
        if len(shape) != 3 or any(j in self.pools or j in self.pairs for j in range(i)):
            return None
        channels, height, width = shape
        positions = height * width
        # Every channel at one position: the window of that position.
        lam = torch.zeros((positions, positions), dtype=self.dtype)
        lam[torch.arange(positions), torch.arange(positions)] = 1.0
        lam = lam.reshape(1, positions, 1, height, width).expand(
            1, positions, channels, height, width
        )
        windows = {}
        with torch.no_grad():
            for j in range(i - 1, -1, -1):
                windows[j] = lam[0].flatten(1) > 0
                if not self._is_nonlinear(j):
                    lam = self._abs_transpose(j, lam)
        windows[-1] = lam[0].flatten(1) > 0  # the input
        grid = torch.arange(positions).reshape(height, width)
        for spacing in range(1, max(height, width) + 1):
            offsets = [
                grid[a::spacing, b::spacing].flatten()
                for a in range(spacing)
                for b in range(spacing)
            ]
            if all(
                windows[j][group].sum(0).max() <= 1
                for group in offsets
                for j in windows
            ):
                break
        # labels[j][g]: at each entry of layer j, the position whose window
        # holds it in group g (``positions`` where none does).
        labels = {}
        for j, win in windows.items():
            lab = torch.full((len(offsets), win.shape[1]), positions)
            for g, group in enumerate(offsets):
                owner, entry = torch.nonzero(win[group], as_tuple=True)
                lab[g, entry] = group[owner]
            labels[j] = lab
        member = torch.zeros((len(offsets), positions), dtype=torch.bool)
        for g, group in enumerate(offsets):
            member[g, group] = True
        # The packed rows, carried back to the previous non-linear layer.
        start = self._after_previous(i)
        rows = member.to(self.dtype).reshape(1, len(offsets), 1, height, width)
        eye = torch.eye(channels, dtype=self.dtype).reshape(channels, 1, channels, 1, 1)
        rows = (rows * eye).reshape(1, -1, *shape)  # (channel, group) rows
        with torch.no_grad():
            for j in range(i - 1, start - 1, -1):
                rows = self._transpose(j, rows)
            zero = torch.zeros((1, *self.in_shapes[start]), dtype=self.dtype)
            offset = self._affine_chain(zero, start, i).reshape(-1)
        self._packing_cache[i] = _Packing(
            start, rows[0], offset, labels, member, channels, positions
        )
        return self._packing_cache[i]

    def _packed_backward(self, i, lo, hi, relaxations, x, radius, first_centre):
        """Bounds of the neurons of layer ``i`` by packed backward passes.

        One row per point and (channel, group) holding a neuron whose interval
        contains 0 (see :meth:`_packing`); every neuron of the row gets its
        bounds, the stable ones too. Returns lines as
        :meth:`_unstable_backward` does.
        """
        pack = self._packing(i)
        n = lo.shape[0]
        flat_lo, flat_hi = lo.reshape(n, -1), hi.reshape(n, -1)
        unstable = ((flat_lo < 0) & (flat_hi > 0)).reshape(n, pack.channels, 1, -1)
        # (n, channels, groups): whether the row would tighten an unstable one.
        needed = (unstable & pack.member[None, None]).any(3)
        point, channel, group = torch.nonzero(needed, as_tuple=True)
        lines = torch.full((4, *flat_lo.shape), torch.nan, dtype=self.dtype)
        widest = self._widest(pack.start)
        chunk = max(1, _BATCH_ENTRIES // (4 * widest))
        n_groups = pack.member.shape[0]
        for s in range(0, len(point), chunk):
            p, c, g = point[s : s + chunk], channel[s : s + chunk], group[s : s + chunk]
            lam = pack.rows[c * n_groups + g][:, None]
            lam = torch.cat([lam, -lam], 1)  # lower bounds of +-h
            taken = {j: _take(rel, p) for j, rel in relaxations.items()}
            segments = _Segments({j: lab[g] for j, lab in pack.labels.items()},
                                 pack.positions)  # fmt: skip
            value, slope = self._backward(
                lam, pack.start, taken, x[p], radius[p], first_centre[p],
                split=True, segments=segments,
            )  # fmt: skip
            # (rows, positions): the neurons of each row's channel and group.
            rows, pos = torch.nonzero(pack.member[g], as_tuple=True)
            neuron = c[rows] * pack.positions + pos
            off = pack.offset[neuron]
            lines[:, p[rows], neuron] = torch.stack([
                off + value[rows, 0, pos], slope[rows, 0, pos],
                off - value[rows, 1, pos], slope[rows, 1, pos],
            ])  # fmt: skip
        return lines

    def _after_previous(self, i):
        """The layer after the last non-linear layer before ``i`` (or 0)."""
        return max([j + 1 for j in self.nonlinear if j < i], default=0)

    def _widest(self, end):
        """Widest layer input before layer ``end``."""
        return max(math.prod(s) for s in self.in_shapes[: end + 1])

    def _rows_before(self, i):
        """The affine map from the previous non-linear layer to layer ``i``'s input.

        Returns ``(start, rows, offset)``: ``h_i = rows . h + offset`` with
        ``h`` the input of layer ``start`` (the output of the previous
        non-linear layer, or the network's input), ``rows`` of shape
        ``(width of h_i, *shape of h)``.
        """
        if i in self._rows_cache:
            return self._rows_cache[i]
        start = self._after_previous(i)
        shape = self.in_shapes[i]
        lam = torch.eye(math.prod(shape), dtype=self.dtype).reshape(1, -1, *shape)
        offset = torch.zeros(lam.shape[1], dtype=self.dtype)
        with torch.no_grad():
            for j in range(i - 1, start - 1, -1):
                offset = offset + (lam[0] * self.offsets[j]).flatten(1).sum(1)
                lam = self._transpose(j, lam)
        self._rows_cache[i] = start, lam[0], offset
        return self._rows_cache[i]

    def _differences(self, i, k, lo, hi, centre, relaxations, x, radius, first_centre):
        """Interval of the differences ``a - b`` of the pairs sorted by layer ``i``.

        From the interval ``[lo, hi]`` of the layer's inputs, ``[lo_a - hi_b,
        hi_a - lo_b]``, intersected with the exact interval (first non-linear
        layer, from the norms of the rows' differences) or with the bounds of
        a backward pass where it is affordable.
        """
        pair = self.pairs[i]
        d_lo, d_hi = pair.difference_bounds(lo, hi)
        mid = pair.differences(centre)
        if k == 0:
            ball = _ball(mid, radius, self.first_pair_norms)
            d_lo, d_hi = _intersect((d_lo, d_hi), ball)
            return d_lo, torch.maximum(d_hi, d_lo)
        if i in self.spreads:
            d_lo, d_hi = _intersect((d_lo, d_hi), _ball(mid, radius, self.spreads[i]))
        if self._backward_cost(i) <= _BACKWARD_ENTRIES:
            rows = pair.difference_rows(self.dtype)
            args = (rows, i, relaxations, x, radius, first_centre)
            shape = d_lo.shape
            back = (
                self._backward(*args).reshape(shape),
                self._backward(*args, lower=False).reshape(shape),
            )
            d_lo, d_hi = _intersect((d_lo, d_hi), back)
        return d_lo, torch.maximum(d_hi, d_lo)  # rounding only

    def _interval(self, intervals, relaxations, end, n):
        """Interval of the input of layer ``end`` from the previous bounds."""
        prev = max(j for j in intervals if j < end)
        lo, hi = intervals[prev]
        layer = self.layers[prev]
        if prev in self.pools:
            lo, hi = self.pools[prev].output_bounds(lo, hi)
            lo = lo.reshape(n, *self.out_shapes[prev])
            hi = hi.reshape(n, *self.out_shapes[prev])
        elif prev in self.pairs:
            lo, hi = self.pairs[prev].output_bounds(lo, hi)
        else:  # monotone activations
            with torch.no_grad():
                lo, hi = layer(lo), layer(hi)
            if isinstance(layer, nn.Softplus):  # torch's threshold: a tiny jump
                jump = math.exp(-float(layer.threshold)) / float(layer.beta)
                lo, hi = lo - jump, hi + jump
        for i in range(prev + 1, end):
            mid, rad = 0.5 * (lo + hi), 0.5 * (hi - lo)
            mid = self._forward(i, mid)
            rad = abs_forward(self.layers[i], rad) * (1.0 + ROUNDING_SLACK)
            lo, hi = mid - rad, mid + rad
        return lo, hi

    def gradient_norm_bounds(self, intervals, spec, pairs=None):
        """Bounds of ``||grad (spec . f)(x')||_2`` over the balls of ``intervals``.

        The local Lipschitz constant of each margin, with every neuron's
        slope confined to the range of the activation's derivative on its
        interval (fixed for the neurons that are stable on the ball): the
        Jacobian ``W_L D_{L-1} ... D_1 W_1`` is carried back as an interval
        vector, the deep form of Hein & Andriushchenko's Proposition 2.2
        (Fast-Lip, Weng et al. 2018). None for networks with max pooling.

        Parameters
        ----------
        intervals : dict
            ``(lo, hi)`` of every non-linear layer's inputs (from
            :meth:`bounds`).
        spec : torch.Tensor of shape (n, m, n_outputs)
            The rows ``e_c - e_j``.
        pairs : dict, default=None
            Per pair-sorting layer, its relaxation (from :meth:`bounds`),
            which holds the interval of the pairs' differences.

        Returns
        -------
        norms : torch.Tensor of shape (n, m) or None
            Upper bounds of the gradient norms on the balls.
        """
        if self.pools:
            return None
        lo = hi = spec
        for i in range(len(self.layers) - 1, -1, -1):
            if i in self.pairs:
                fitted = pairs[i]
                lo, hi = self.pairs[i].jacobian_bounds(lo, hi, fitted.lo, fitted.hi)
            elif self._is_nonlinear(i):
                low, high = intervals[i]
                s_lo, s_hi = (
                    torch.as_tensor(v, dtype=self.dtype)[:, None]
                    for v in derivative_range(self.layers[i], low.numpy(), high.numpy())
                )  # both >= 0
                lo, hi = (
                    torch.minimum(lo * s_lo, lo * s_hi),
                    torch.maximum(hi * s_lo, hi * s_hi),
                )
            else:
                mid = self._transpose(i, 0.5 * (lo + hi))
                rad = self._abs_transpose(i, 0.5 * (hi - lo)) * (1.0 + ROUNDING_SLACK)
                lo, hi = mid - rad, mid + rad
        worst = torch.maximum(lo.abs(), hi.abs()).flatten(2)
        return worst.norm(dim=2) * (1.0 + ROUNDING_SLACK)

    def margin_bounds(self, x, radius, reference):
        """Lower bounds of ``f_c - f_j`` over the balls, ``c`` the reference class.

        Parameters
        ----------
        x : torch.Tensor of shape (n, *input_shape)
            Centres, float64.
        radius : torch.Tensor of shape (n,)
            Radii.
        reference : torch.Tensor of shape (n,)
            The class ``c`` of each row (long).

        Returns
        -------
        lower : torch.Tensor of shape (n, n_classes)
            Sound lower bounds; ``+inf`` in the column of ``c``.
        """
        return self.certificates(x, radius, reference)[0]

    def certificates(self, x, radius, reference, *, gaps=None, tol=0.0):
        """Margin lower bounds and local Lipschitz bounds from one propagation.

        See :meth:`margin_lines`, of which this is the value at ``radius``.
        """
        value, slope, lipschitz = self.margin_lines(
            x, radius, reference, gaps=gaps, tol=tol
        )
        return value - radius[:, None] * slope, lipschitz

    def margin_lines(self, x, radius, reference, *, gaps=None, tol=0.0, memo=None):
        """Margin lower bounds, as lines in the radius, and local Lipschitz bounds.

        The relaxations are fitted on the intervals over the balls of
        ``radius``, which contain the intervals over every smaller ball: the
        bound ``value - r slope`` they give holds for every ``r <= radius``,
        and so does the Lipschitz bound.

        Parameters
        ----------
        x : torch.Tensor of shape (n, *input_shape)
            Centres, float64.
        radius : torch.Tensor of shape (n,)
            Radii.
        reference : torch.Tensor of shape (n,)
            The class ``c`` of each row (long).
        gaps : ndarray of shape (n, n_classes), default=None
            ``f_c(x) - f_j(x)``. When given, the Lipschitz bounds are only
            computed for the rows whose margin bounds do not exceed ``tol``
            (NaN elsewhere).
        tol : float or ndarray of shape (n,), default=0.0
            See ``gaps``.

        Returns
        -------
        value, slope : torch.Tensor of shape (n, n_classes)
            ``f_c - f_j >= value - r slope`` on the ball of radius ``r`` for
            every ``r`` up to ``radius`` (``value = +inf`` at ``c``).
        lipschitz : torch.Tensor of shape (n, n_classes) or None
            Upper bounds of ``||grad (f_c - f_j)||`` over the balls (0 at
            ``c``; see :meth:`gradient_norm_bounds`); None with max pooling.
        """
        with torch.no_grad():
            relaxations, intervals, first_centre = self.bounds(x, radius, memo)
            k = self.out_shapes[-1][0]
            eye = torch.eye(k, dtype=self.dtype)
            spec = eye[reference][:, None, :] - eye
            value, slope = self._backward(
                spec, len(self.layers), relaxations, x, radius, first_centre, split=True
            )
            value = value.scatter(1, reference[:, None], torch.inf)
            lower = value - radius[:, None] * slope
            rows = torch.arange(len(x))
            if gaps is not None:
                rows = torch.nonzero(
                    lower.amin(1) <= torch.as_tensor(tol, dtype=self.dtype)
                )[:, 0]
            lipschitz = None
            if not self.pools:
                lipschitz = torch.full_like(lower, torch.nan)
                if len(rows):
                    part = {
                        i: (lo[rows], hi[rows]) for i, (lo, hi) in intervals.items()
                    }
                    pairs = {i: relaxations[i].take(rows) for i in self.pairs}
                    lipschitz[rows] = self.gradient_norm_bounds(part, spec[rows], pairs)
        return value, slope, lipschitz

    def radius(self, X, *, lower=None, n_steps=BISECTION_STEPS):
        """Largest l2 radius at which the bounds prove the decision constant.

        Parameters
        ----------
        X : ndarray of shape (n_samples, ...)
            Points to certify, float64.
        lower : ndarray of shape (n_samples,), default=None
            Radii already certified by other means: the search starts there
            and never returns less.
        n_steps : int, default=BISECTION_STEPS
            At most this many bisection steps, each stopping once the radius
            is known to a relative precision of 0.5%.

        Returns
        -------
        radius : ndarray of shape (n_samples,)
            Radii at which every margin's lower bound was positive (or
            ``lower``).
        """
        # A copy: torch would wrap a read-only X without one, and warn.
        X = torch.from_numpy(np.array(X, dtype=np.float64))
        X = X.reshape(len(X), *self.input_shape)
        with eval_mode(self.module):
            logits = self.module(X)
        reference = logits.argmax(1)
        gaps = (logits.gather(1, reference[:, None]) - logits).numpy()
        gaps[np.arange(len(X)), reference.numpy()] = np.inf
        gap = gaps.min(axis=1)
        tol = (1e-9 * (1.0 + logits.abs().amax(1))).numpy()
        lower = (
            np.zeros(len(X)) if lower is None else np.asarray(lower, dtype=np.float64)
        )
        rows = self.rows_per_call()

        memo = _LineMemo(len(X))

        def proven(R, idx):
            # The radius each check proves: every bound is a line in r that
            # holds up to R, and so is Hein & Andriushchenko's Theorem 2.1 with
            # the local Lipschitz bound L_j on the ball: g_j(x) > r L_j.
            rho = np.zeros(len(idx))
            for s in range(0, len(idx), rows):
                part, r = idx[s : s + rows], R[s : s + rows]
                memo.rows = torch.as_tensor(part)
                value, slope, lip = self.margin_lines(
                    X[part],
                    torch.as_tensor(r),
                    reference[part],
                    gaps=gaps[part],
                    tol=tol[part],
                    memo=memo,
                )
                rad = _line_radius(value.numpy() - tol[part, None], slope.numpy())
                if lip is not None:
                    L = lip.numpy() * (1.0 + ROUNDING_SLACK)
                    by_lip = _line_radius(gaps[part] - tol[part, None], L)
                    rad = np.fmax(rad, by_lip)  # NaN where not computed
                rho[s : s + rows] = rad.min(axis=1)
            return rho

        # The upper end: what a check at radius 0 would say, the distance to
        # the linearised margins (steers the search; every radius returned is
        # one a check proved). Rows with a known radius are checked there
        # first: where bound propagation cannot beat it, one check ends the
        # row.
        guess = _linearised_radius(self.module, X)
        upper = np.where(gap > 0, np.maximum(guess, lower), 0.0)
        radius = proved_radius_search(
            proven,
            upper,
            lower=lower,
            n_steps=n_steps,
            rtol=_RTOL,
        )
        return np.maximum(radius * (1.0 - ROUNDING_SLACK), lower)


def bound_propagation_radius(
    module, X, input_shape, *, lower=None, n_steps=BISECTION_STEPS
):
    """Largest l2 radius at which bound propagation proves the decision constant.

    Parameters
    ----------
    module : torch.nn.Module
        The network, float64 and in eval mode.
    X : ndarray of shape (n_samples, ...)
        Points to certify, float64.
    input_shape : tuple of int
        Shape of one sample.
    lower : ndarray of shape (n_samples,), default=None
        Radii already certified by other means: the search starts there and
        never returns less.
    n_steps : int, default=BISECTION_STEPS
        At most this many bisection steps.

    Returns
    -------
    radius : ndarray of shape (n_samples,)
        Radii at which every margin's lower bound was positive (or ``lower``).
    """
    engine = BoundPropagation(module, input_shape)
    return engine.radius(X, lower=lower, n_steps=n_steps)


class _Packing:
    """Packed backward rows of one layer (see :meth:`BoundPropagation._packing`)."""

    def __init__(self, start, rows, offset, labels, member, channels, positions):
        self.start, self.rows, self.offset = start, rows, offset
        self.labels, self.member = labels, member
        self.channels, self.positions = channels, positions

    def row_norms(self, j):
        """``||A_k||_2`` of every neuron's row, from the packed rows on layer
        ``j``'s output (the previous non-linear layer); (channels * positions,).
        """
        groups = self.member.shape[0]
        labels = self.labels[j].repeat(self.channels, 1)  # row c * G + g
        squares = _Segments({j: labels}, self.positions).reduce(
            self.rows[:, None] ** 2, j
        )
        squares = squares[:, 0].reshape(self.channels, groups, self.positions)
        norms = (squares * self.member).sum(1)  # each position in one group
        return norms.sqrt().reshape(-1)


class _Segments:
    """Sums per packed function: ``labels[j]`` maps each entry of layer ``j``
    (``-1``: the input) to its function, ``size`` for none."""

    def __init__(self, labels, size):
        self.labels, self.size = labels, size

    def reduce(self, t, j):
        """``t`` (n, m, *shape of layer j) -> (n, m, size): the sum per function."""
        n, m = t.shape[:2]
        flat = t.expand(n, m, *t.shape[2:]).flatten(2)
        index = self.labels[j][:, None, :].expand(n, m, flat.shape[2])
        out = flat.new_zeros((n, m, self.size + 1))
        return out.scatter_add_(2, index, flat)[:, :, : self.size]


class _LineMemo:
    """The lines of the intermediate bounds of some points, kept between calls.

    For rows ``rows`` (indices into the points of the whole search) of each
    call. Lines computed for the ball of radius ``R`` hold for every smaller
    ball; they are reused for radii in ``[reuse * R, R]``, below which
    bounds computed afresh are much tighter (:data:`_REUSE`).
    """

    def __init__(self, n_points):
        self.n_points = n_points
        self.rows = None
        self.radius, self.lines = {}, {}

    def get(self, i, radius, reuse):
        """Stored lines of layer ``i`` for the current rows, and where they hold."""
        if i not in self.lines:
            return None, torch.zeros(len(radius), dtype=torch.bool)
        fit = self.radius[i][self.rows]
        ok = (radius <= fit) & (radius >= reuse * fit)
        return self.lines[i][:, self.rows].clone(), ok

    def put(self, i, which, radius, lines):
        """Store fresh lines for the current rows where ``which``."""
        if i not in self.lines:
            shape = (4, self.n_points, lines.shape[2])
            self.lines[i] = torch.full(shape, torch.nan, dtype=lines.dtype)
            self.radius[i] = torch.zeros(self.n_points, dtype=lines.dtype)
        rows = self.rows[which]
        self.lines[i][:, rows] = lines
        self.radius[i][rows] = radius[which]


def _apply_lines(lo, hi, lines, radius):
    """Intersect ``[lo, hi]`` with the lines' bounds at ``radius`` (NaN: none)."""
    n = lo.shape[0]
    r = radius[:, None]
    lo_v, lo_s, hi_v, hi_s = lines
    flat_lo, flat_hi = lo.reshape(n, -1), hi.reshape(n, -1)
    new_lo = torch.fmax(flat_lo, lo_v - r * lo_s)
    new_hi = torch.fmin(flat_hi, hi_v + r * hi_s)
    new_hi = torch.maximum(new_hi, new_lo)  # rounding only
    return new_lo.reshape(lo.shape), new_hi.reshape(hi.shape)


def _take(relaxation, rows):
    """A relaxation (lines, or an object with ``take``) for some rows only."""
    if isinstance(relaxation, tuple):
        return tuple(t[rows] for t in relaxation)
    return relaxation.take(rows)


def _line_radius(value, slope):
    """Largest ``r >= 0`` with ``value - r slope > 0`` (just below it), per entry.

    ``inf`` where the line never reaches 0, ``0`` where it starts at or below
    0; NaN stays NaN.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(slope > 0, value / slope, np.where(value > 0, np.inf, 0.0))
    r = np.where(value > 0, r * (1.0 - 1e-12), np.where(np.isnan(value), np.nan, 0.0))
    return np.where(np.isnan(slope), np.nan, r)


def _ball(centre, radius, spread):
    """``centre -+ r spread``, ``r`` the radius of each row (first dimension)."""
    scaled = radius.reshape(-1, *([1] * (centre.ndim - 1))) * spread
    return centre - scaled, centre + scaled


def _intersect(a, b):
    """The intersection of two intervals ``(lo, hi)``."""
    return torch.maximum(a[0], b[0]), torch.minimum(a[1], b[1])


def _linearised_radius(module, X):
    """The distance to the linearised margins, :func:`first_order_margin`.

    What a propagation at radius 0 proves (an estimate, not a certificate);
    ``inf`` where every gradient vanishes (a constant network).
    """
    with torch.enable_grad():
        x = X.clone().requires_grad_(True)
        out = module(x)
        grads = [
            torch.autograd.grad(out[:, j].sum(), x, retain_graph=True)[0].flatten(1)
            for j in range(out.shape[1])
        ]
    jacobian = torch.stack(grads, 1).numpy()
    return first_order_margin(out.detach().numpy(), jacobian)
