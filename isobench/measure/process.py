"""One sandboxed process (``Run``): its output captured to files, killed with everything it started, and,
once it has ended, what the sandbox saw (``SandboxOutcome``: the protections in force, a broken rule, the
test's own exit status). ``isobench.measure.sandbox`` starts it; a round (``job``, ``lockstep``) reads it."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import IsobenchError
from ..jsonio import load_json
from . import cgroups, runners, sandbox_exec

DISK_POLL_S = 0.5  # how often the free space of the run's disk is looked at (one statvfs call)
DISK_BLAME = 64 << 20  # what a run must have taken of the disk to be stopped for it


class Capture(threading.Thread):
    """Copy a pipe to a file: the first half of the cap, then (at the end) the last half; count the rest."""

    def __init__(self, pipe, path: Path, cap: int):
        super().__init__(daemon=True)
        self.pipe, self.path, self.cap = pipe, path, cap
        self.total = 0
        self.start()

    def run(self) -> None:
        head_left, tail = self.cap // 2, bytearray()
        with open(self.path, "wb") as fh:
            for chunk in iter(lambda: self.pipe.read(65536), b""):
                self.total += len(chunk)
                if head_left > 0:
                    fh.write(chunk[:head_left])
                    chunk, head_left = chunk[head_left:], head_left - len(chunk[:head_left])
                tail += chunk
                if len(tail) > self.cap // 2:
                    del tail[: len(tail) - self.cap // 2]
            if self.total > self.cap:
                fh.write(f"\n[isobench: {self.total - self.cap} bytes of output dropped]\n".encode())
            fh.write(bytes(tail))

    @property
    def dropped(self) -> int:
        return max(0, self.total - self.cap)


@dataclass(frozen=True)
class SandboxOutcome:
    """What the sandbox saw of a run that has ended."""

    protections: dict  # what was in force (a timing file's ``sandbox``)
    violation: str | None  # a rule the run broke: processes left behind, output over the cap
    returncode: int | None  # the test's own exit status as the launcher saw it (None: it never reported)
    stopped: bool = False  # the sandbox killed the run for the rule it broke (whatever the test reported)


class Run:
    """One sandboxed process. ``returncode`` and ``wall_s`` are set by ``wait``: the launcher's exit status,
    None when the time limit killed it."""

    def __init__(
        self,
        popen: subprocess.Popen,
        workdir: Path,
        token: str,
        container: dict | None,
        cap_bytes: int,
        protections: Callable[[dict, dict | None, dict], dict],
        capture_stdout: bool = True,
        cgroup: Path | None = None,
        disk_floor: tuple[Path, int] | None = None,
        lifeline: int | None = None,
    ):
        """``token``: carried by the run's processes (their sweep); ``container``: its facts (None: local);
        ``cap_bytes``: output kept per stream; ``protections(launcher's report, container, this run's facts)``:
        what was in force, from the sandbox that started it; ``cgroup``: the run's pids cgroup (removed at the
        end); ``disk_floor``: (folder, bytes): the run is killed when the disk holding the folder has less
        free space than that (a test filling the disk)."""
        self.popen, self.workdir, self.token, self.container = popen, workdir, token, container
        self.cap_bytes, self.protections, self.cgroup = cap_bytes, protections, cgroup
        self.lifeline = lifeline  # the writer of the launcher's lifeline (closed once the run is over)
        self.captures = [Capture(popen.stderr, workdir / "stderr.txt", cap_bytes)]
        if capture_stdout:  # else the caller reads it (lockstep's replies)
            self.captures.append(Capture(popen.stdout, workdir / "stdout.txt", cap_bytes))
        self.started = time.monotonic()
        self.returncode: int | None = None
        self.wall_s = 0.0
        self._outcome: SandboxOutcome | None = None
        self.disk_full: str | None = None  # why the run was stopped for the disk
        self._ended = threading.Event()
        if disk_floor and disk_floor[1] > 0:
            threading.Thread(target=self._watch_disk, args=disk_floor, daemon=True).start()

    def _watch_disk(self, folder: Path, floor: int) -> None:
        """Kill the run when the disk holding ``folder`` falls below ``floor`` free bytes while the run has taken
        at least ``DISK_BLAME`` of it (a host already short of disk is not the test's doing)."""
        try:
            st = os.statvfs(folder)
            start = st.f_bavail * st.f_frsize
        except OSError:
            return
        while not self._ended.wait(DISK_POLL_S):
            try:
                st = os.statvfs(folder)
            except OSError:
                continue
            free = st.f_bavail * st.f_frsize
            if free < floor and start - free >= DISK_BLAME:
                self.disk_full = (
                    f"the test filled the disk: {free / 2**20:.0f} MB free, under the floor of "
                    f"{floor / 2**20:.0f} MB (sandbox.min_free_disk_mb), {(start - free) / 2**20:.0f} MB taken "
                    "since it started; stopped, the files of its round removed"
                )
                self.kill()
                return

    def wait(self, timeout_s: float) -> Run:
        """Wait for the end or the time limit (then kill it all); close."""
        try:
            self.returncode = self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            self.popen.wait()
            self.returncode = None
        self.close()
        self.wall_s = round(time.monotonic() - self.started, 3)
        return self

    def kill(self) -> None:
        """Kill the process group, the container (the engine's client may be gone, the container not) and any
        process still carrying the run's token (no PID namespace)."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.container:
            runners.remove(self.container["engine"], self.container["name"])
        sandbox_exec.sweep(self.token)

    def close(self) -> None:
        """After the process ended: kill what it left, wait for the captures, remove its cgroup."""
        self._ended.set()
        self.kill()
        for cap in self.captures:
            cap.join(timeout=30)
        cgroups.remove(self.cgroup)
        if self.lifeline is not None:
            os.close(self.lifeline)
            self.lifeline = None
        if self.disk_full:  # the rest of the job's folder goes with the job (the measure step removes it)
            remove_round(self.workdir)

    def exit_code(self) -> int:
        """The test process's own status (the launcher reports a signal as 128 + signal)."""
        inner = self.outcome().returncode
        code = self.returncode if self.returncode is not None else self.popen.returncode
        if inner is not None:
            return inner
        return 128 - code if code > 128 else code

    def outcome(self) -> SandboxOutcome:
        """What was in force, and any rule the run broke; read once."""
        if self._outcome is None:
            try:
                state = load_json(self.workdir / "sandbox.json")
            except IsobenchError:
                state = {}
            dropped = sum(c.dropped for c in self.captures)
            total = max([c.total for c in self.captures] or [0])
            violation = None
            if self.disk_full:
                violation = self.disk_full
            elif state.get("left_processes"):
                violation = (
                    f"the test left {state['left_processes']} process(es) running after it exited (killed)"
                )
            elif dropped:
                violation = (
                    f"the test printed {total / 1e6:.1f} MB, over the output cap of "
                    f"{self.cap_bytes / 2**20:g} MiB (output cut)"
                )
            facts = {"max_processes_by": "cgroup" if self.cgroup else None}
            self._outcome = SandboxOutcome(
                self.protections(state, self.container, facts),
                violation,
                state.get("returncode"),
                stopped=bool(self.disk_full),
            )
        return self._outcome


def remove_round(workdir: Path) -> None:
    """Remove what a run wrote in its round's folder (a disk filled by a test), but the captured output and the
    launcher's report."""
    kept = {workdir / name for name in ("stdout.txt", "stderr.txt", "sandbox.json")}
    for path in sorted(workdir.rglob("*"), reverse=True):
        try:
            if path in kept:
                continue
            if not path.is_dir() or path.is_symlink():
                path.unlink()
            elif not any(path.iterdir()):
                path.rmdir()
        except OSError:
            continue
