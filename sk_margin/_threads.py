"""Thread pools around the library's own hot loops.

SciPy's L-BFGS-B makes many tiny BLAS calls between the objective's large
matrix products. With wheels of NumPy and SciPy, each has its own OpenBLAS,
with one thread pool per library; the threads of one pool spin after each
call while the other pool needs the same cores. Measured on a 2-core machine
(10,000 rows, 1,000 centres), a kernel fit took 14.3 s with both pools at two
threads, 4.8 s with both at one, and 4.2 s with NumPy's at two and SciPy's at
one. :func:`limit_scipy_blas` gives the last for the duration of a block and
restores the pools after it, so no setting changes behind the user's back.
"""

import contextlib
import os
import sys

import numpy as np
import scipy
from threadpoolctl import ThreadpoolController

__all__ = ["limit_scipy_blas", "limit_threads"]


def _package_dirs(module):
    # A wheel's bundled libraries live in the package or in "<package>.libs".
    root = os.path.dirname(os.path.abspath(module.__file__))
    return (root + os.sep, root + ".libs" + os.sep)


@contextlib.contextmanager
def limit_scipy_blas():
    """Run a block with SciPy's own BLAS pools (not NumPy's) at one thread.

    Pools that NumPy and SciPy share (one BLAS for both, as in conda or a
    system OpenBLAS) are left alone: there is then no second pool to contend
    with. Restores every pool's setting on exit.
    """
    controller = ThreadpoolController()
    blas = [lib for lib in controller.lib_controllers if lib.user_api == "blas"]
    numpy_libs = {
        lib.filepath for lib in blas if lib.filepath.startswith(_package_dirs(np))
    }
    scipy_only = [
        lib
        for lib in blas
        if lib.filepath.startswith(_package_dirs(scipy))
        and lib.filepath not in numpy_libs
    ]
    before = [lib.num_threads for lib in scipy_only]
    try:
        for lib in scipy_only:
            lib.set_num_threads(1)
        yield
    finally:
        for lib, n in zip(scipy_only, before, strict=True):
            lib.set_num_threads(n)


@contextlib.contextmanager
def limit_threads(n_threads):
    """Run a block with every thread pool at ``n_threads`` threads, then restore.

    The BLAS and OpenMP pools through threadpoolctl, and torch's intra-op
    pool when torch is loaded (this module never loads it). None leaves
    everything as it is.
    """
    if n_threads is None:
        yield
        return
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        with ThreadpoolController().limit(limits=n_threads):
            if torch is not None:
                torch.set_num_threads(n_threads)
            yield
    finally:
        if torch is not None:
            torch.set_num_threads(before)
