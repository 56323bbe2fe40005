"""The job of one measurement (or smoke run): the test's files, its sandbox, and one round of one revision.

Under ``scratch``: ``code/`` (the test, the harness, the script runner and the sandbox launcher: read-only to
the test) and ``data/`` (the reference result and one folder per round: the only places the test may write).
A function-contract round is a fresh harness process; a command-line script round runs the script under
``script_runner`` (which notes the reference files it reads); ``lockstep`` runs one round's processes together.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import IsobenchError
from ..jsonio import load_json
from ..settings import schema_settings
from . import contracts, harness, sandbox_exec, script_runner, tracer
from .lockstep import LOCKSTEP, PIN_CPU, interleave_name, lockstep_round
from .process import Run
from .runners import Runner
from .sandbox import COMPILE_CACHES, Command, Sandbox, SandboxSettings, compile_cache_env
from .state import crash, failed, round_mode, timed_out


@schema_settings("measure")
class Settings:
    """A measure job's settings (the config's ``measure`` block; defaults in the schema)."""

    rounds: int  # the minimum (isobench.measure.adaptive)
    max_rounds: int
    precision: float | None  # target CI half-width in log space; None: analysis min_effect / 2
    warmup: int
    warmup_ms: float
    repeat: int
    timeout_s: float
    job_timeout_s: float
    flush_l2: bool
    no_cuda: bool
    interleave: str  # "lockstep" (isobench.measure.lockstep), "sequential", or "auto": lockstep when they fit
    auto_memory_fraction: float
    contract: str  # "auto" (detected from the script), "functions", "isobench_cli" or "gso_cli"
    epoch: int | str  # part of the measurement cache's key only
    exclusive: bool  # a measure job takes every core (scheduling only: rules/common.smk)
    coverage: bool  # trace one untimed call at base and head for the changed code (isobench.measure.coverage)

    def __post_init__(self):
        object.__setattr__(self, "interleave", interleave_name(self.interleave))  # an old name: its new one

    @property
    def most_rounds(self) -> int:
        """The most rounds a job runs (``max_rounds``, never below the minimum ``rounds``)."""
        return max(self.max_rounds, self.rounds)

    def as_dict(self) -> dict:
        """What shapes the timed calls: the timing file's ``settings`` and part of the cache key (contract and
        epoch enter the key on their own; exclusive only schedules the job)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in NOT_TIMING}


NOT_TIMING = ("contract", "epoch", "exclusive")


@dataclass(frozen=True)
class Revision:
    name: str
    sha: str | None  # None only for a revision never run (its commit did not resolve)
    worktree: Path
    python: str = sys.executable  # the revision's environment (see isobench.envs)
    env_error: str | None = None  # its environment failed to build: nothing is run, category env_failed
    read_only: tuple[Path, ...] = ()  # more folders a container runner must mount (the environment)
    on_path: bool = True  # the worktree goes on PYTHONPATH (env mode none; an install decides otherwise)
    image: str | None = None  # the revision's image (env mode image; isobench/measure/runners.py)
    env: dict | None = field(default=None, compare=False)  # what its timing file records as revision_env


STDERR_TAIL = 4000


def worker_report(path: Path) -> dict:
    """The report a worker wrote (written where the test runs, so possibly by the test): a JSON object with a
    status, else a failed round saying so (never an exception in the measure job)."""
    try:
        report = load_json(path)
    except (IsobenchError, OSError) as exc:
        return failed("harness_error", f"the worker's report is unreadable: {exc}")
    if not isinstance(report, dict) or report.get("status") not in ("ok", "failed"):
        return failed("harness_error", "the worker's report is not a JSON object with a status")
    return report


def tracer_report(path: Path) -> dict:
    """A traced script run's round report: ok, with the tracer's report (checked by isobench.measure.coverage)."""
    try:
        return {**failed(None, None), "status": "ok", "coverage": load_json(path)}
    except (IsobenchError, OSError) as exc:
        return failed("harness_error", f"the tracer's report is unreadable: {exc}")


def _tail(path: Path, limit: int = STDERR_TAIL) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


