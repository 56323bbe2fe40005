"""A process limit for one sandboxed run where RLIMIT_NPROC cannot give one: a run as the host's root.

The kernel never applies RLIMIT_NPROC to the host's root, not even inside a user namespace, so a fork bomb
started by a root run would fill the host's process table. Where the ``pids`` controller of a cgroup
hierarchy is there and writable (cgroup v1's ``/sys/fs/cgroup/pids``, or v2 where this process's own cgroup
already delegates ``pids`` to its children), the run's first process joins a cgroup of its own with
``pids.max`` set, before it executes anything (isobench/measure/sandbox.py starts it through ``sh -c 'echo $$ >
cgroup.procs && exec ...'``), and all it starts stays in it. For any other user the
launcher's RLIMIT_NPROC counts the sandbox's own processes (its user namespace) and this is not needed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

V1 = Path("/sys/fs/cgroup/pids")
V2 = Path("/sys/fs/cgroup")
FOLDER = "isobench"


def _parent() -> Path | None:
    """Where this process may make cgroups with a pids limit, or None."""
    if (V1 / "cgroup.procs").exists():
        return V1 / FOLDER if os.access(V1, os.W_OK) else None
    if not (V2 / "cgroup.controllers").exists():
        return None
    try:
        own = Path(
            Path("/proc/self/cgroup").read_text().strip().splitlines()[-1].split("::", 1)[1].lstrip("/")
        )
        here = V2 / own
        if "pids" in (here / "cgroup.subtree_control").read_text().split() and os.access(here, os.W_OK):
            return here
    except (OSError, IndexError):
        return None
    return None


def needed() -> bool:
    """Whether RLIMIT_NPROC is not enough: the host's root."""
    return os.geteuid() == 0


def gap() -> str | None:
    """Why a run's processes cannot be limited here (None: they can): root without a writable pids cgroup."""
    if not needed() or _parent() is not None:
        return None
    return (
        "the run is root and no pids cgroup can be made here (cgroup v2 without pids delegated to this "
        "process's cgroup): sandbox.max_processes is not enforced"
    )


def make(token: str, limit: int) -> Path | None:
    """A new cgroup for one run with ``pids.max`` = ``limit`` (None where none can be made)."""
    parent = _parent() if needed() else None
    if parent is None:
        return None
    _remove_stale(parent)
    group = parent / f"run-{token[:16]}"
    try:
        group.mkdir(parents=True, exist_ok=True)
        (group / "pids.max").write_text(str(limit))
    except OSError:
        remove(group)
        return None
    return group


def _remove_stale(parent: Path, age_s: float = 60.0) -> None:
    """Remove the empty cgroups of runs whose job was killed before it could (older than ``age_s``: a new one
    is joined within milliseconds of being made)."""
    try:
        stale = [g for g in parent.glob("run-*") if time.time() - g.stat().st_mtime > age_s]
    except OSError:
        return
    for group in stale:
        try:
            if not (group / "cgroup.procs").read_text().strip():
                group.rmdir()
        except OSError:
            continue


def remove(group: Path | None) -> None:
    """Remove the run's cgroup once it is empty (kill what is left first)."""
    if group is None:
        return
    try:
        for pid in (group / "cgroup.procs").read_text().split():
            try:
                os.kill(int(pid), 9)
            except (ProcessLookupError, PermissionError, ValueError):
                pass
    except OSError:
        pass
    for _ in range(50):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # busy: its last processes are still being reaped
            time.sleep(0.02)
