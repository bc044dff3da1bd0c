"""Files in and out: atomic writes (a reader sees the old or the new content, never half of
it), reads and writes that name what is wrong with a path instead of failing with a traceback,
and the removal of what a killed process left behind.

A temporary file is named ``.tmp-<pid>-<file name>.<random>`` beside the file it becomes, so
the next run can tell one whose writer died (``remove_stale_temporaries``) from one another
process is still writing.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile

from trainplan.planner.errors import UnreadableFile, UnwritableFile

MAX_TEXT_BYTES = 256 * 2**20  # a model, plan or problem file larger than this is a mistake
FIGURE_SUFFIXES = (".png", ".svg", ".pdf")  # figures create their directory (plots.py)


def clip(value: object, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters with the full length said: a message never
    echoes a 50 MB value."""
    text = repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(str(value)):,} characters)"


def read_bytes_file(path: str, what: str = "file", max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``; UnreadableFile says whether it is missing, a directory,
    unreadable, empty or too large."""
    if not os.path.exists(path):
        raise UnreadableFile(f"{what} {path!r} does not exist; check the path")
    if os.path.isdir(path):
        raise UnreadableFile(f"{what} {path!r} is a directory; give a file inside it")
    try:
        size = os.path.getsize(path)
        if max_bytes is not None and size > max_bytes:
            raise UnreadableFile(f"{what} {path!r} has {size:,} bytes, more than the "
                                 f"{max_bytes:,} a {what} can have; is it the right file?")
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise UnreadableFile(f"cannot read {what} {path!r}: {exc.strerror}") from None
    if not data.strip():
        raise UnreadableFile(f"{what} {path!r} is empty")
    return data


def read_text_file(path: str, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """The UTF-8 text of ``path`` (a byte-order mark dropped); UnreadableFile says whether it
    is missing, a directory, unreadable, empty, too large, binary or not UTF-8."""
    data = read_bytes_file(path, what, max_bytes)
    if b"\0" in data:
        raise UnreadableFile(f"{what} {path!r} is binary, not text; is it the right file?")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFile(f"{what} {path!r} is not UTF-8 text (byte {exc.start}); save it "
                             "as UTF-8") from None


# --- writing ------------------------------------------------------------------------------

def check_writable(path: str, what: str = "file", *, create_directory: bool = False) -> None:
    """Raise UnwritableFile, naming the path and the fix, when ``path`` cannot be written:
    it is a directory, or its directory is missing (unless ``create_directory``), a file, or
    not writable. Checked before work starts, so no result is lost at the end."""
    if os.path.isdir(path):
        raise UnwritableFile(f"{what} {path!r} is a directory; give a file name inside it")
    directory = os.path.dirname(os.path.abspath(path))
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if existing != directory and not create_directory:
        raise UnwritableFile(f"cannot write {what} {path!r}: directory {directory!r} does "
                             f"not exist; create it (mkdir -p {directory}) or choose another "
                             "path")
    if not os.path.isdir(existing):
        raise UnwritableFile(f"cannot write {what} {path!r}: {existing!r} is a file, not a "
                             "directory; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UnwritableFile(f"cannot write {what} {path!r}: directory {existing!r} is not "
                             "writable; choose a directory you can write to")


def check_output_directory(path: str, what: str = "directory") -> None:
    """Raise UnwritableFile unless ``path`` is a directory this process can write, or can be
    made (its nearest existing ancestor is a writable directory)."""
    if os.path.isdir(path):
        check_directory(path, what)
        return
    check_writable(os.path.join(path, "x"), what, create_directory=True)


def check_directory(path: str, what: str = "directory") -> None:
    """Raise UnwritableFile unless ``path`` is an existing directory this process can write."""
    if not os.path.exists(path):
        raise UnwritableFile(f"{what} {path!r} does not exist; create it (mkdir -p {path}) or "
                             "choose another")
    if not os.path.isdir(path):
        raise UnwritableFile(f"{what} {path!r} is a file, not a directory")
    if not os.access(path, os.W_OK | os.X_OK):
        raise UnwritableFile(f"{what} {path!r} is not writable; choose a directory you can "
                             "write to")


def explain_os_error(exc: OSError) -> str:
    """What an OSError means for the user and what to do about it, naming its file."""
    where = f" {exc.filename!r}" if exc.filename else ""
    fixes = {errno.ENOSPC: "free some space or choose another disk",
             errno.EDQUOT: "free some space or ask for a larger quota",
             errno.EACCES: "check the permissions, or choose a path you can use",
             errno.EPERM: "check the permissions, or choose a path you can use",
             errno.EROFS: "the file system is read-only; choose another path",
             errno.ENOENT: "check the path; create missing directories first",
             errno.ENOTDIR: "a part of the path is a file, not a directory",
             errno.EISDIR: "give a file name, not a directory",
             errno.EMFILE: "too many open files; close some or raise the limit (ulimit -n)"}
    fix = fixes.get(exc.errno, "check the path and the device")
    return f"{exc.strerror or exc}{where}: {fix}"


def atomic_write_bytes(path: str, data: bytes, what: str = "file") -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, and rename it over
    ``path``; the file gets the permissions a plain open() would give it (the umask applies).
    UnwritableFile names the path and the fix when it cannot be written."""
    directory = os.path.dirname(os.path.abspath(path))
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f"{_temporary_prefix(path)}.", dir=directory)
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _discard(tmp)
        check_writable(path, what)  # a missing or read-only directory, said plainly
        raise UnwritableFile(f"cannot write {what} {path!r}: {explain_os_error(exc)}") from None
    except BaseException:
        _discard(tmp)
        raise


def atomic_write_text(path: str, text: str, what: str = "file") -> None:
    """``atomic_write_bytes`` for text (UTF-8)."""
    atomic_write_bytes(path, text.encode(), what)


def _discard(tmp: str) -> None:
    if tmp and os.path.exists(tmp):
        os.unlink(tmp)


def _temporary_prefix(path: str, pid: int | None = None) -> str:
    return f".tmp-{os.getpid() if pid is None else pid}-{os.path.basename(path)}"


def _umask() -> int:
    """The process's umask, read without changing it where Linux allows (changing it, even
    for an instant, would let another thread create a file with no umask at all)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def write_json(path: str, data) -> None:
    """``data`` as indented JSON at ``path`` (its directory created), atomically."""
    import json

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


# --- what killed processes leave behind ---------------------------------------------------

def owner_stamp() -> str:
    """This process's id, as a leftover's owner stamp (``stamp_is_stale`` reads it)."""
    return str(os.getpid())


def stamp_is_stale(stamp: str, written_at: float) -> bool:
    """True when the process that wrote ``stamp`` at ``written_at`` (seconds since the epoch)
    no longer runs: no process has its id, or the one that has it started later (the id was
    reused)."""
    import psutil

    try:
        pid = int(stamp.strip())
        return psutil.Process(pid).create_time() > written_at + 1.0
    except ValueError:
        return False  # not a stamp of ours
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False  # exists but cannot be inspected: keep its files


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove the temporary files of ``path`` (``.tmp-<pid>-<name>.*`` beside it, this user's)
    whose writer no longer runs; return their paths."""
    directory = os.path.dirname(os.path.abspath(path))
    pattern = re.compile(r"\.tmp-(\d+)-" + re.escape(os.path.basename(path)) + r"\.[^/]+$")
    removed = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        match = pattern.match(name)
        full = os.path.join(directory, name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            info = os.lstat(full)
            if info.st_uid == os.getuid() and stamp_is_stale(match.group(1), info.st_mtime):
                os.unlink(full)
                removed.append(full)
        except OSError:
            continue
    return removed
