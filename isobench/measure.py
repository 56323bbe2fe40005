"""Measure one commit: base, head and main of one generated test, in one job.

Each round runs every revision once, each in a fresh process (the harness), in
the order base, head, main; the reference result is stored by base's first round
before head or main runs. A revision that fails stops being measured; the others
go on.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import contracts, harness
from .jsonio import load_json
from .lockstep import lockstep_round
from .stats import describe

REVISIONS = ("base", "head", "main")
STDERR_TAIL = 4000

# Failure categories written into timing files and records.
CATEGORIES = {
    "import_error": "the test module could not be imported (syntax error, missing module or name)",
    "invalid_script": "the test lacks one of the contract's functions",
    "setup_error": "setup() raised",
    "experiment_error": "experiment() raised",
    "store_error": "store_result() failed at base, so no reference exists",
    "no_reference": "no reference result from base to check head or main against",
    "eqcheck_error": "load_result() failed while checking equivalence",
    "not_equivalent": "the result differs from base's reference (check_equivalence failed)",
    "timeout": "a round ran past its time limit and was killed",
    "crash": "the process died without a report (signal, os._exit, out of memory)",
    "harness_error": "the harness itself failed",
    "bad_output": "a command-line script printed no usable time (missing, non-finite, negative or wrong units)",
    "target_not_resolved": "a command-line script reports target_resolved: false (the API under test is missing)",
    "opt_path_missed": "a command-line script reports opt_path_hit: false at head or main",
    "generation_failed": "no usable test could be generated for the commit, so nothing was run",
}


@dataclass(frozen=True)
class Settings:
    rounds: int = 10
    warmup: int = 2
    warmup_ms: float = 100.0
    repeat: int = 10
    timeout_s: float = 600.0
    job_timeout_s: float = 3600.0
    flush_l2: bool = False
    no_cuda: bool = False
    interleave: str = "rounds"  # or "calls": see isobench.lockstep

    @classmethod
    def from_config(cls, cfg: dict) -> "Settings":
        return cls(**{k: cfg[k] for k in cls.__dataclass_fields__ if k in cfg})

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Revision:
    name: str
    sha: str
    worktree: Path


def _tail(path: Path, limit: int = STDERR_TAIL) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def revision_env(pythonpath: list[str]) -> dict:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        PYTHONUNBUFFERED="1",
    )
    return env


def spawn(cmd: list[str], workdir: Path, env: dict, timeout_s: float) -> tuple[int | None, float]:
    """Run one process in its own session, stdout/stderr to files in ``workdir``; kill its whole group on timeout.

    Returns (exit code or None on timeout, wall seconds)."""
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    with open(workdir / "stdout.txt", "wb") as so, open(workdir / "stderr.txt", "wb") as se:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=so, stderr=se, start_new_session=True)
        try:
            returncode = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = None
    return returncode, round(time.monotonic() - started, 3)


def failed(category: str, error: str, **extra) -> dict:
    return {"status": "failed", "category": category, "error": error, "samples_ms": [], "env": None, "timer": None,
            "equivalent": None, "traceback": None, **extra}


def harness_cmd(python: str, module: Path, mode: str, reference: Path, settings: Settings) -> list[str]:
    cmd = [python, str(module.parent / "harness.py"), "--module", str(module), "--mode", mode,
           "--reference", str(reference), "--warmup", str(settings.warmup), "--warmup-ms", str(settings.warmup_ms),
           "--repeat", str(settings.repeat)]
    return cmd + (["--no-cuda"] if settings.no_cuda else []) + (["--flush-l2"] if settings.flush_l2 else [])


def run_round(rev: Revision, mode: str, module: Path, reference: Path, workdir: Path, settings: Settings,
              python: str, pythonpath: list[str]) -> dict:
    """One fresh harness process for one revision (function contract); returns the harness report."""
    out = workdir / "report.json"
    if out.exists():
        out.unlink()
    cmd = harness_cmd(python, module, mode, reference, settings) + ["--out", str(out)]
    returncode, wall = spawn(cmd, workdir, revision_env(pythonpath), settings.timeout_s)
    if returncode is None:
        report = failed("timeout", f"round killed after {settings.timeout_s:g} s")
    elif out.exists():
        report = load_json(out)
    elif returncode < 0:
        report = failed("crash", f"the harness was killed by signal {-returncode} and wrote no report")
    else:
        report = failed("crash", f"the harness exited with code {returncode} and wrote no report")
    report["wall_s"] = wall
    report["stderr_tail"] = _tail(workdir / "stderr.txt")
    return report


def run_script_round(rev: Revision, mode: str, contract: str, module: Path, prefix: Path, workdir: Path,
                     settings: Settings, python: str, pythonpath: list[str]) -> dict:
    """One run of an ISO-Bench or GSO command-line script; its reported time is the round's sample."""
    out_file = workdir / "timing_output.txt"
    cmd = [python, *contracts.command(contract, module, mode, prefix, out_file)]
    returncode, wall = spawn(cmd, workdir, revision_env(pythonpath), settings.timeout_s)
    stderr = _tail(workdir / "stderr.txt")
    base = {"wall_s": wall, "stderr_tail": stderr, "env": harness.environment(), "timer": f"script:{contract}"}
    if returncode is None:
        return {**failed("timeout", f"round killed after {settings.timeout_s:g} s"), **base}
    if returncode != 0:
        category, error = contracts.classify_exit(returncode, mode, stderr)
        return {**failed(category, error), **base}
    warnings: list[str] = []
    if contract == "isobench_cli":
        ms, category, error, warnings = contracts.parse_isobench(_tail(workdir / "stdout.txt", 65536), rev.name)
    else:
        text = out_file.read_text(errors="replace") if out_file.exists() else ""
        ms, category, error = contracts.parse_gso(text)
    if category:
        return {**failed(category, error), **base}
    return {"status": "ok", "category": None, "error": None, "samples_ms": [ms], "equivalent": True if mode == "eqcheck" else None,
            "traceback": None, "warnings": warnings, **base}


