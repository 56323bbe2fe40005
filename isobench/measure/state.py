"""What a round reports and what a job knows of each revision.

A round's report is the worker's JSON (isobench/measure/harness.py) or one built here for a round that
failed before it could write one (``failed``); ``RevisionState`` folds a revision's reports, round by round,
into what its timing file will say. Round 0 is the check round (base stores the reference, head and main
check theirs against it); round 1 is base's self-check (``SELF_CHECK_ROUND``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .contracts import MAX_ERROR_LINES

CHECK_ROUND = 0  # base stores the reference result, head and main check theirs against it
SELF_CHECK_ROUND = 1  # base's first timed round also checks base's result against base's own reference


def round_mode(name: str, k: int) -> str:
    """Round 0: base stores the reference, head and main check against it. Round 1: base checks itself (a test
    whose result differs run to run is nondeterministic, never blamed on head). Later rounds only time."""
    if k == CHECK_ROUND:
        return "reference" if name == "base" else "eqcheck"
    return "eqcheck" if (name == "base" and k == SELF_CHECK_ROUND) else "time"


def failed(category: str, error: str, **extra) -> dict:
    """The report of a round that failed without a report of its own (timeout, crash, sandbox, ...)."""
    return {
        "status": "failed",
        "category": category,
        "error": error,
        "samples_ms": [],
        "env": None,
        "timer": None,
        "equivalent": None,
        "traceback": None,
        **extra,
    }


def crash(code: int) -> dict:
    """The report of a worker that ended without writing one (``code``: its own exit status, < 0 a signal)."""
    if code < 0:
        return failed("crash", f"the harness was killed by signal {-code} and wrote no report")
    return failed("crash", f"the harness exited with code {code} and wrote no report")


def timed_out(timeout_s: float) -> dict:
    return failed("timeout", f"round killed after {timeout_s:g} s")


@dataclass
class RevisionState:
    """What a job has learned of one revision so far, round by round."""

    rounds: list[list[float]] = field(default_factory=list)  # the samples of each round (ms)
    events: list[list[float]] = field(default_factory=list)  # CUDA event times beside them (GPU tests)
    first_calls: list[float] = field(default_factory=list)  # each round's first (untimed) call, ms
    failed: dict | None = None  # the report that stopped it (category, error, ...); None while it runs
    equivalent: bool | None = None  # head/main: its result matched base's (the check round's check)
    env: dict | None = None
    timer: str | None = None
    gpu_devices: list | None = None
    sandbox: dict | None = None  # the protections in force
    script_report: dict | None = None  # an ISO-Bench script's own report line
    script_errors: list[dict] = field(default_factory=list)  # every problem a script's JSON lines stated
    coverage: dict | None = None  # what its traced call executed of the change (isobench.measure.coverage)
    wall_s: float = 0.0
    warnings: list[str] = field(default_factory=list)
    stderr_tail: str = ""
    stdout_tail: str = ""

    @property
    def active(self) -> bool:
        return self.failed is None

    def fail(self, category: str, error: str) -> None:
        self.failed = {"category": category, "error": error}

    def take(self, name: str, k: int, rep: dict) -> None:
        """Fold round ``k``'s report into the state."""
        self.wall_s += rep.get("wall_s", 0.0)
        self.env = rep.get("env") or self.env
        self.timer = rep.get("timer") or self.timer
        self.sandbox = rep.get("sandbox") or self.sandbox
        self.stderr_tail = rep.get("stderr_tail", "")
        self.stdout_tail = rep.get("stdout_tail", "")
        self.script_report = rep.get("script_report") or self.script_report
        for line in rep.get("script_errors") or []:
            if line not in self.script_errors and len(self.script_errors) < MAX_ERROR_LINES:
                self.script_errors.append(line)
        self.gpu_devices = rep.get("gpu_devices") or self.gpu_devices
        if rep.get("first_call_ms") is not None and rep["status"] == "ok":
            self.first_calls.append(rep["first_call_ms"])
        if rep.get("events_ms"):
            self.events.append(rep["events_ms"])
        self.warnings += [w for w in rep.get("warnings", []) if w not in self.warnings]
        if k == CHECK_ROUND and name != "base":
            self.equivalent = rep.get("equivalent")
        if name == "base" and k == SELF_CHECK_ROUND and rep.get("category") == "not_equivalent":
            rep = {
                **rep,
                "category": "nondeterministic",
                "error": "base's result differs from the reference base itself stored in round 1: the test "
                f"is nondeterministic and cannot judge head or main ({rep.get('error')})",
            }
        if rep["status"] != "ok":
            self.failed = rep
            if rep.get("category") == "not_equivalent":
                self.equivalent = False
            if rep.get("samples_ms"):  # timed before it failed (e.g. no reference to check): kept
                self.rounds.append(rep["samples_ms"])
            return
        self.rounds.append(rep["samples_ms"])

    def progress(self, name: str, k: int) -> str:
        """This revision's part of round ``k``'s progress line: the round's median, or why it stopped."""
        if self.failed is not None:
            return f"{name} {self.failed.get('category') or 'failed'}"
        if len(self.rounds) <= k or not self.rounds[k]:
            return f"{name} -"
        samples = sorted(self.rounds[k])
        return f"{name} {samples[len(samples) // 2]:.4g} ms"
