"""One lockstep round: a fresh harness process per revision, their timed calls alternated.

Shared and cloud machines change speed within seconds (other tenants, turbo states), which
a round-by-round interleaving cannot cancel: two adjacent rounds can run at different speeds.
Here each revision's process imports, sets up and warms up (base first, so its reference
exists before head and main check theirs), then the driver asks each for one timed call in turn, in an
order that changes every call (``call_order``: no revision always goes first or always follows the same one),
so calls of different revisions compared with each other are milliseconds apart.
Only one process computes at a time.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
from pathlib import Path

from ..jsonio import load_json
from .process import Run
from .state import crash, failed, timed_out

# How a measure job's timed rounds run (measure.interleave, and each timing file's ``interleave``): ``lockstep``
# (this module: the processes of a round live together, their timed calls alternated) or ``sequential`` (one
# revision's process at a time: base, head, main, base, ...). ``calls`` and ``rounds`` are the names they had
# before; config files and timing files that use them are still read.
LOCKSTEP, SEQUENTIAL = "lockstep", "sequential"
OLD_NAMES = {"calls": LOCKSTEP, "rounds": SEQUENTIAL}


def interleave_name(value: str | None) -> str | None:
    """The interleave's name today (an old name read as the new one)."""
    return OLD_NAMES.get(value, value)


def old_name(value: str | None) -> str | None:
    """The name the measurement cache's keys were made with (so no key changes with the new words)."""
    return {new: old for old, new in OLD_NAMES.items()}.get(value, value)


def paired(*timings: dict | None) -> bool:
    """Whether timing files were taken in lockstep, so that their samples pair call by call: the one rule for a
    paired comparison (the dataset's records, the evaluation's metrics)."""
    return bool(timings) and all(interleave_name((t or {}).get("interleave")) == LOCKSTEP for t in timings)


# The same core for every process of a round, so that calls compared with each other also share a core
# (vCPUs of a shared machine differ in speed). None where affinity cannot be set.
PIN_CPU = min(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


class _Proc:
    def __init__(self, name: str, start, workdir: Path):
        """``start()`` launches the sandboxed harness (stdin and stdout piped, pinned to PIN_CPU)."""
        self.name, self.workdir, self.out = name, workdir, workdir / "report.json"
        if self.out.exists():
            self.out.unlink()
        self.run: Run = start()
        self.popen = self.run.popen
        self.samples: list[float] = []
        self.outcome: str | None = None  # None while running; "ok", "failed", "timeout" or "crash" at the end

    def readline(self, deadline: float) -> str | None:
        """The next reply, '' at end of file, None when the deadline passes first."""
        line = b""
        while not line.endswith(b"\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self.popen.stdout], [], [], remaining)[0]:
                return None
            chunk = self.popen.stdout.read(1)
            if not chunk:
                return line.decode(errors="replace")
            line += chunk
        return line.decode(errors="replace").strip()

    def send(self, text: str) -> bool:
        try:
            self.popen.stdin.write(text.encode())
            return True
        except (BrokenPipeError, OSError):
            return False

    def kill(self) -> None:
        self.run.kill()

    def finish(self, outcome: str, deadline: float) -> None:
        if outcome in ("timeout", "crash"):
            self.kill()
        try:
            self.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            self.popen.wait()
            outcome = "timeout" if outcome == "ok" else outcome
        self.run.close()
        self.outcome = outcome


def _expect_ready(p: _Proc, deadline: float) -> bool:
    reply = p.readline(deadline)
    if reply == "ready":
        return True
    p.finish("timeout" if reply is None else "failed", deadline)
    return False


def _report(p: _Proc, timeout_s: float) -> dict:
    if p.outcome == "timeout":
        report = timed_out(timeout_s)
    elif p.out.exists():
        report = load_json(p.out)
    else:
        report = crash(p.run.exit_code())
    if report.get("status") == "ok" and report.get("samples_ms") != p.samples:
        report = failed("harness_error", "lockstep replies and report disagree")
    for key, default in (
        ("samples_ms", []),
        ("env", None),
        ("timer", None),
        ("equivalent", None),
        ("traceback", None),
    ):
        report.setdefault(key, default)
    return report


def call_order(items: list, i: int) -> list:
    """The order of timed call ``i``, from a Williams design (a balanced Latin square; its mirror too for an
    odd count): over a cycle every revision goes first as often, and runs right after each other one as often,
    so a carry-over effect (caches and branch predictors just warmed by the same code) hits all alike. With
    three revisions: base, head, main; head, main, base; main, base, head; then the same reversed. Turning the
    order alone left a candidate identical to head always right after head, and up to 10 % faster than head
    on this project's VM."""
    n = len(items)
    if not n:
        return []
    first = [0]
    for k in range(1, n):  # 0, 1, n-1, 2, n-2, ...
        first.append((k + 1) // 2 if k % 2 else n - k // 2)
    row = i % (n if n % 2 == 0 else 2 * n)
    order = [items[(x + row) % n] for x in first]
    return order[::-1] if row >= n else order


def lockstep_round(procs: list[tuple[str, object, Path]], repeat: int, timeout_s: float) -> tuple[dict, dict]:
    """Run one round; ``procs`` holds (revision, start function, workdir), base first.

    Returns ({revision: harness report}, {revision: its sandboxed run})."""
    started = time.monotonic()
    deadline = started + timeout_s
    first = _Proc(*procs[0])
    running = [first] if _expect_ready(first, deadline) else []
    rest = [_Proc(*spec) for spec in procs[1:]]  # base's reference exists now: the others start together
    for p in rest:
        if _expect_ready(p, deadline):
            running.append(p)
        elif p.outcome == "timeout":
            deadline = time.monotonic() + timeout_s
    for i in range(repeat):
        for p in call_order(running, i):
            reply = p.readline(deadline) if p.send("go\n") else ""
            try:
                p.samples.append(float(reply))
            except (TypeError, ValueError):
                running.remove(p)
                p.finish("timeout" if reply is None else "failed", deadline)
                if reply is None:  # the others waited on it: they get a full limit of their own again
                    deadline = time.monotonic() + timeout_s
    for p in running:
        p.send("end\n")
        reply = p.readline(deadline)
        p.finish("ok" if reply == "done" else "timeout" if reply is None else "crash", deadline)
    wall = round(time.monotonic() - started, 3)
    reports = {}
    for p in [first, *rest]:
        report = _report(p, timeout_s)
        report["wall_s"] = wall
        reports[p.name] = report
    return reports, {p.name: p.run for p in [first, *rest]}
