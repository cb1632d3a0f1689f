"""The layout change left every number of the public API as it was.

``tests/data/reference_outputs.npz`` was written by
:mod:`tests.reference_outputs` before the modules moved and merged; the same
computation must give the same radii, predictions, losses, bounds, attacks
and p-values now (see that module for when to regenerate the file), except
the radii of a network's ``"auto"`` certificate, which bound propagation may
only raise.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tests import reference_outputs


@pytest.fixture(scope="module")
def outputs():
    return reference_outputs.compute()


@pytest.fixture(scope="module")
def recorded():
    with np.load(reference_outputs.PATH) as data:
        return {k: data[k] for k in data.files}


def test_the_same_outputs_are_computed(outputs, recorded):
    assert sorted(outputs) == sorted(recorded)


def _is_auto_radius(key):
    """The radii of a net's "auto" certificate, which may only grow."""
    return (
        key.startswith("net_")
        and key.endswith("_certify_auto")
        or (key.startswith("trained_") and key.endswith("_certify"))
    )


@pytest.mark.parametrize("key", sorted(np.load(reference_outputs.PATH).files))
def test_output_is_unchanged(key, outputs, recorded):
    got, expected = outputs[key], recorded[key]
    assert got.shape == expected.shape
    if _is_auto_radius(key):
        # Since bound propagation joined "auto", a net's radii may grow, but
        # never fall below those recorded before it.
        assert np.all(got >= expected * (1.0 - 1e-9))
    elif expected.dtype.kind in "fc":
        # Trained float32 networks are compared a little more loosely.
        rtol = 1e-5 if key.startswith("trained_") else 1e-9
        assert_allclose(got, expected, rtol=rtol, atol=1e-12)
    else:
        assert_array_equal(got, expected)
