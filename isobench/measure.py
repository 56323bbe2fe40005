"""Measure one commit: base, head and main of one generated test, in one job.

Each round runs every revision once, each in a fresh process (the harness), in
the order base, head, main; the reference result is stored by base's first round
before head or main runs. A revision that fails stops being measured; the others
go on.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from . import contracts, harness, script_runner
from .jsonio import load_json
from .lockstep import PIN_CPU, lockstep_round
from .sandbox import Runner, Sandbox, SandboxSettings, isolation_refusal
from .settings import from_config
from .stats import describe

log = logging.getLogger(__name__)

REVISIONS = ("base", "head", "main")
STDERR_TAIL = 4000

# Failure categories written into timing files and records.
CATEGORIES = {
    "import_error": "the test module could not be imported (syntax error, missing module or name)",
    "invalid_script": "the test does not parse or lacks one of the contract's functions, so nothing was run",
    "extraction_invalid": "the commit's extraction file (or bundle line) is unreadable or invalid, so nothing was run",
    "commit_not_found": "the commit (or the parent its extraction names) is not in the source's repository",
    "no_parent": "the commit has no parent: nothing to compare against",
    "duplicate_extraction": "two extraction files name the commit, so neither is trusted",
    "setup_error": "setup() raised",
    "experiment_error": "experiment() raised",
    "store_error": "store_result() failed at base, so no reference exists",
    "no_reference": "no reference result from base to check head or main against",
    "eqcheck_error": "load_result() failed while checking equivalence",
    "not_equivalent": "the result differs from base's reference (check_equivalence failed)",
    "tampered": "the timing file was changed after its measurement wrote it (its sha256 no longer matches timing_seal.json)",
    "nondeterministic": "base's own result differs from the reference base stored: the test cannot judge equivalence",
    "timeout": "a round ran past its time limit and was killed",
    "crash": "the process died without a report (signal, os._exit, out of memory)",
    "harness_error": "the harness itself failed",
    "bad_output": "a command-line script printed no usable time (missing, non-finite, negative or wrong units)",
    "target_not_resolved": "a command-line script reports target_resolved: false (the API under test is missing)",
    "capability_unsupported": "a command-line script reports that this machine lacks what the test needs (error_name "
                              "CAPABILITY_UNSUPPORTED or error_code 2, e.g. no CUDA device): not a bug in the code",
    "opt_path_missed": "a command-line script reports opt_path_hit: false (or OPT_PATH_NOT_TRIGGERED) at head or main",
    "eqcheck_skipped": "a command-line script's --eqcheck run ended without reading base's reference, so equivalence "
                       "was never checked",
    "generation_failed": "no usable test could be generated for the commit, so nothing was run",
    "env_failed": "the revision's environment could not be built or verified (its log is kept), so nothing was run",
    "isolation_unavailable": "this host cannot isolate a test (namespaces, Landlock) and sandbox.require_isolation "
                             "is on, so nothing was run",
    "sandbox_violation": "the test broke a sandbox rule: processes left running after it exited, or output over the cap",
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
        return from_config(cls, cfg)

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Revision:
    name: str
    sha: str | None  # None only for a revision never run (its commit did not resolve)
    worktree: Path
    python: str = sys.executable  # the revision's environment (see isobench.envs)
    env_error: str | None = None  # its environment failed to build: nothing is run, category env_failed
    read_only: tuple[Path, ...] = ()  # more folders a container runner must mount (the environment)
    on_path: bool = True  # the worktree goes on PYTHONPATH (env mode none; an install decides otherwise)


def _tail(path: Path, limit: int = STDERR_TAIL) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def failed(category: str, error: str, **extra) -> dict:
    return {"status": "failed", "category": category, "error": error, "samples_ms": [], "env": None, "timer": None,
            "equivalent": None, "traceback": None, **extra}


class Job:
    """The test's files and the sandbox of one measure job (or smoke run), under ``scratch``:
    ``code/`` (the test, the harness, the sandbox launcher: read-only to the test) and ``data/``
    (the reference result and one folder per round: the only places the test may write)."""

    def __init__(self, generator: Path, scratch: Path, settings: Settings, contract: str = "auto",
                 extra_path: tuple[str, ...] = (), sandbox: SandboxSettings | None = None, runner: Runner | None = None):
        scratch = Path(scratch).resolve()
        if scratch.exists():
            shutil.rmtree(scratch)
        self.code, self.data = scratch / "code", scratch / "data"
        self.code.mkdir(parents=True)
        self.data.mkdir()
        text = Path(generator).read_text(encoding="utf-8", errors="replace")
        self.contract = contracts.detect(text) if contract == "auto" else contract
        self.module = self.code / "perf_test.py"
        shutil.copyfile(generator, self.module)  # generator.py itself is never touched
        shutil.copyfile(harness.__file__, self.code / "harness.py")
        shutil.copyfile(script_runner.__file__, self.code / "script_runner.py")
        self.prefix = self.data / "reference"  # a command-line script's --prefix / --file_prefix
        self.references: list[Path] | None = None  # what base's --reference run stored (script contracts)
        self.settings, self.extra_path = settings, extra_path
        self.sandbox = Sandbox(sandbox or SandboxSettings(), runner or Runner(), self.code, self.data)
        self.reference = self.data / "reference.out"

    def extra_env(self, rev: Revision) -> dict:
        root = rev.worktree.resolve()
        pythonpath = ([str(root)] if rev.on_path else []) + [str(root / p) for p in self.extra_path]
        return {"PYTHONPATH": os.pathsep.join(pythonpath), "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
                "PYTHONUNBUFFERED": "1"}

    def read_only(self, rev: Revision) -> list[Path]:
        return [rev.worktree.resolve(), *rev.read_only]

    def harness_cmd(self, rev: Revision, mode: str) -> list[str]:
        s = self.settings
        cmd = [rev.python, str(self.code / "harness.py"), "--module", str(self.module), "--mode", mode,
               "--reference", str(self.reference), "--warmup", str(s.warmup), "--warmup-ms", str(s.warmup_ms),
               "--repeat", str(s.repeat)]
        return cmd + (["--no-cuda"] if s.no_cuda else []) + (["--flush-l2"] if s.flush_l2 else [])

    def _finish(self, report: dict, proc, workdir: Path) -> dict:
        """Add what the sandbox saw: a broken rule fails an otherwise good round."""
        seen = self.sandbox.outcome(proc, workdir)
        report["sandbox"] = seen["protections"]
        if seen["violation"]:
            if report["status"] == "ok":
                report = {**failed("sandbox_violation", seen["violation"]), "sandbox": seen["protections"],
                          "env": report.get("env"), "timer": report.get("timer")}
            else:
                report.setdefault("warnings", []).append(seen["violation"])
        report["stderr_tail"] = _tail(workdir / "stderr.txt")
        report["stdout_tail"] = _tail(workdir / "stdout.txt")
        return report

    def _exit_code(self, returncode: int, proc, workdir: Path) -> int:
        """The test process's own status (the sandbox launcher reports a signal as 128 + signal)."""
        inner = self.sandbox.outcome(proc, workdir)["returncode"]
        return inner if inner is not None else (128 - returncode if returncode > 128 else returncode)

    def _no_report(self, returncode: int | None, proc, workdir: Path) -> dict:
        code = self._exit_code(returncode, proc, workdir)
        if code < 0:
            return failed("crash", f"the harness was killed by signal {-code} and wrote no report")
        return failed("crash", f"the harness exited with code {code} and wrote no report")

    def run_round(self, rev: Revision, mode: str, workdir: Path) -> dict:
        """One fresh harness process for one revision (function contract); returns the harness report."""
        out = workdir / "report.json"
        out.unlink(missing_ok=True)
        cmd = self.harness_cmd(rev, mode) + ["--out", str(out)]
        proc, returncode, wall = self.sandbox.run(cmd, workdir, self.extra_env(rev), self.read_only(rev), rev.python,
                                                  self.settings.timeout_s)
        if returncode is None:
            report = failed("timeout", f"round killed after {self.settings.timeout_s:g} s")
        elif out.exists():
            report = load_json(out)
        else:
            report = self._no_report(returncode, proc, workdir)
        report["wall_s"] = wall
        return self._finish(report, proc, workdir)

    def _stored_references(self) -> list[Path]:
        return sorted(p for p in self.data.iterdir() if p.name.startswith(self.prefix.name) and p.is_file())

    def reference_problem(self) -> str | None:
        """Why head or main cannot be checked against base: no reference stored in this job, or a file gone."""
        if not self.references:
            return "base stored no reference in this job, so there is nothing to check against"
        gone = [p.name for p in self.references if not p.exists()]
        return f"base's reference file {gone[0]} is gone" if gone else None

    def run_script_round(self, rev: Revision, mode: str, workdir: Path) -> dict:
        """One run of an ISO-Bench or GSO command-line script; its reported time is the round's sample.

        The script runs under script_runner, which notes the reference files it reads. An ``--eqcheck``
        run happens only when base's ``--reference`` run of this job stored files that are still there;
        otherwise the revision runs without ``--eqcheck`` (its own failure, if any, is what it reports)
        and fails ``no_reference``. An ``--eqcheck`` run that never read those files fails
        ``eqcheck_skipped``: equivalent is true only when the check really ran against base's reference."""
        problem = self.reference_problem() if mode == "eqcheck" else None
        run_mode = "time" if problem else mode
        out_file = workdir / "timing_output.txt"
        reads = workdir / "reference_reads.txt"
        reads.unlink(missing_ok=True)
        cmd = [rev.python, str(self.code / "script_runner.py"), "--watch", str(self.prefix), "--reads", str(reads),
               "--", *contracts.command(self.contract, self.module, run_mode, self.prefix, out_file)]
        proc, returncode, wall = self.sandbox.run(cmd, workdir, self.extra_env(rev), self.read_only(rev), rev.python,
                                                  self.settings.timeout_s)
        stderr = _tail(workdir / "stderr.txt")
        base = {"wall_s": wall, "env": harness.environment(), "timer": f"script:{self.contract}"}
        report_line = None
        if returncode is None:
            return self._finish({**failed("timeout", f"round killed after {self.settings.timeout_s:g} s"), **base},
                                proc, workdir)
        code = self._exit_code(returncode, proc, workdir) if returncode else 0
        warnings: list[str] = []
        if self.contract == "isobench_cli":
            stdout = _tail(workdir / "stdout.txt", 65536)
            report_line = contracts.kept_report(contracts.last_json(stdout))
            ms, category, error, warnings = contracts.parse_isobench(stdout, rev.name, code, stderr, run_mode)
        elif code != 0:
            ms, (category, error) = None, contracts.classify_exit(code, run_mode, stderr)
        else:
            text = out_file.read_text(errors="replace") if out_file.exists() else ""
            ms, category, error = contracts.parse_gso(text)
        if category is None and mode == "reference":
            self.references = self._stored_references()
            if not self.references:
                category, error = "store_error", f"the --reference run stored nothing under {self.prefix.name}*"
        if category is None and problem:
            category, error = "no_reference", problem
        read = set(reads.read_text(errors="replace").splitlines()) if reads.exists() else set()
        if category is None and run_mode == "eqcheck" and not read & {str(p) for p in self.references or []}:
            category, error = "eqcheck_skipped", "the --eqcheck run never read base's reference " \
                f"({', '.join(p.name for p in self.references or [])}), so equivalence was not checked"
        if category:
            report = {**failed(category, error), **base, "samples_ms": [ms] if ms is not None else []}
        else:
            report = {"status": "ok", "category": None, "error": None, "samples_ms": [ms], "traceback": None,
                      "equivalent": True if run_mode == "eqcheck" else None, "warnings": warnings, **base}
        report["script_report"] = report_line
        return self._finish(report, proc, workdir)

    def lockstep(self, active: list[Revision], modes: dict, workdirs: dict) -> dict:
        def starter(rev: Revision):
            out = workdirs[rev.name] / "report.json"
            cmd = self.harness_cmd(rev, modes[rev.name]) + ["--lockstep", "--out", str(out)]
            return lambda: self.sandbox.popen(cmd, workdirs[rev.name], self.extra_env(rev), self.read_only(rev),
                                              rev.python, stdin=subprocess.PIPE, stdout_pipe=True, cpu=PIN_CPU)

        procs = [(rev.name, starter(rev), workdirs[rev.name]) for rev in active]
        reports, popens = lockstep_round(procs, self.settings.repeat, self.settings.timeout_s)
        return {name: self._finish(rep, popens[name], workdirs[name]) for name, rep in reports.items()}


