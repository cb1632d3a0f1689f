"""Shared fixtures: tiny seeded data sets and a seeded random state."""

import numpy as np
import pytest
from sklearn.datasets import load_digits, make_blobs
from sklearn.model_selection import train_test_split


@pytest.fixture(autouse=True)
def _seed():
    """Seed the global generators so that every test is reproducible."""
    np.random.seed(0)  # noqa: NPY002 - code under test may use the global RNG
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def digits_split():
    """``load_digits`` scaled to [0, 1], a stratified 70/30 split."""
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    return train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)


@pytest.fixture(scope="session")
def blobs_2d():
    """Three well-separated 2-D blobs inside [0, 1]^2."""
    X, y = make_blobs(
        n_samples=90,
        centers=[[0.25, 0.25], [0.75, 0.3], [0.5, 0.75]],
        cluster_std=0.08,
        random_state=0,
    )
    return X, y
