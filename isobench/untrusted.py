"""Inputs are data. A commit id from any input (an extraction file's name or contents, a bundle's line, the
config's ``commits:``) becomes a safe key before it names a file or folder (``commit_key``), and an input file is
read boundedly (``read_input``: regular files only, up to a size limit), so that no field of an input chooses
where the workflow writes, what it removes, or how much it reads."""

from __future__ import annotations

import hashlib
import os
import re
import stat

from .errors import IsobenchError

MAX_EXTRACTION_BYTES = 64 << 20  # an extraction file, or one read of it
MAX_BUNDLE_BYTES = 256 << 20  # a JSON Lines bundle, read whole at planning
MAX_SCRIPT_BYTES = 16 << 20  # a pre-generated test script

_COMMIT_HASH = re.compile(r"^[0-9a-fA-F]{7,40}$")
# The Snakefile's wildcard constraint of {commit}, one path component, at most 64 characters.
_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def is_commit_hash(value) -> bool:
    """7 to 40 hex digits: what an extraction's ``commit_hash`` must be."""
    return isinstance(value, str) and _COMMIT_HASH.match(value) is not None


def commit_key(commit: str, prefix: str = "ref-") -> str:
    """The name of a commit's folder and files when git did not resolve it to a SHA: ``commit`` itself when it is
    one path component that fits the ``{commit}`` wildcard (``no-such-ref``, an unknown SHA), else
    ``ref-<its safe characters>-<8 hex digits of its sha256>`` (``-x`` gives ``ref-x-…``, ``../../a/b``
    ``ref-a_b-…``): never a path, and two different ids do not share one."""
    if _KEY.match(commit):
        return commit
    letters = re.sub(r"[^A-Za-z0-9._-]+", "_", commit).strip("._-")[:40]
    digest = hashlib.sha256(commit.encode("utf-8", "surrogatepass")).hexdigest()[:8]
    return f"{prefix}{letters}-{digest}" if letters else f"{prefix}{digest}"


def shown(value: str, limit: int = 200) -> str:
    """An id from an input as an error line shows it: itself when printable and short, else escaped and cut."""
    return value if value.isprintable() and len(value) <= limit else repr(value[:limit])


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a file")


def _check(path, st: os.stat_result, limit: int, what: str) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise IsobenchError(f"{path}: not a regular file ({_kind(st.st_mode)})")
    if st.st_size > limit:
        raise IsobenchError(f"{path}: {st.st_size} bytes, larger than the {limit >> 20} MiB {what} may have")


def read_input(
    path, limit: int = MAX_EXTRACTION_BYTES, what: str = "an extraction file", head: int | None = None
) -> bytes:
    """The bytes of the input file ``path`` (only its first ``head`` bytes with ``head``), or a one-line
    IsobenchError naming it. Only a regular file is opened: a directory, FIFO, device or socket is never read (a
    read that could block forever or never end); a file larger than ``limit`` is refused, not read."""
    try:
        _check(path, os.stat(path), limit, what)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise IsobenchError(f"{path}: unreadable ({exc.strerror})") from None
    chunks, want = [], limit + 1 if head is None else min(head, limit + 1)
    try:
        _check(path, os.fstat(fd), limit, what)  # the same file as looked at, not one put there meanwhile
        while want > 0:
            chunk = os.read(fd, min(want, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            want -= len(chunk)
    except OSError as exc:
        raise IsobenchError(f"{path}: unreadable ({exc.strerror})") from None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > limit:  # it grew while read
        raise IsobenchError(f"{path}: larger than the {limit >> 20} MiB {what} may have")
    return data
