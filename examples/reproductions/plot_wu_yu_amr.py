"""
Wu & Yu: minimum vs average margin, and the average-margin regulariser
======================================================================

Two experiments of Wu & Yu ("Understanding adversarial robustness: the
trade-off between minimum and average margin") on a one-hidden-layer ReLU
network: (a) the minimum and the average margin after every epoch of standard
training (their Fig. 2, and Fig. 6 for MNIST), where the minimum margin rises
while the average margin falls; (b) their Table 1: standard training, the
orthogonality penalty alone and the average-margin regulariser (AMR, eq. 15),
compared by clean accuracy, accuracy under l2 PGD at eps = 0.5 ... 2.0 and the
average margin, on MNIST-5k. The margins are input-space distances to the
decision boundary, estimated from below with the global cross-Lipschitz bound
of the network (and from above with DeepFool in the table).

The same from the command line: ``sk-margin reproduce wu-yu-amr``.
"""

# %%
from sk_margin.reproduce import reproduce

result = reproduce("wu-yu-amr")
print(result)

# %%
# The table, our figures beside the paper's (full MNIST, 784-1024-10):
result.table

# %%
# Left: the margins of standard training per epoch (the dotted line marks the
# epoch by which we have taken as many SGD steps as the paper's first epoch).
# Right: the average test margin of the three trainings (their Fig. 3).
result.figure