def _progress(name: str, st: dict, k: int) -> str:
    """One revision's part of a round's progress line: the round's median, or why it stopped."""
    if st["failed"] is not None:
        return f"{name} {st['failed'].get('category') or 'failed'}"
    if len(st["rounds"]) <= k or not st["rounds"][k]:
        return f"{name} -"
    samples = sorted(st["rounds"][k])
    return f"{name} {samples[len(samples) // 2]:.4g} ms"


def measure_commit(generator: Path, revisions: list[Revision], scratch: Path, settings: Settings,
                   extra_path: tuple[str, ...] = (), contract: str = "auto", sandbox: SandboxSettings | None = None,
                   runner: Runner | None = None) -> dict[str, dict]:
    """Measure every revision of one commit in interleaved rounds; return {revision name: timing dict}."""
    job = Job(generator, scratch, settings, contract, extra_path, sandbox, runner)
    state = {r.name: {"rounds": [], "failed": None, "equivalent": None, "env": None, "timer": None, "wall_s": 0.0,
                      "warnings": [], "stderr_tail": "", "stdout_tail": "", "sandbox": None, "script_report": None}
             for r in revisions}
    refusal = isolation_refusal(sandbox or SandboxSettings(), runner or Runner())
    for rev in revisions:
        if refusal:
            state[rev.name]["failed"] = {"category": "isolation_unavailable", "error": refusal}
        elif rev.env_error:
            state[rev.name]["failed"] = {"category": "env_failed", "error": rev.env_error}
    if "base" in state and state["base"]["failed"]:
        for name in state:  # no reference can exist
            state[name]["failed"] = state[name]["failed"] or {
                "category": "no_reference", "error": "base's environment failed, so no reference exists"}
    deadline = time.monotonic() + settings.job_timeout_s
    rounds_done, out_of_time = 0, False
    for k in range(settings.rounds):
        if k and time.monotonic() > deadline:
            out_of_time = True
            break
        active = [rev for rev in revisions if state[rev.name]["failed"] is None]
        if not active:
            break
        modes = {rev.name: round_mode(rev.name, k) for rev in active}
        workdirs = {rev.name: job.data / rev.name / f"round{k}" for rev in active}
        lockstep = job.contract == "functions" and settings.interleave == "calls"
        reports = job.lockstep(active, modes, workdirs) if lockstep else {}
        for rev in active:
            st = state[rev.name]
            if lockstep:
                rep = reports[rev.name]
            elif job.contract == "functions":
                rep = job.run_round(rev, modes[rev.name], workdirs[rev.name])
            else:
                rep = job.run_script_round(rev, modes[rev.name], workdirs[rev.name])
            st["wall_s"] += rep.get("wall_s", 0.0)
            st["env"] = rep.get("env") or st["env"]
            st["timer"] = rep.get("timer") or st["timer"]
            st["sandbox"] = rep.get("sandbox") or st["sandbox"]
            st["stderr_tail"] = rep.get("stderr_tail", "")
            st["stdout_tail"] = rep.get("stdout_tail", "")
            st["script_report"] = rep.get("script_report") or st["script_report"]
            st["warnings"] += [w for w in rep.get("warnings", []) if w not in st["warnings"]]
            if k == 0 and rev.name != "base":
                st["equivalent"] = rep.get("equivalent")
            if rev.name == "base" and k == SELF_CHECK_ROUND and rep.get("category") == "not_equivalent":
                rep = {**rep, "category": "nondeterministic",
                       "error": "base's result differs from the reference base itself stored in round 1: the test "
                                f"is nondeterministic and cannot judge head or main ({rep.get('error')})"}
            if rep["status"] != "ok":
                st["failed"] = rep
                if rep.get("category") == "not_equivalent":
                    st["equivalent"] = False
                if rep.get("samples_ms"):  # timed before it failed (e.g. no reference to check): kept
                    st["rounds"].append(rep["samples_ms"])
                continue
            st["rounds"].append(rep["samples_ms"])
        rounds_done = k + 1
        log.info("round %d/%d (%s): %s", k + 1, settings.rounds, "check" if k == 0 else "timed",
                 ", ".join(_progress(rev.name, state[rev.name], k) for rev in revisions))
    if out_of_time:
        for st in state.values():
            st["warnings"].append(f"job time limit ({settings.job_timeout_s:g} s) reached after {rounds_done} of "
                                  f"{settings.rounds} rounds")
    blame_nondeterminism(state)
    return {rev.name: timing_of(rev, state[rev.name], settings, job.contract) for rev in revisions}


