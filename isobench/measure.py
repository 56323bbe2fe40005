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

import numpy as np

from . import harness
from .jsonio import load_json

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
}


@dataclass(frozen=True)
class Settings:
    rounds: int = 5
    warmup: int = 2
    repeat: int = 10
    timeout_s: float = 600.0
    no_cuda: bool = False

    @classmethod
    def from_config(cls, cfg: dict) -> "Settings":
        return cls(**{k: cfg[k] for k in ("rounds", "warmup", "repeat", "timeout_s", "no_cuda") if k in cfg})


@dataclass(frozen=True)
class Revision:
    name: str
    sha: str
    worktree: Path


def summarize(samples: list[float]) -> dict | None:
    """median, IQR, mean, stdev, n, min, max of samples in ms (None when empty)."""
    if not samples:
        return None
    a = np.asarray(samples, dtype=float)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {
        "n": int(a.size),
        "median": float(med),
        "q1": float(q1),
        "q3": float(q3),
        "iqr": float(q3 - q1),
        "mean": float(a.mean()),
        "stdev": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
    }


def _tail(path: Path, limit: int = STDERR_TAIL) -> str:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def run_round(rev: Revision, mode: str, module: Path, reference: Path, workdir: Path, settings: Settings,
              python: str, pythonpath: list[str]) -> dict:
    """One fresh harness process for one revision; returns the harness report."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "report.json"
    if out.exists():
        out.unlink()
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join([*pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONHASHSEED="0",
        PYTHONUNBUFFERED="1",
    )
    cmd = [python, str(module.parent / "harness.py"), "--module", str(module), "--mode", mode,
           "--reference", str(reference), "--warmup", str(settings.warmup), "--repeat", str(settings.repeat),
           "--out", str(out)]
    if settings.no_cuda:
        cmd.append("--no-cuda")
    stdout_path, stderr_path = workdir / "stdout.txt", workdir / "stderr.txt"
    started = time.monotonic()
    with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=so, stderr=se, start_new_session=True)
        try:
            returncode = proc.wait(timeout=settings.timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            returncode = None
    report = {"status": "failed", "samples_ms": [], "env": None, "timer": None, "equivalent": None,
              "traceback": None}
    if returncode is None:
        report.update(category="timeout", error=f"round killed after {settings.timeout_s:g} s")
    elif out.exists():
        report = load_json(out)
    else:
        report.update(category="crash", error=f"the harness exited with code {returncode} and wrote no report")
    report["wall_s"] = round(time.monotonic() - started, 3)
    report["stderr_tail"] = _tail(stderr_path)
    return report


def measure_commit(generator: Path, revisions: list[Revision], scratch: Path, settings: Settings,
                   python: str = sys.executable, extra_path: tuple[str, ...] = ()) -> dict[str, dict]:
    """Measure every revision of one commit; return {revision name: timing dict}."""
    scratch = Path(scratch).resolve()
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    module = scratch / "perf_test.py"
    shutil.copyfile(generator, module)  # generator.py itself is never touched
    shutil.copyfile(harness.__file__, scratch / "harness.py")
    reference = scratch / "reference.out"
    state = {r.name: {"rounds": [], "report": None, "failed": None, "equivalent": None, "env": None,
                      "timer": None, "wall_s": 0.0} for r in revisions}
    for k in range(settings.rounds):
        for rev in revisions:
            st = state[rev.name]
            if st["failed"] is not None:
                continue
            mode = "time" if k else ("reference" if rev.name == "base" else "eqcheck")
            root = rev.worktree.resolve()
            pythonpath = [str(root)] + [str(root / p) for p in extra_path]
            rep = run_round(rev, mode, module, reference, scratch / rev.name / f"round{k}", settings, python, pythonpath)
            st["wall_s"] += rep.get("wall_s", 0.0)
            st["env"] = rep.get("env") or st["env"]
            st["timer"] = rep.get("timer") or st["timer"]
            if k == 0 and rev.name != "base":
                st["equivalent"] = rep.get("equivalent")
            if rep["status"] != "ok":
                st["failed"] = rep
                if rep.get("category") == "not_equivalent":
                    st["equivalent"] = False
                continue
            st["rounds"].append(rep["samples_ms"])
            st["report"] = rep
    timings = {}
    for rev in revisions:
        st = state[rev.name]
        samples = [s for rnd in st["rounds"] for s in rnd]
        last = st["failed"] or st["report"] or {}
        failed = st["failed"]
        timings[rev.name] = {
            "schema_version": 1,
            "revision": rev.name,
            "sha": rev.sha,
            "status": "ok" if failed is None else "failed",
            "category": None if failed is None else failed.get("category"),
            "error": None if failed is None else failed.get("error"),
            "traceback": None if failed is None else failed.get("traceback"),
            "equivalent": st["equivalent"] if rev.name != "base" else None,
            "samples_ms": samples,
            "rounds_ms": st["rounds"],
            "stats": summarize(samples),
            "unit": "ms",
            "timer": st["timer"],
            "device": "cuda" if st["timer"] == "cuda_event" else "cpu",
            "env": st["env"],
            "settings": {"rounds": settings.rounds, "warmup": settings.warmup, "repeat": settings.repeat,
                         "timeout_s": settings.timeout_s},
            "harness_version": harness.HARNESS_VERSION,
            "wall_s": round(st["wall_s"], 3),
            "stderr_tail": last.get("stderr_tail", ""),
        }
    return timings
