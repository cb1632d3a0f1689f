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
    """Radii that later, sound bounds may only raise.

    A net's "auto" certificate (bound propagation joined it), and the kernel
    model's "auto" and "second_order" certificates and the radii computed
    from them (the global RKHS bounds joined them).
    """
    return (
        key.startswith("net_")
        and key.endswith("_certify_auto")
        or (key.startswith("trained_") and key.endswith("_certify"))
        or (key.startswith("kernel_") and key.endswith(("_auto", "_second_order")))
        or key == "pipeline_radii"
    )


@pytest.mark.parametrize("key", sorted(np.load(reference_outputs.PATH).files))
def test_output_is_unchanged(key, outputs, recorded):
    got, expected = outputs[key], recorded[key]
    assert got.shape == expected.shape
    if _is_auto_radius(key):
        # Since bound propagation joined "auto", a net's radii may grow, but
        # never fall below those recorded before it.
        assert np.all(got >= expected * (1.0 - 1e-9))
    elif key == "detector_certified_scores":
        # p-values of certified margins, which grew with the radii (above);
        # recorded again when the RKHS bounds joined the kernel certificates.
        assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
    elif expected.dtype.kind in "fc":
        # Trained float32 networks are compared a little more loosely.
        rtol = 1e-5 if key.startswith("trained_") else 1e-9
        assert_allclose(got, expected, rtol=rtol, atol=1e-12)
    else:
        assert_array_equal(got, expected)