SELF_CHECK_ROUND = 1  # base's first timed round also checks base's result against base's own reference


def round_mode(name: str, k: int) -> str:
    """Round 0: base stores the reference, head and main check against it. Round 1: base checks itself (a test
    whose result differs run to run is nondeterministic, never blamed on head). Later rounds only time."""
    if k == 0:
        return "reference" if name == "base" else "eqcheck"
    return "eqcheck" if (name == "base" and k == SELF_CHECK_ROUND) else "time"


def blame_nondeterminism(state: dict) -> None:
    """When base disagrees with itself, head's or main's mismatch says nothing about their code."""
    base = state.get("base", {}).get("failed") or {}
    if base.get("category") != "nondeterministic":
        return
    for name in ("head", "main"):
        st = state.get(name)
        if st and st["failed"] and st["failed"].get("category") == "not_equivalent":
            st["failed"] = {**st["failed"], "category": "nondeterministic",
                            "error": "not judged: base's own result is not reproducible (nondeterministic test); "
                                     f"head's check said: {st['failed'].get('error')}"}
            st["equivalent"] = None


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
        "python": rev.python,
        "sandbox": st.get("sandbox"),
        "wall_s": round(st["wall_s"], 3),
        "stderr_tail": st["stderr_tail"],
        "stdout_tail": st.get("stdout_tail", ""),
        "script_report": st.get("script_report"),
    }


