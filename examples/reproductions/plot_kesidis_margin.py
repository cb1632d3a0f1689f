"""
Kesidis, Miller & Xiang: margin training, transferred FGSM and margin p-values
==============================================================================

A network trained with the margin loss of Kesidis, Miller & Xiang (eq. 9,
``max_{i != c} f_i(x) + mu - f_c(x)``, with the re-weighting loop of their
Section III) at their two margins ``mu = 50`` and ``mu = 150``, against the
same network trained with cross-entropy, on MNIST-5k: clean test accuracy and
accuracy on FGSM digits crafted on the cross-entropy network and transferred
to the others (their Table I), the ROC AUC of the margin p-value detector of
their Section V (clean test digits against FGSM digits) beside the maximum
softmax probability, and the four margin histograms of their Figs. 1 and 2:
training, held-out, test and FGSM digits.

The same from the command line: ``sk-margin reproduce kesidis-margin``.
"""

# %%
from sk_margin.reproduce import reproduce

result = reproduce("kesidis-margin")
print(result)

# %%
# The table, our figures beside the paper's (CIFAR-10, ResNet-18):
result.table

# %%
result.figure