def measure_commit(generator: Path, revisions: list[Revision], scratch: Path, settings: Settings,
                   python: str = sys.executable, extra_path: tuple[str, ...] = (), contract: str = "auto") -> dict[str, dict]:
    """Measure every revision of one commit in interleaved rounds; return {revision name: timing dict}."""
    scratch = Path(scratch).resolve()
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    text = Path(generator).read_text(encoding="utf-8", errors="replace")
    if contract == "auto":
        contract = contracts.detect(text)
    module = scratch / "perf_test.py"
    shutil.copyfile(generator, module)  # generator.py itself is never touched
    shutil.copyfile(harness.__file__, scratch / "harness.py")
    reference = scratch / "reference.out"
    state = {r.name: {"rounds": [], "failed": None, "equivalent": None, "env": None, "timer": None, "wall_s": 0.0,
                      "warnings": [], "stderr_tail": ""} for r in revisions}
    deadline = time.monotonic() + settings.job_timeout_s
    rounds_done = 0
    for k in range(settings.rounds):
        if k and time.monotonic() > deadline:
            break
        active = [rev for rev in revisions if state[rev.name]["failed"] is None]
        modes = {rev.name: "time" if k else ("reference" if rev.name == "base" else "eqcheck") for rev in active}
        paths = {rev.name: [str(rev.worktree.resolve())] + [str(rev.worktree.resolve() / p) for p in extra_path]
                 for rev in active}
        workdirs = {rev.name: scratch / rev.name / f"round{k}" for rev in active}
        lockstep = contract == "functions" and settings.interleave == "calls" and active
        if lockstep:
            reports = lockstep_round([(rev.name, harness_cmd(python, module, modes[rev.name], reference, settings),
                                       workdirs[rev.name], revision_env(paths[rev.name])) for rev in active],
                                     settings.repeat, settings.timeout_s)
        for rev in active:
            st = state[rev.name]
            mode, pythonpath, workdir = modes[rev.name], paths[rev.name], workdirs[rev.name]
            if lockstep:
                rep = reports[rev.name]
                rep["stderr_tail"] = _tail(workdir / "stderr.txt")
            elif contract == "functions":
                rep = run_round(rev, mode, module, reference, workdir, settings, python, pythonpath)
            else:
                rep = run_script_round(rev, mode, contract, module, scratch / "reference", workdir, settings, python,
                                       pythonpath)
            st["wall_s"] += rep.get("wall_s", 0.0)
            st["env"] = rep.get("env") or st["env"]
            st["timer"] = rep.get("timer") or st["timer"]
            st["stderr_tail"] = rep.get("stderr_tail", "")
            st["warnings"] += [w for w in rep.get("warnings", []) if w not in st["warnings"]]
            if k == 0 and rev.name != "base":
                st["equivalent"] = rep.get("equivalent")
            if rep["status"] != "ok":
                st["failed"] = rep
                if rep.get("category") == "not_equivalent":
                    st["equivalent"] = False
                continue
            st["rounds"].append(rep["samples_ms"])
        rounds_done = k + 1
    if rounds_done < settings.rounds:
        for st in state.values():
            st["warnings"].append(f"job time limit ({settings.job_timeout_s:g} s) reached after {rounds_done} of "
                                  f"{settings.rounds} rounds")
    return {rev.name: timing_of(rev, state[rev.name], settings, contract) for rev in revisions}


