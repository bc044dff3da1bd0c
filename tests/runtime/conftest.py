"""Fixtures for runtime tests."""

import pytest


@pytest.fixture
def one_blas_thread():
    """BLAS on one thread, when threadpoolctl is there: on a busy machine OpenBLAS's threads
    spin waiting for each other and a millisecond product can take a second."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
