"""A real Dask cluster on this machine for the sweep tests: a scheduler and two workers, all
listening on 127.0.0.1 at ports the system chose, started and stopped by the tests."""

from __future__ import annotations

import pytest

from trainplan.experiments.local_dask import LocalDask, start_local_dask, stop_local_dask


@pytest.fixture
def start_dask():
    """Start a scheduler and two workers on 127.0.0.1 (``start_dask(tmp_dir)``); every cluster
    started is stopped after the test."""
    started: list[LocalDask] = []

    def start(tmp) -> LocalDask:
        started.append(start_local_dask(str(tmp)))
        return started[-1]
    yield start
    for cluster in started:
        stop_local_dask(cluster)


@pytest.fixture(scope="session")
def local_dask(tmp_path_factory):
    """One scheduler and two workers on 127.0.0.1 shared by the tests that do not kill
    them."""
    cluster = start_local_dask(str(tmp_path_factory.mktemp("dask")))
    yield cluster
    stop_local_dask(cluster)
