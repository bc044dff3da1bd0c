"""Atomic file writes: a reader sees the old or the new content, never half of it."""

import os
import tempfile


def atomic_write_text(path: str, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a half-written one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
