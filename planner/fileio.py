"""Files in and out: atomic writes (a reader sees the old or the new content, never half of
it) and text reads that name what is wrong with a file instead of failing with a traceback."""

import os
import tempfile

from trainplan.planner.errors import UnreadableFile

MAX_TEXT_BYTES = 256 * 2**20  # a model, plan or problem file larger than this is a mistake


def read_text_file(path: str, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped); UnreadableFile says whether it
    is missing, a directory, unreadable, empty, too large, binary or not UTF-8."""
    if not os.path.exists(path):
        raise UnreadableFile(f"{what} {path!r} does not exist; check the path")
    if os.path.isdir(path):
        raise UnreadableFile(f"{what} {path!r} is a directory; give a file inside it")
    try:
        size = os.path.getsize(path)
        if size > max_bytes:
            raise UnreadableFile(f"{what} {path!r} has {size:,} bytes, more than the "
                                 f"{max_bytes:,} a {what} can have; is it the right file?")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UnreadableFile(f"cannot read {what} {path!r}: {exc.strerror}") from None
    if not data.strip():
        raise UnreadableFile(f"{what} {path!r} is empty")
    if b"\0" in data:
        raise UnreadableFile(f"{what} {path!r} is binary, not text; is it the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{what} {path!r} is not UTF-8 text (byte {exc.start}); save it "
                             "as UTF-8") from None


def atomic_write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, and rename it over
    ``path``; the file gets the permissions a plain open() would give it."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str, text: str) -> None:
    """``atomic_write_bytes`` for text (UTF-8)."""
    atomic_write_bytes(path, text.encode())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: str, data) -> None:
    """``data`` as indented JSON at ``path`` (its directory created), atomically."""
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")
