"""The library limits only SciPy's own BLAS pools, only inside its hot loops."""

import numpy as np
import pytest
import scipy
from threadpoolctl import ThreadpoolController

from sk_margin._threads import _package_dirs, limit_scipy_blas


def _pools():
    blas = [
        lib for lib in ThreadpoolController().lib_controllers if lib.user_api == "blas"
    ]
    return {lib.filepath: lib.num_threads for lib in blas}


@pytest.fixture
def two_threads():
    """Every BLAS pool at two threads for the test (then as it was)."""
    with ThreadpoolController().limit(limits=2, user_api="blas"):
        yield


def test_scipy_pools_are_limited_inside_and_restored_after(two_threads):
    before = _pools()
    assert set(before.values()) == {2}
    numpy_libs = {p for p in before if p.startswith(_package_dirs(np))}
    with pytest.raises(RuntimeError, match="inside"):
        with limit_scipy_blas():
            inside = _pools()
            raise RuntimeError("inside")  # restored on errors too
    assert _pools() == before
    for path, n in inside.items():
        if path.startswith(_package_dirs(scipy)) and path not in numpy_libs:
            assert n == 1, path
        else:
            assert n == before[path], path  # NumPy's pool and shared ones


def test_a_fit_leaves_the_thread_pools_as_it_found_them(two_threads):
    from sk_margin import MarginKernelLogReg

    before = _pools()
    rng = np.random.default_rng(0)
    X, y = rng.random((60, 3)), rng.integers(0, 2, 60)
    MarginKernelLogReg(n_centers=20, random_state=0).fit(X, y)
    assert _pools() == before


def test_limit_threads_sets_every_pool_and_torch_and_restores_them(two_threads):
    import torch

    from sk_margin._threads import limit_threads

    original = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        before_pools = _pools()
        with limit_threads(1):
            assert set(_pools().values()) == {1}
            assert torch.get_num_threads() == 1
        assert _pools() == before_pools and torch.get_num_threads() == 2
        with limit_threads(None):
            assert _pools() == before_pools
    finally:
        torch.set_num_threads(original)