def timing_of(rev: Revision, st: dict, settings: Settings, contract: str) -> dict:
    failure = st["failed"]
    samples = [s for rnd in st["rounds"] for s in rnd]
    device = "cuda" if st["timer"] == "cuda_event" else "cpu"
    stats = describe(st["rounds"], device) if samples else None  # a failed revision keeps what it measured
    return {
        "schema_version": 1,
        "revision": rev.name,
        "sha": rev.sha,
        "status": "ok" if failure is None else "failed",
        "category": None if failure is None else failure.get("category"),
        "error": None if failure is None else failure.get("error"),
        "traceback": None if failure is None else failure.get("traceback"),
        "equivalent": st["equivalent"] if rev.name != "base" else None,
        "samples_ms": samples,
        "rounds_ms": st["rounds"],
        "stats": stats,
        "warnings": st["warnings"] + (stats["warnings"] if stats else []),
        "unit": "ms",
        "contract": contract,
        "interleave": settings.interleave if contract == "functions" else "rounds",
        "timer": st["timer"],
        "device": device,
        "env": st["env"],
        "settings": settings.as_dict(),
        "harness_version": harness.HARNESS_VERSION,
        "wall_s": round(st["wall_s"], 3),
        "stderr_tail": st["stderr_tail"],
    }


def not_run(rev: Revision, category: str, error: str, settings: Settings) -> dict:
    """The timing file of a revision that was never run (e.g. no test could be generated)."""
    st = {"rounds": [], "failed": {"category": category, "error": error}, "equivalent": None, "env": None,
          "timer": None, "wall_s": 0.0, "warnings": [], "stderr_tail": ""}
    return {**timing_of(rev, st, settings, "functions"), "contract": None, "interleave": None}


def smoke_run(script: Path, worktree: Path, scratch: Path, timeout_s: float, python: str = sys.executable,
              extra_path: tuple[str, ...] = (), contract: str = "auto") -> str | None:
    """Run a candidate test once at one revision: store its result, then check it against itself.

    One timed call per process, no warm-up beyond the first call. Returns None when both steps
    pass, else the failure (category, error and traceback or stderr tail) for a repair request."""
    scratch = Path(scratch).resolve()
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    text = Path(script).read_text(encoding="utf-8", errors="replace")
    contract = contracts.detect(text) if contract == "auto" else contract
    module = scratch / "perf_test.py"
    shutil.copyfile(script, module)
    shutil.copyfile(harness.__file__, scratch / "harness.py")
    settings = Settings(rounds=1, warmup=1, warmup_ms=0.0, repeat=1, timeout_s=timeout_s)
    rev = Revision("head", "", Path(worktree))
    pythonpath = [str(rev.worktree.resolve())] + [str(rev.worktree.resolve() / p) for p in extra_path]
    try:
        for mode in ("reference", "eqcheck"):
            workdir = scratch / mode
            if contract == "functions":
                rep = run_round(rev, mode, module, scratch / "reference.out", workdir, settings, python, pythonpath)
            else:
                rep = run_script_round(rev, mode, contract, module, scratch / "reference", workdir, settings, python,
                                       pythonpath)
            if rep["status"] != "ok":
                detail = rep.get("traceback") or rep.get("stderr_tail") or ""
                return f"{rep['category']} ({mode} run): {rep['error']}" + (f"\n{detail.strip()[-3000:]}" if detail.strip() else "")
        return None
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
