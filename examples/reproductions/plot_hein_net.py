"""
Hein & Andriushchenko: the neural-network experiments
=====================================================

One hidden layer of 1024 softplus units (alpha = 10) trained without
regularisation, with weight decay, with dropout and with the Cross-Lipschitz
regulariser (Hein & Andriushchenko 2017, Section 5): test error, the mean norm
of the box-constrained adversarial samples of their Section 4 (an upper bound
of the distance to the decision boundary), the mean guarantee of Theorem 2.1
with the local bound of Proposition 2.2 (a lower bound), and the ratio of the
guarantee with the global cross-Lipschitz constant to the local one (their
Table 1), on MNIST-5k. Each regularisation parameter is chosen, among four, on
a validation split of the training digits. The plot shows the mean bounds
against the test error (as their Fig. 2) and both bounds for every certified
test digit: every point lies below the diagonal.

The same from the command line: ``sk-margin reproduce hein-net``.
"""

# %%
from sk_margin.reproduce import reproduce

result = reproduce("hein-net")
print(result)

# %%
# The table, our figures beside the paper's (full MNIST; Fig. 2 gives most of
# them only as plots, Table 1 the ratio of the guarantees):
result.table

# %%
result.figure
