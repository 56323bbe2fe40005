"""Measure one commit: base, head and main of one generated test, in one job.

Each round runs every revision once in a fresh process (the harness, or a command-line script under
script_runner), in the order base, head, main, or all three together call by call (lockstep); the reference
result is stored by base in the check round before head or main runs. Rounds go on until the comparison is
decided or precise (adaptive). A revision that fails stops being measured; the others go on.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import replace
from pathlib import Path
from typing import Protocol

from . import coverage, harness
from .adaptive import decide_interleave, stop_reason
from .job import Job, Revision, Settings
from .lockstep import LOCKSTEP, SEQUENTIAL
from .runners import Runner
from .sandbox import SandboxSettings, isolation_refusal
from .state import CHECK_ROUND, RevisionState
from .stats import Analysis, describe

log = logging.getLogger(__name__)


class RoundProtocol(Protocol):
    """How a job other than a commit's measurement runs its rounds (isobench.evaluate.check)."""

    def check(self, job: Job, active: list[Revision]) -> dict[str, dict]:
        """The check round (round 0) of the revisions ``active``: {revision name: its report}."""

    def mode(self, name: str, k: int) -> str:
        """The harness mode of revision ``name`` in round ``k`` >= 1."""

    def pairs(self, state: dict[str, RevisionState]) -> list[tuple[str, str]]:
        """The comparisons the adaptive stop waits for."""


GPU_TIMERS = ("cuda_sync_wall", "cuda_event")  # cuda_event: harness 4 and older (events on one stream)


def measure_commit(
    generator: Path,
    revisions: list[Revision],
    scratch: Path,
    settings: Settings,
    extra_path: tuple[str, ...] = (),
    sandbox: SandboxSettings | None = None,
    runner: Runner | None = None,
    analysis: Analysis | None = None,
    device_env: dict | None = None,
    change: coverage.Change | None = None,
    protocol: RoundProtocol | None = None,
) -> dict[str, dict]:
    """Measure every revision of one commit in interleaved rounds; return {revision name: timing dict}.

    Rounds go on from ``settings.rounds`` up to ``settings.max_rounds`` until the comparison is decided or
    precise (isobench.measure.adaptive, with ``analysis``: min_effect, alpha, ...); with ``interleave: auto`` the
    check round's memory facts choose lockstep or one process at a time for the timed rounds. ``device_env``
    (CUDA_VISIBLE_DEVICES of the GPU slot held, isobench.measure.gpu) goes to every run of the test. With
    ``change`` (what the commit changes) and ``settings.coverage``, base and head are traced once after the check
    round (isobench.measure.coverage): a test that does not run the change stops there. ``protocol`` (an evaluation
    of candidates, isobench.evaluate.check) replaces the check round, the mode of later rounds and the pairs the
    adaptive stop looks at."""
    job = Job(generator, scratch, settings, extra_path, sandbox, runner, device_env)
    if protocol is not None:
        job.round_mode = protocol.mode
    state = {r.name: RevisionState() for r in revisions}
    refusal = isolation_refusal(job.sandbox.settings, job.sandbox.runner)
    for rev in revisions:
        if refusal:
            state[rev.name].fail("isolation_unavailable", refusal)
        elif rev.env_error:
            state[rev.name].fail("env_failed", rev.env_error)
    if "base" in state and not state["base"].active:
        for st in state.values():  # no reference can exist
            if st.active:
                st.fail("no_reference", "base's environment failed, so no reference exists")
    deadline = time.monotonic() + settings.job_timeout_s
    decision = decide_interleave(
        settings.interleave, job.contract, [], len(revisions), settings.auto_memory_fraction
    )
    # auto: the check round runs one process at a time, then decides
    chosen = SEQUENTIAL if decision["setting"] == "auto" else decision["chosen"]
    maximum = settings.most_rounds
    k, stop, facts = 0, None, {}
    while stop is None:
        active = [rev for rev in revisions if state[rev.name].active]
        if k == CHECK_ROUND and protocol is not None:
            reports = protocol.check(job, active)
        else:
            reports = job.round(active, k, chosen)
        memory = []
        for rev in active:
            rep = reports[rev.name]
            memory.append(rep.get("memory") or {})
            state[rev.name].take(rev.name, k, rep)
        if k == CHECK_ROUND and decision["setting"] == "auto" and job.contract == "functions":
            left = sum(1 for st in state.values() if st.active)
            decision = decide_interleave(
                "auto", job.contract, memory, left or len(revisions), settings.auto_memory_fraction
            )
            chosen = decision["chosen"]
            log.debug("interleave: %s (auto: %s)", chosen, decision["reason"])
        if k == CHECK_ROUND and change is not None and settings.coverage:
            verdict = coverage.check(job, revisions, state, change)
            if verdict and verdict["status"] != "not_traced":
                log.debug(
                    "coverage: %s%s",
                    verdict["status"],
                    f" ({verdict['reason']})" if verdict["reason"] else "",
                )
        k += 1
        stop, facts = stop_reason(
            state,
            minimum=settings.rounds,
            maximum=maximum,
            done=k,
            deadline=deadline,
            paired=chosen == LOCKSTEP,
            analysis=analysis,
            precision=settings.precision,
            pairs=protocol.pairs(state) if protocol is not None else None,
        )
        log.debug(
            "round %d (%s; %d to %d): %s%s",
            k,
            "check" if k == CHECK_ROUND + 1 else "timed",
            settings.rounds,
            maximum,
            ", ".join(state[rev.name].progress(rev.name, k - 1) for rev in revisions),
            f"; stop: {stop}" if stop else "",
        )
    if stop == "job_timeout":
        for st in state.values():
            st.warnings.append(
                f"job time limit ({settings.job_timeout_s:g} s) reached after {k} rounds "
                f"(minimum {settings.rounds})"
            )
    blame_nondeterminism(state)
    for rev in revisions:
        if state[rev.name].sandbox is not None:
            state[rev.name].sandbox = {
                **state[rev.name].sandbox,
                "compile_cache": job.compile_cache_facts(rev),
            }
    job_facts = {
        "interleave": chosen,
        "interleave_decision": decision,
        "rounds_stop": {"reason": stop, "rounds": k, "minimum": settings.rounds, "maximum": maximum, **facts},
    }
    return {
        rev.name: {**timing_of(rev, state[rev.name], settings, job.contract), **job_facts}
        for rev in revisions
    }


