"""Checkpoints written atomically (write, fsync, rename) and read back to resume.

A checkpoint is a numpy ``.npz`` archive (a zip file) holding every persistent buffer and a
``__meta__`` record of the training position; anything else — an empty file, random bytes,
an archive of pickled objects — is refused as not a trainplan checkpoint.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np

from trainplan.planner.errors import TrainplanError, UnreadableFile
from trainplan.planner.fileio import atomic_write_bytes, read_bytes_file

_ZIP_MAGIC = b"PK\x03\x04"
_META = {"iterations", "step_count", "rng", "model"}  # what train.py writes


class CheckpointError(TrainplanError):
    """A checkpoint that cannot be written or read, or does not match the model."""


def save_checkpoint(path: str, state: dict[str, np.ndarray], meta: dict) -> None:
    """Write every persistent buffer and the training position; the old file stays intact
    until the new one is complete on disk."""
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
             **{f"t{i}": v for i, v in enumerate(state.values())},
             __names__=np.array(list(state), dtype=object).astype(str))
    atomic_write_bytes(path, buffer.getvalue(), "checkpoint")


def load_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict]:
    """(state, meta) of a checkpoint written by save_checkpoint; CheckpointError says why
    another file is not one."""
    try:
        data = read_bytes_file(path, "checkpoint")
    except UnreadableFile as exc:
        raise CheckpointError(f"{exc}; to start afresh, drop --resume") from None
    not_ours = (f"{path!r} is not a trainplan checkpoint (written by `trainplan train "
                "--checkpoint`); give the right file, or drop --resume to start afresh")
    if not data.startswith(_ZIP_MAGIC):
        raise CheckpointError(not_ours)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if "__meta__" not in archive.files or "__names__" not in archive.files:
                raise CheckpointError(not_ours)
            names = [str(n) for n in archive["__names__"]]
            state = {n: archive[f"t{i}"] for i, n in enumerate(names)}
            meta = json.loads(bytes(archive["__meta__"]).decode())
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, UnicodeDecodeError):
        raise CheckpointError(f"{not_ours} (it is damaged or of another kind)") from None
    if not isinstance(meta, dict) or not _META <= set(meta):
        raise CheckpointError(not_ours)
    return state, meta
