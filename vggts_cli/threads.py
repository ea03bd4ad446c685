"""One thread for a native library's small kernels.

torch, scikit-learn's OpenMP and numpy's BLAS each bring a thread pool; on a small machine a pool that
spins on a matrix of a few thousand rows costs far more than it computes (and starves the other pools).
"""

from __future__ import annotations

import functools
from contextlib import AbstractContextManager

from threadpoolctl import ThreadpoolController


@functools.cache
def _controller() -> ThreadpoolController:
    return ThreadpoolController()  # inspects the loaded libraries once (~40 ms)


def single_threaded(user_api: str) -> AbstractContextManager:
    """A context in which the thread pools of `user_api` ("openmp" or "blas") run one thread."""
    return _controller().limit(limits=1, user_api=user_api)
