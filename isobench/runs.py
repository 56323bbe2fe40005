"""One run at a time, and nothing of a run left once it is gone.

The run lock. A run that executes jobs (not a dry run, nor ``--unlock``) holds an ``flock`` on
``results/.isobench-run.lock`` (and, with ``gpu.lock_dir``, on one in that folder, shared by every project of the
machine) from its start to its end; the kernel releases it however the run ends. A second run refuses with one
line naming the holder, and ``snakemake --unlock``, which only clears Snakemake's own lock, does not change that.

The run's life. The run names itself to its jobs (``ISOBENCH_RUN``: host, PID and start time of the main
Snakemake process). A job on the same host watches that process (a pidfd) and exits when it is gone, Ctrl-C or
``kill -9``: its sandboxes die with it (isobench/measure/sandbox.py), so no test outlives the run.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import select
import socket
import threading
import time
from pathlib import Path

from .errors import IsobenchError

log = logging.getLogger(__name__)

RUN_ENV = "ISOBENCH_RUN"
LOCK_NAME = ".isobench-run.lock"
_held: list[int] = []  # the lock files this process holds, open until it exits


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (with the PID, it names one process), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _holder_line(path: Path) -> str:
    try:
        h = json.loads(path.read_text() or "{}")
    except (OSError, json.JSONDecodeError):
        h = {}
    since = dt.datetime.fromtimestamp(h["since"]).strftime("%Y-%m-%d %H:%M") if h.get("since") else "?"
    return f"pid {h.get('pid', '?')} on {h.get('host', '?')}, started {since}, in {h.get('cwd', '?')}"


def busy(folder: Path) -> str | None:
    """Who holds ``folder``'s run lock now (one line), or None: free, or never taken."""
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    except BlockingIOError:
        return _holder_line(path)
    finally:
        os.close(fd)


def _open_lock(path: Path) -> tuple[int, bool]:
    """The lock file open (created readable and writable by all: a lock_dir shared by users), and whether this
    process may write who holds it."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
    except PermissionError:  # another user's lock file: flock works on a read-only descriptor too
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC), False
    try:
        os.fchmod(fd, 0o666)
    except OSError:
        pass
    return fd, True


def hold(folders: list[Path]) -> None:
    """Take the run lock in each folder for the life of this process; IsobenchError (one line) when another
    live run holds one."""
    me = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(), "cwd": os.getcwd()}
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / LOCK_NAME
        fd, writable = _open_lock(path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise IsobenchError(
                f"{path}: another isobench run is measuring ({_holder_line(path)}); one run measures at a "
                "time, and snakemake --unlock does not change that: wait for it to end, or stop it"
            ) from None
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(me).encode())
        _held.append(fd)
    os.environ[RUN_ENV] = f"{socket.gethostname()}:{os.getpid()}:{start_time(os.getpid())}"


def _run_of(value: str) -> tuple[int, str] | None:
    """(PID, start time) of the run named by ``ISOBENCH_RUN`` when it runs on this host, else None."""
    parts = value.rsplit(":", 2)
    if len(parts) != 3 or parts[0] != socket.gethostname() or not parts[1].isdigit():
        return None
    return int(parts[1]), parts[2]


def _wait_for_end(pid: int, start: str) -> None:
    """Return once the process is gone (a pidfd where the kernel has them; else a look every second)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        fd = None
    if fd is not None and start_time(pid) == start:
        select.select([fd], [], [])
        return
    while start_time(pid) == start:
        time.sleep(1.0)


def watch_run(environ=None, on_end=None) -> threading.Thread | None:
    """In a job: exit when the run that started it is gone (``on_end()`` instead, for tests). None when the
    job was not started by a run on this host (a cluster job, a step run by hand)."""
    environ = os.environ if environ is None else environ
    run = _run_of(environ.get(RUN_ENV, ""))
    if run is None:
        return None

    def end() -> None:
        _wait_for_end(*run)
        if on_end is not None:
            on_end()
            return
        log.error("isobench: the run (pid %d) is gone: this job stops, and its tests with it", run[0])
        logging.shutdown()
        os._exit(143)

    thread = threading.Thread(target=end, daemon=True, name="isobench-run-watch")
    thread.start()
    return thread