def blame_nondeterminism(state: dict[str, RevisionState]) -> None:
    """When base disagrees with itself, head's or main's mismatch says nothing about their code."""
    base = state.get("base")
    if base is None or (base.failed or {}).get("category") != "nondeterministic":
        return
    for name in ("head", "main"):
        st = state.get(name)
        if st and st.failed and st.failed.get("category") == "not_equivalent":
            st.failed = {
                **st.failed,
                "category": "nondeterministic",
                "error": "not judged: base's own result is not reproducible (nondeterministic test); "
                f"head's check said: {st.failed.get('error')}",
            }
            st.equivalent = None


def timing_of(rev: Revision, st: RevisionState, settings: Settings, contract: str | None) -> dict:
    """The timing file of one revision (isobench/schemas/timing.schema.json) from its state."""
    failure = st.failed
    samples = [s for rnd in st.rounds for s in rnd]
    device = "cuda" if st.timer in GPU_TIMERS else "cpu"
    stats = describe(st.rounds, device) if samples else None  # a failed revision keeps what it measured
    return {
        "schema_version": 1,
        "revision": rev.name,
        "sha": rev.sha,
        "status": "ok" if failure is None else "failed",
        "category": None if failure is None else failure.get("category"),
        "error": None if failure is None else failure.get("error"),
        "traceback": None if failure is None else failure.get("traceback"),
        "equivalent": st.equivalent if rev.name != "base" else None,
        "samples_ms": samples,
        "rounds_ms": st.rounds,
        "stats": stats,
        "warnings": st.warnings + (stats["warnings"] if stats else []),
        "unit": "ms",
        "contract": contract,
        "timer": st.timer,
        "device": device,
        "events_ms": [s for rnd in st.events for s in rnd],
        "first_call_ms": st.first_calls,  # CUDA events on the current stream only
        "gpu_devices": st.gpu_devices,
        "env": st.env,
        "settings": settings.as_dict(),
        "harness_version": harness.HARNESS_VERSION,
        "python": rev.python,
        "sandbox": st.sandbox,
        "wall_s": round(st.wall_s, 3),
        "stderr_tail": st.stderr_tail,
        "stdout_tail": st.stdout_tail,
        "script_report": st.script_report,
        "script_errors": st.script_errors,
        "coverage": st.coverage,
    }


def not_run(rev: Revision, category: str, error: str, settings: Settings) -> dict:
    """The timing file of a revision that was never run (e.g. no test could be generated)."""
    st = RevisionState()
    st.fail(category, error)
    return {**timing_of(rev, st, settings, None), "interleave": None}


def smoke_run(
    script: Path,
    rev: Revision,
    scratch: Path,
    timeout_s: float,
    extra_path: tuple[str, ...] = (),
    contract: str | None = None,
    sandbox: SandboxSettings | None = None,
    runner: Runner | None = None,
    device_env: dict | None = None,
) -> str | None:
    """Run a candidate test once at one revision, sandboxed: store its result, then check it against itself.

    One timed call per process, no warm-up beyond the first call; ``contract`` as the source's measure
    settings say (None: their default). Returns None when both steps pass, else the failure (category,
    error and traceback or stderr tail) for a repair request."""
    if rev.env_error:
        return f"env_failed: {rev.env_error}"
    settings = Settings(rounds=1, warmup=1, warmup_ms=0.0, repeat=1, timeout_s=timeout_s)
    settings = replace(settings, contract=contract) if contract else settings
    job = Job(script, scratch, settings, extra_path, sandbox, runner, device_env)
    try:
        for mode in ("reference", "eqcheck"):
            rep = job.run(rev, mode, job.data / mode)
            if rep["status"] != "ok":
                detail = (rep.get("traceback") or rep.get("stderr_tail") or "").strip()
                return f"{rep['category']} ({mode} run): {rep['error']}" + (
                    f"\n{detail[-3000:]}" if detail else ""
                )
        return None
    finally:
        shutil.rmtree(Path(scratch).resolve(), ignore_errors=True)
