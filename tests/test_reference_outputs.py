"""The layout change left every number of the public API as it was.

``tests/data/reference_outputs.npz`` was written by
:mod:`tests.reference_outputs` before the modules moved and merged; the same
computation must give the same radii, predictions, losses, bounds, attacks
and p-values now (see that module for when to regenerate the file), except
the radii of a network's ``"auto"`` certificate, which bound propagation may
only raise.

The recording was made on one machine and is checked on any other: every
tolerance below is what the arithmetic behind that output explains there.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from tests import reference_outputs

# float64 formulas on recorded weights and coefficients (certificates,
# bounds, losses, attacks, p-values): other CPU kernels and BLAS sum in
# another order, which moves a result by a few float64 ulps per operation
# (1e-13 relative, measured); the iterative ones (bisection, power
# iteration, EM) may amplify that, not past 1e-9.
FLOAT64_RTOL = 1e-9
# Networks trained in float32 (rerun, not recorded): every one of the few
# Adam steps rounds each weight to float32 (eps = 1.19e-7), in an order
# that the CPU kernels choose, so the trained nets of two machines differ
# by a few float32 ulps: their outputs by up to 1.7e-7 of each array's
# largest entry across torch's default, AVX2 and AVX-512 kernels and one or
# two threads (measured). 64 ulps of that scale leaves a margin of 40.
FLOAT32_TRAINED_RTOL = 64 * float(np.finfo(np.float32).eps)
# The kernel fits (rerun): L-BFGS stops once its projected gradient is
# below tol=1e-4, and fits whose float32 products round differently stop at
# different points of that neighbourhood: 8e-5 of the largest coefficient
# and 5e-5 of the largest score apart between one and two BLAS threads and
# between machines (measured). Ten times the stopping tolerance.
KERNEL_FIT_RTOL = 10 * 1e-4


@pytest.fixture(scope="module")
def states():
    return reference_outputs.load_states()


@pytest.fixture(scope="module")
def computed(states):
    return reference_outputs.compute(states)


@pytest.fixture(scope="module")
def outputs(computed):
    return computed[0]


@pytest.fixture(scope="module")
def recorded():
    with np.load(reference_outputs.PATH) as data:
        return {k: data[k] for k in data.files}


def test_the_same_outputs_are_computed(outputs, recorded):
    assert sorted(outputs) == sorted(recorded)


def test_every_model_is_computed_from_its_recorded_state(computed, states):
    used = computed[1]
    assert sorted(used) == sorted(states)
    for key, value in states.items():
        assert_array_equal(used[key], value, err_msg=key)


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


def _is_kernel_fit(key):
    return key.startswith("kernel_") and key.endswith(("_dual_coef", "_decision"))


def _scale_tolerance(expected, rtol):
    """``rtol`` relative to each entry, and to the array's largest entry
    for entries near 0 (whose own relative error says nothing)."""
    return dict(rtol=rtol, atol=rtol * float(np.max(np.abs(expected), initial=0.0)))


@pytest.mark.parametrize("key", sorted(np.load(reference_outputs.PATH).files))
def test_output_is_unchanged(key, outputs, recorded):
    got, expected = outputs[key], recorded[key]
    assert got.shape == expected.shape
    trained = key.startswith("trained_")
    if _is_auto_radius(key):
        # Since bound propagation joined "auto", a net's radii may grow, but
        # never fall below those recorded before it (beyond rounding).
        rtol = FLOAT32_TRAINED_RTOL if trained else FLOAT64_RTOL
        slack = rtol * (expected + np.max(expected, initial=0.0))
        assert np.all(got >= expected - slack), np.min(got - expected)
    elif key == "detector_certified_scores":
        # p-values of certified margins, which grew with the radii (above);
        # recorded again when the RKHS bounds joined the kernel certificates.
        assert_allclose(got, expected, rtol=FLOAT64_RTOL, atol=1e-12)
    elif trained:
        assert_allclose(
            got, expected, **_scale_tolerance(expected, FLOAT32_TRAINED_RTOL)
        )
    elif _is_kernel_fit(key):
        assert_allclose(got, expected, **_scale_tolerance(expected, KERNEL_FIT_RTOL))
    elif expected.dtype.kind in "fc":
        assert_allclose(got, expected, rtol=FLOAT64_RTOL, atol=1e-12)
    else:
        # Labels and counts, exactly (the kernel refits' predictions too:
        # test_kernel_refit_predictions_are_compared_exactly_for_a_reason).
        assert_array_equal(got, expected)


@pytest.mark.parametrize("reg", ["cross_lipschitz", "rkhs"])
def test_kernel_refit_predictions_are_compared_exactly_for_a_reason(reg, recorded):
    # Within KERNEL_FIT_RTOL each score may move by that much of the largest
    # one; the top two of every recorded row are further apart than that.
    scores = recorded[f"kernel_{reg}_decision"]
    top_two = np.sort(scores, axis=1)[:, -2:]
    gap = top_two[:, 1] - top_two[:, 0]
    assert gap.min() > 2 * KERNEL_FIT_RTOL * np.abs(scores).max()
