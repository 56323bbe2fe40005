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
from . import containers, sandbox_exec


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
        protections: Callable[[dict, dict | None], dict],
        capture_stdout: bool = True,
    ):
        """``token``: carried by the run's processes (their sweep); ``container``: its facts (None: local);
        ``cap_bytes``: output kept per stream; ``protections(launcher's report, container)``: what was in
        force, from the sandbox that started it."""
        self.popen, self.workdir, self.token, self.container = popen, workdir, token, container
        self.cap_bytes, self.protections = cap_bytes, protections
        self.captures = [Capture(popen.stderr, workdir / "stderr.txt", cap_bytes)]
        if capture_stdout:  # else the caller reads it (lockstep's replies)
            self.captures.append(Capture(popen.stdout, workdir / "stdout.txt", cap_bytes))
        self.started = time.monotonic()
        self.returncode: int | None = None
        self.wall_s = 0.0
        self._outcome: SandboxOutcome | None = None

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
            containers.remove(self.container["engine"], self.container["name"])
        sandbox_exec.sweep(self.token)

    def close(self) -> None:
        """After the process ended: kill what it left, wait for the captures."""
        self.kill()
        for cap in self.captures:
            cap.join(timeout=30)

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
            if state.get("left_processes"):
                violation = (
                    f"the test left {state['left_processes']} process(es) running after it exited (killed)"
                )
            elif dropped:
                violation = (
                    f"the test printed {total / 1e6:.1f} MB, over the output cap of "
                    f"{self.cap_bytes / 2**20:g} MiB (output cut)"
                )
            self._outcome = SandboxOutcome(
                self.protections(state, self.container), violation, state.get("returncode")
            )
        return self._outcome
