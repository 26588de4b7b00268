"""Numba parallel kernels that keep working after ``fork()``.

A process that has run numba parallel regions on its OpenMP threading layer (the default where GNU
OpenMP is present, as with torch's CPU wheels) cannot run another one in a forked child: GNU OpenMP is
not fork-safe, and numba terminates the child ("fork() called from a process already using GNU
OpenMP"). DataLoader workers are forked children, and sphsal's kernels (spherical convolution, ground
truth densities, metrics) run in both the training process and its workers. So every parallel kernel
is made by :func:`parallel_kernel`, which also compiles a serial twin (``prange`` as ``range``) and uses
it in such children; elsewhere the parallel kernel runs. The twin is compiled on its first call only.

Imported by the kernel modules only, so that importing sphsal does not import numba.
"""

from __future__ import annotations

import functools
import os
import types

import numba

__all__ = ["parallel_kernel", "forked_from_openmp"]

_forked_from_openmp = False


def _after_fork_in_child() -> None:
    global _forked_from_openmp
    try:
        _forked_from_openmp = _forked_from_openmp or numba.threading_layer() == "omp"
    except ValueError:  # no parallel region has run in the parent
        pass


os.register_at_fork(after_in_child=_after_fork_in_child)


def forked_from_openmp() -> bool:
    """Whether this process was forked from one that ran numba's OpenMP threads."""
    return _forked_from_openmp


def _renamed(func, suffix: str):
    """A copy of ``func`` named ``<name><suffix>``: numba's on-disk cache is keyed by the function's
    name, and the serial twin must not load the parallel kernel's cached machine code."""
    twin = types.FunctionType(func.__code__, func.__globals__, func.__name__ + suffix, func.__defaults__,
                              func.__closure__)
    twin.__qualname__ = func.__qualname__ + suffix
    twin.__doc__ = func.__doc__
    return twin


def parallel_kernel(**options):
    """``numba.njit(parallel=True, **options)`` with a serial twin for forked children (see the module
    docstring). The result is called like the kernel; ``.parallel`` and ``.serial`` are the two."""

    def wrap(func):
        parallel = numba.njit(parallel=True, **options)(func)
        serial = numba.njit(parallel=False, **options)(_renamed(func, "_serial"))

        @functools.wraps(func)
        def kernel(*args):
            return (serial if _forked_from_openmp else parallel)(*args)

        kernel.parallel, kernel.serial = parallel, serial
        return kernel

    return wrap
