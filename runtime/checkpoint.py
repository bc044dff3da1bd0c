"""Checkpoints written atomically (write, fsync, rename) and read back to resume."""

from __future__ import annotations

import io
import json

import numpy as np

from trainplan.planner.errors import TrainplanError
from trainplan.planner.fileio import atomic_write_bytes


class CheckpointError(TrainplanError):
    """A checkpoint that cannot be written or does not match the model."""


def save_checkpoint(path: str, state: dict[str, np.ndarray], meta: dict) -> None:
    """Write every persistent buffer and the training position; the old file stays intact
    until the new one is complete on disk."""
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             **{f"t{i}": v for i, v in enumerate(state.values())},
             __names__=np.array(list(state), dtype=object).astype(str))
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise CheckpointError(f"cannot write checkpoint {path}: {exc}") from exc


def load_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """(state, meta) of a checkpoint written by save_checkpoint."""
    try:
        with np.load(path, allow_pickle=False) as data:
            names = [str(n) for n in data["__names__"]]
            state = {n: data[f"t{i}"] for i, n in enumerate(names)}
            meta = json.loads(bytes(data["__meta__"]).decode())
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from exc
    return state, meta