def not_run(rev: Revision, category: str, error: str, settings: Settings) -> dict:
    """The timing file of a revision that was never run (e.g. no test could be generated)."""
    st = {"rounds": [], "failed": {"category": category, "error": error}, "equivalent": None, "env": None,
          "timer": None, "wall_s": 0.0, "warnings": [], "stderr_tail": ""}
    return {**timing_of(rev, st, settings, "functions"), "contract": None, "interleave": None}


def smoke_run(script: Path, rev: Revision, scratch: Path, timeout_s: float, extra_path: tuple[str, ...] = (),
              contract: str = "auto", sandbox: SandboxSettings | None = None, runner: Runner | None = None) -> str | None:
    """Run a candidate test once at one revision, sandboxed: store its result, then check it against itself.

    One timed call per process, no warm-up beyond the first call. Returns None when both steps
    pass, else the failure (category, error and traceback or stderr tail) for a repair request."""
    if rev.env_error:
        return f"env_failed: {rev.env_error}"
    settings = Settings(rounds=1, warmup=1, warmup_ms=0.0, repeat=1, timeout_s=timeout_s)
    job = Job(script, scratch, settings, contract, extra_path, sandbox, runner)
    try:
        for mode in ("reference", "eqcheck"):
            workdir = job.data / mode
            rep = job.run_round(rev, mode, workdir) if job.contract == "functions" else \
                job.run_script_round(rev, mode, workdir)
            if rep["status"] != "ok":
                detail = (rep.get("traceback") or rep.get("stderr_tail") or "").strip()
                return f"{rep['category']} ({mode} run): {rep['error']}" + (f"\n{detail[-3000:]}" if detail else "")
        return None
    finally:
        shutil.rmtree(Path(scratch).resolve(), ignore_errors=True)
