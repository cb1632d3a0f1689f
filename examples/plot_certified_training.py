"""
Training for the certificate: Lipschitz-by-construction networks
================================================================

A certified radius is only as large as the bound behind it allows. Here three
networks of the same size are trained on scikit-learn's ``load_digits`` and
certified by :meth:`~sk_margin.MarginNetClassifier.certify`:

* a plain MLP with cross-entropy (the baseline);
* a plain MLP with LC-LMT, which penalises an estimate of the network's
  Lipschitz constant while it trains;
* a :class:`~sk_margin.nets.LipschitzMLP` (orthogonal layers, MaxMin
  activations: 1-Lipschitz by construction) trained with
  ``criterion="certified_margin"``, the cross-entropy of the certified
  pairwise radii themselves;

and, when deel-torchlip is installed (``pip install "sk_margin[peers]"``), the
peer library's own 1-Lipschitz network with its HKR loss, certified by the
same engine. ``benchmarks/bench_certified_accuracy.py`` runs the same
comparison on MNIST.
"""

# %%
# Data and networks
# -----------------
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from sk_margin import CertifiedAccuracyDisplay, MarginNetClassifier
from sk_margin.nets import LipschitzMLP, certify_network

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.3, stratify=y, random_state=0
)
common = {"max_epochs": 40, "lr": 3e-3, "batch_size": 64, "random_state": 0}
models = {
    "MLP, cross-entropy": MarginNetClassifier(module__hidden_sizes=(64, 64), **common),
    "MLP, LC-LMT eps=0.3": MarginNetClassifier(
        module__hidden_sizes=(64, 64),
        criterion="lc_lmt",
        criterion__eps=0.3,
        **common,
    ),
    "LipschitzMLP, certified_margin": MarginNetClassifier(
        module=LipschitzMLP,
        module__hidden_sizes=(64, 64),
        criterion="certified_margin",
        criterion__margin=1.0,
        **common,
    ),
}
results = {}
for name, net in models.items():
    net.fit(X_train, y_train)
    results[name] = (net.predict(X_test), net.certify(X_test))
    print(f"{name:32s} test accuracy {net.score(X_test, y_test):.3f}")

# %%
# The peer, if installed
# ----------------------
# deel-torchlip's own network, certified by our engine as it is: its
# ``SpectralLinear`` layers are bounded by their exact spectral norms, its
# ``GroupSort2`` layers are recognised as sorts of pairs.
try:
    from deel import torchlip
except ImportError:
    torchlip = None
    print("deel-torchlip is not installed: the peer is left out.")

if torchlip is not None:
    torch.manual_seed(0)
    peer = torchlip.Sequential(
        torch.nn.Flatten(),
        torchlip.SpectralLinear(64, 64),
        torchlip.GroupSort2(),
        torchlip.SpectralLinear(64, 64),
        torchlip.GroupSort2(),
        torchlip.FrobeniusLinear(64, 10),
    )
    loss_fn = torchlip.HKRMulticlassLoss(alpha=10.0, min_margin=0.3)
    opt = torch.optim.Adam(peer.parameters(), lr=3e-3)
    Xt, yt = torch.as_tensor(X_train), torch.as_tensor(y_train)
    target = torch.nn.functional.one_hot(yt, 10).float()
    for _ in range(40):
        for batch in torch.randperm(len(Xt)).split(64):
            opt.zero_grad()
            loss_fn(peer(Xt[batch]), target[batch]).backward()
            opt.step()
    module = peer.double().eval()
    Xe = X_test.astype(np.float64)
    with torch.no_grad():
        pred = module(torch.from_numpy(Xe)).argmax(1).numpy()
    results["deel-torchlip, HKR"] = (pred, certify_network(module, Xe, (64,)))

# %%
# Certified accuracy against the radius
# -------------------------------------
fig, ax = plt.subplots(figsize=(6, 4))
eps = np.linspace(0, 1.5, 61)
for name, (pred, radii) in results.items():
    CertifiedAccuracyDisplay.from_predictions(
        y_test, pred, radii, eps=eps, name=name, ax=ax
    )
ax.set_title("Certified accuracy on load_digits (l2)")
fig.tight_layout()
output = Path("example_output")
output.mkdir(exist_ok=True)
fig.savefig(output / "certified_training.png", dpi=100)
for name, (pred, radii) in results.items():
    print(f"{name:32s} mean certified radius of correct points "
          f"{radii[pred == y_test].mean():.3f}")  # fmt: skip