class Job:
    """The test's files and the sandbox of one measure job (or smoke run), under ``scratch``:
    ``code/`` (the test, the harness, the sandbox launcher: read-only to the test) and ``data/``
    (the reference result and one folder per round: the only places the test may write)."""

    def __init__(
        self,
        generator: Path,
        scratch: Path,
        settings: Settings,
        extra_path: tuple[str, ...] = (),
        sandbox: SandboxSettings | None = None,
        runner: Runner | None = None,
        device_env: dict | None = None,
    ):
        scratch = Path(scratch).resolve()
        if scratch.exists():
            shutil.rmtree(scratch)
        self.code, self.data = scratch / "code", scratch / "data"
        self.code.mkdir(parents=True)
        self.data.mkdir()
        text = Path(generator).read_text(encoding="utf-8", errors="replace")
        self.contract = contracts.detect(text) if settings.contract == "auto" else settings.contract
        self.module = self.code / "perf_test.py"
        shutil.copyfile(generator, self.module)  # generator.py itself is never touched
        # the workers: standard library only, so that any revision's Python runs them
        for worker in (harness, script_runner, sandbox_exec, tracer):
            shutil.copyfile(worker.__file__, self.code / Path(worker.__file__).name)
        self.prefix = self.data / "reference"  # a command-line script's --prefix / --file_prefix
        self.references: list[Path] | None = None  # what base's --reference run stored (script contracts)
        self.settings, self.extra_path = settings, extra_path
        self.device_env = dict(device_env or {})  # CUDA_VISIBLE_DEVICES of the GPU slot the job holds
        self.sandbox = Sandbox(
            sandbox or SandboxSettings(),
            runner or Runner(),
            self.code,
            self.data,
            device=self.device_env.get("CUDA_VISIBLE_DEVICES"),
        )
        self.reference = self.data / "reference.out"
        self.round_mode = round_mode  # (revision name, round) -> harness mode; an evaluation sets its own

    @contextmanager
    def storing_at(self, folder: Path):
        """Within: a reference run stores (and a check reads) the reference under ``folder``, not the job's; an
        evaluation's candidates store their own results there, away from base's."""
        folder.mkdir(parents=True, exist_ok=True)
        saved = self.reference, self.prefix, self.references
        self.reference, self.prefix = folder / "reference.out", folder / "reference"
        self.references = self._stored_references() or None  # what a reference run stored there before
        try:
            yield self
        finally:
            self.reference, self.prefix, self.references = saved

    def extra_env(self, rev: Revision) -> dict:
        root = rev.worktree.resolve()
        pythonpath = ([str(root)] if rev.on_path else []) + [str(root / p) for p in self.extra_path]
        env = {
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONDONTWRITEBYTECODE": "1",
            "PYTHONHASHSEED": "0",
            "PYTHONUNBUFFERED": "1",
            **self.device_env,
        }
        # compile caches are kept across this job's rounds, never shared between revisions
        if self.sandbox.settings.compile_cache:
            env.update(compile_cache_env(self.compile_cache(rev)))
        return env

    def compile_cache(self, rev: Revision) -> Path:
        return self.data / rev.name / "compile_cache"

    def compile_cache_facts(self, rev: Revision) -> dict | None:
        """What the revision's compile caches hold at the end of the job (files, MB), for its timing file."""
        if not self.sandbox.settings.compile_cache:
            return None
        folder = self.compile_cache(rev)
        files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
        return {
            "persistent_across_rounds": True,
            "variables": sorted(COMPILE_CACHES),
            "files": len(files),
            "mb": round(sum(p.stat().st_size for p in files) / 2**20, 2),
        }

    def read_only(self, rev: Revision) -> list[Path]:
        return [rev.worktree.resolve(), *rev.read_only]

    def harness_cmd(self, rev: Revision, mode: str) -> list[str]:
        s = self.settings
        cmd = [
            rev.python,
            str(self.code / "harness.py"),
            "--module",
            str(self.module),
            "--mode",
            mode,
            "--reference",
            str(self.reference),
            "--warmup",
            str(s.warmup),
            "--warmup-ms",
            str(s.warmup_ms),
            "--repeat",
            str(s.repeat),
        ]
        return cmd + (["--no-cuda"] if s.no_cuda else []) + (["--flush-l2"] if s.flush_l2 else [])

    def _finish(self, report: dict, run: Run) -> dict:
        """Add what the sandbox saw: a broken rule fails an otherwise good round."""
        seen = run.outcome()
        report["sandbox"] = seen.protections
        if seen.violation:
            if report["status"] == "ok" or seen.stopped:
                report = {
                    **failed("sandbox_violation", seen.violation),
                    "sandbox": seen.protections,
                    "env": report.get("env"),
                    "timer": report.get("timer"),
                }
            else:
                report.setdefault("warnings", []).append(seen.violation)
        report["stderr_tail"] = _tail(run.workdir / "stderr.txt")
        report["stdout_tail"] = _tail(run.workdir / "stdout.txt")
        return report

    def command(self, rev: Revision, argv: list[str], workdir: Path) -> Command:
        """``argv`` of one revision, as the sandbox runs it in ``workdir``."""
        return Command(argv, workdir, self.extra_env(rev), self.read_only(rev), rev.python, rev.image)

    def run_sandboxed(self, rev: Revision, argv: list[str], workdir: Path) -> Run:
        """``argv`` of one revision in the sandbox, to its end or the round's time limit."""
        return self.sandbox.run(self.command(rev, argv, workdir), self.settings.timeout_s)

    def round(self, active: list[Revision], k: int, interleave: str) -> dict[str, dict]:
        """Round ``k`` of the revisions still measured: {revision: its report}. ``interleave`` lockstep: their
        processes together, call by call (function contract only); else one after the other."""
        modes = {rev.name: self.round_mode(rev.name, k) for rev in active}
        workdirs = {rev.name: self.data / rev.name / f"round{k}" for rev in active}
        if self.contract == "functions" and interleave_name(interleave) == LOCKSTEP:
            return self.lockstep(active, modes, workdirs)
        return {rev.name: self.run(rev, modes[rev.name], workdirs[rev.name]) for rev in active}

    def run(self, rev: Revision, mode: str, workdir: Path) -> dict:
        """One round of one revision under the job's contract (mode: reference, eqcheck or time); its report."""
        if self.contract == "functions":
            return self.run_function_round(rev, mode, workdir)
        return self.run_script_round(rev, mode, workdir)

    def run_function_round(self, rev: Revision, mode: str, workdir: Path) -> dict:
        """One fresh harness process for one revision (function contract); returns the harness report."""
        out = workdir / "report.json"
        out.unlink(missing_ok=True)
        run = self.run_sandboxed(rev, self.harness_cmd(rev, mode) + ["--out", str(out)], workdir)
        return self._ended(run, out, worker_report)

    def _ended(self, run: Run, out: Path, read) -> dict:
        """The report of a worker's run that wrote ``out`` (``read`` reads it): timed out, crashed or its own."""
        if run.returncode is None:
            report = timed_out(self.settings.timeout_s)
        elif out.exists():
            report = read(out)
        else:
            report = crash(run.exit_code())
        report["wall_s"] = run.wall_s
        return self._finish(report, run)

    def script_cmd(self, rev: Revision, mode: str, reads: Path, out_file: Path, options=()) -> list[str]:
        """A command-line script's run under script_runner (which notes the reference files it reads)."""
        runner = [rev.python, str(self.code / "script_runner.py"), "--watch", str(self.prefix), "--reads"]
        script = contracts.command(self.contract, self.module, mode, self.prefix, out_file)
        return [*runner, str(reads), *options, "--", *script]

    def trace(self, rev: Revision, targets: list[dict], workdir: Path) -> dict:
        """One untimed run of one revision traced for the changed files ``targets`` (tracer.py): a round's
        report whose ``coverage`` is the tracer's report (absent when the run failed before writing it).
        A function-contract test makes one untraced call, then one traced one; a command-line script runs
        once in its timing mode, traced from start to end."""
        workdir.mkdir(parents=True, exist_ok=True)
        spec = self.code / f"coverage_{rev.name}.json"
        spec.write_text(json.dumps(targets), encoding="utf-8")
        functions = self.contract == "functions"
        out = workdir / ("report.json" if functions else "coverage.json")
        out.unlink(missing_ok=True)
        if functions:
            cmd = self.harness_cmd(rev, "coverage") + ["--coverage", str(spec), "--out", str(out)]
        else:
            options = ["--coverage", str(spec), "--coverage-out", str(out)]
            cmd = self.script_cmd(rev, "time", workdir / "reference_reads.txt", workdir / "t.txt", options)
        run = self.run_sandboxed(rev, cmd, workdir)
        return self._ended(run, out, worker_report if functions else tracer_report)

    def _stored_references(self) -> list[Path]:
        folder = self.prefix.parent
        return sorted(p for p in folder.iterdir() if p.name.startswith(self.prefix.name) and p.is_file())

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
        run = self.run_sandboxed(rev, self.script_cmd(rev, run_mode, reads, out_file), workdir)
        stderr = _tail(workdir / "stderr.txt")
        base = {"wall_s": run.wall_s, "env": harness.environment(), "timer": f"script:{self.contract}"}
        report_line = None
        if run.returncode is None:
            return self._finish({**timed_out(self.settings.timeout_s), **base}, run)
        code = run.exit_code() if run.returncode else 0
        warnings: list[str] = []
        script_errors: list[dict] = []
        if self.contract == "isobench_cli":
            stdout = _tail(workdir / "stdout.txt", 65536)
            report_line = contracts.kept_report(contracts.last_json(stdout))
            script_errors = contracts.error_lines(stdout)
            ms, category, error, warnings = contracts.parse_isobench(stdout, rev.name, code, stderr, run_mode)
        elif code != 0:
            ms, (category, error) = None, contracts.classify_exit(code, run_mode, stderr)
        else:
            text = out_file.read_text(errors="replace") if out_file.exists() else ""
            ms, category, error = contracts.parse_gso(text)
        if category is None and mode == "reference":
            self.references = self._stored_references()
            if not self.references:
                category, error = (
                    "store_error",
                    f"the --reference run stored nothing under {self.prefix.name}*",
                )
        if category is None and problem:
            category, error = "no_reference", problem
        read = set(reads.read_text(errors="replace").splitlines()) if reads.exists() else set()
        if category is None and run_mode == "eqcheck" and not read & {str(p) for p in self.references or []}:
            category, error = (
                "eqcheck_skipped",
                "the --eqcheck run never read base's reference "
                f"({', '.join(p.name for p in self.references or [])}), so equivalence was not checked",
            )
        if category:
            report = {**failed(category, error), **base, "samples_ms": [ms] if ms is not None else []}
        else:
            report = {
                "status": "ok",
                "category": None,
                "error": None,
                "samples_ms": [ms],
                "traceback": None,
                "equivalent": True if run_mode == "eqcheck" else None,
                "warnings": warnings,
                **base,
            }
        report["script_report"] = report_line
        report["script_errors"] = script_errors
        return self._finish(report, run)

    def lockstep(self, active: list[Revision], modes: dict, workdirs: dict) -> dict:
        def starter(rev: Revision):
            out = workdirs[rev.name] / "report.json"
            cmd = self.harness_cmd(rev, modes[rev.name]) + ["--lockstep", "--out", str(out)]
            command = self.command(rev, cmd, workdirs[rev.name])
            # a lockstep process may wait on the others: its limit inside covers all of them
            limit = self.settings.timeout_s * (len(active) + 1)
            return lambda: self.sandbox.popen(
                command, limit, stdin=subprocess.PIPE, stdout_pipe=True, cpu=PIN_CPU
            )

        procs = [(rev.name, starter(rev), workdirs[rev.name]) for rev in active]
        reports, runs = lockstep_round(procs, self.settings.repeat, self.settings.timeout_s)
        return {name: self._finish(rep, runs[name]) for name, rep in reports.items()}
