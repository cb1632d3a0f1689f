"""
Hein & Andriushchenko: the kernel table
=======================================

Gaussian-kernel logistic regression without regularisation, with the RKHS norm
and with the Cross-Lipschitz regulariser (Hein & Andriushchenko 2017, Section
5): test error, the mean norm of the box-constrained adversarial samples of
their Section 4 (an upper bound of the distance to the decision boundary) and
the mean certified radius (a lower bound), on MNIST-5k. The plot shows both
bounds for every attacked test digit: every point lies below the diagonal.

The same from the command line: ``sk-margin reproduce hein-kernel``.
"""

# %%
from sk_margin.reproduce import reproduce

result = reproduce("hein-kernel")
print(result)

# %%
# The table, our figures beside the paper's (full MNIST):
result.table

# %%
result.figure
