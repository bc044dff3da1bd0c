"""Fixtures for planner tests: NNTrainer's measured MNIST requests (tests/planner/data/)."""

from __future__ import annotations

import csv
import os

import pytest

from trainplan.planner.allocation import AllocationProblem, Buffer

DATA = os.path.join(os.path.dirname(__file__), "data")


def _load_nntrainer_table(filename: str) -> tuple[AllocationProblem, dict[str, int]]:
    """A MiniMalloc solution CSV plus ``kind``: the problem in token order, NNTrainer's offsets."""
    with open(os.path.join(DATA, filename), newline="") as fh:
        rows = sorted(csv.DictReader(fh), key=lambda r: int(r["token"]))
    buffers = tuple(
        Buffer(r["id"], int(r["lower"]), int(r["upper"]), int(r["size"]), kind=r["kind"])
        for r in rows
    )
    return AllocationProblem(buffers, name=filename), {r["id"]: int(r["offset"]) for r in rows}


@pytest.fixture
def mnist_optimized() -> tuple[AllocationProblem, dict[str, int]]:
    """The 19 tensor-pool requests with memory_optimization=true and OptimizedV1's offsets."""
    return _load_nntrainer_table("nntrainer_mnist_v1.csv")


@pytest.fixture
def mnist_basic() -> tuple[AllocationProblem, dict[str, int]]:
    """The 27 tensor-pool requests with memory_optimization=false and BasicPlanner's offsets."""
    return _load_nntrainer_table("nntrainer_mnist_basic.csv")
