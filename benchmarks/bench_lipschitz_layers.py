"""Training step time of the 1-Lipschitz image layers against a plain convolution.

What is measured, in one process on the same random inputs (batch 64 by
default, MNIST-sized: 1 x 28 x 28, then 32 x 14 x 14 after a 2x2 pixel
unshuffle and MaxMin, as in :class:`~sk_margin.nets.LipschitzCNN`): the time
of one training step of the layer alone, its forward pass then the backward
pass of a fixed random upstream gradient to its parameters and its input (no
optimizer update), of

* a plain ``nn.Conv2d`` (3 x 3, zero "same" padding): the baseline, ratio 1;
* the same convolution with :func:`~sk_margin.nets.aol_rescale` (its kernel
  rescaled to operator norm at most 1 at every step, from its
  autocorrelation);
* the peer's ``SpectralConv2d`` (deel-torchlip, an optional extra: ``pip
  install -e ".[peers]"`` after the pinned torch), of the same shape;
* and, beside the first shape, :class:`~sk_margin.nets.MaxMin` over channel
  pairs, ``nn.PixelUnshuffle(2)`` and l2-norm pooling (``nn.LPPool2d(2,
  2)``), with the peer's ``GroupSort2``, ``InvertibleDownSampling`` and
  ``ScaledL2NormPool2d`` where it is installed.

Each time is the best of ``--repeat`` runs of ``--steps`` steps, the layers
taken round-robin so that a load spike hits them alike. One torch thread by
default (``--threads``), as the other benchmarks: on a shared 2-core machine
default threading made small steps 7-45x slower at random.

Run::

    python benchmarks/bench_lipschitz_layers.py [--batch-size 64] [--threads 1]
"""

import argparse
import os

import pandas as pd
import torch
from _timing import best_time
from torch import nn

from sk_margin.nets import MaxMin, aol_rescale


def _peer():
    try:
        from deel import torchlip
    except ImportError:
        print(
            "deel-torchlip is not installed: the peer's rows are skipped. "
            'Install it after the pinned torch: pip install -e ".[peers]".'
        )
        return None
    return torchlip


def _layers(c_in, c_out, torchlip, with_others):
    conv = dict(kernel_size=3, padding=1)
    layers = {
        "nn.Conv2d (baseline)": nn.Conv2d(c_in, c_out, **conv),
        "aol_rescale(nn.Conv2d)": aol_rescale(nn.Conv2d(c_in, c_out, **conv)),
    }
    if torchlip is not None:
        layers["deel-torchlip SpectralConv2d"] = torchlip.SpectralConv2d(
            c_in, c_out, **conv
        )
    if with_others:
        layers["MaxMin (channel pairs)"] = MaxMin()
        layers["nn.PixelUnshuffle(2)"] = nn.PixelUnshuffle(2)
        layers["nn.LPPool2d(2, 2)"] = nn.LPPool2d(2, 2)
        if torchlip is not None:
            layers["deel-torchlip GroupSort2"] = torchlip.GroupSort2()
            layers["deel-torchlip InvertibleDownSampling(2)"] = (
                torchlip.InvertibleDownSampling(2)
            )
            layers["deel-torchlip ScaledL2NormPool2d(2)"] = torchlip.ScaledL2NormPool2d(
                2
            )
    return layers


def _step(layer, x):
    """One training step of the layer alone: forward, and backward of a fixed
    random upstream gradient to its parameters and its input."""
    layer.train()
    with torch.no_grad():
        upstream = torch.randn_like(layer(x))

    def run():
        for p in layer.parameters():
            p.grad = None
        x.grad = None
        layer(x).backward(upstream)

    return run


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch threads: {torch.get_num_threads()}, load average: "
        f"{os.getloadavg()[0]:.2f}, batch size {args.batch_size}"
    )
    torchlip = _peer()
    torch.manual_seed(0)
    rows = []
    for c_in, c_out, side in ((1, 32, 28), (32, 64, 14)):
        x = torch.randn(args.batch_size, c_in, side, side, requires_grad=True)
        x_out = torch.randn(args.batch_size, c_out, side, side, requires_grad=True)
        layers = _layers(c_in, c_out, torchlip, with_others=c_in == 1)
        inputs = {
            name: x if "Conv" in name or "conv" in name else x_out for name in layers
        }
        best = dict.fromkeys(layers, float("inf"))
        for _ in range(args.repeat):
            for name, layer in layers.items():
                step = _step(layer, inputs[name])
                step()  # warm-up (and the peer's first power iterations)
                t, _ = best_time(step, args.steps)
                best[name] = min(best[name], t)
        base = best["nn.Conv2d (baseline)"]
        for name, t in best.items():
            shape = (
                f"{c_in}->{c_out} x {side}x{side}"
                if inputs[name] is x
                else f"{c_out} x {side}x{side}"
            )
            rows.append(
                {
                    "layer": name,
                    "input": shape,
                    "ms per step": 1e3 * t,
                    "x plain conv": t / base,
                }
            )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


if __name__ == "__main__":
    main()
