"""
Matyasko & Chau: deep margin maximisation
=========================================

A fully connected ReLU network trained with the multiclass hinge loss plus
Matyasko & Chau's penalty on the largest input-gradient difference ``C
max_j ||grad f_y - grad f_j||_q`` (``q = 2``: "l2", ``q = 1``: "l1" margin
maximisation), against a cross-entropy baseline and the hinge loss alone, on
MNIST-5k: the test error and the average relative robustness ``rho_adv``, the
mean of ``||r(x)|| / ||x||`` over DeepFool's perturbations ``r(x)``. ``C`` is
chosen by the error on held-out training digits. The plot shows the
distribution of the relative DeepFool distances per model, and the validation
error behind the choice of ``C``.

The same from the command line: ``sk-margin reproduce matyasko-chau``.
"""

# %%
from sk_margin.reproduce import reproduce

result = reproduce("matyasko-chau")
print(result)

# %%
# The table, our figures beside the paper's (full MNIST, 784-1000-1000-1000-10):
result.table

# %%
result.figure
