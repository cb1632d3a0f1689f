"""Adversarial examples: the box-constrained attack and attacks by name.

:func:`box_constrained_attack` is the attack of Hein & Andriushchenko (2017,
Section 4), built on :func:`minimal_box_perturbation`, the exact solution of
their linearised problem (8). :func:`generate_adversarial` runs it, or an
attack of the Adversarial Robustness Toolbox (an optional dependency), by
name on any fitted estimator or pipeline. Found points give *upper* bounds of
the distance to the decision boundary, to hold the certified radii against.
"""

from sk_margin.attacks._box import box_constrained_attack
from sk_margin.attacks._box_perturbation import minimal_box_perturbation
from sk_margin.attacks._library import (
    ATTACKS,
    BUDGET_ATTACKS,
    generate_adversarial,
    project_to_ball,
)

__all__ = [
    "ATTACKS",
    "BUDGET_ATTACKS",
    "box_constrained_attack",
    "generate_adversarial",
    "minimal_box_perturbation",
    "project_to_ball",
]
