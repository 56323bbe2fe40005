"""An evaluation job's rows: one ``evaluation.json`` per attempt (isobench/schemas/evaluation.schema.json), what
happened to it and every metric (isobench.evaluate.metrics), and the calibration of an instance."""

from __future__ import annotations

from ..measure import harness, lockstep
from ..measure.stats import Analysis
from . import metrics
from .job import Candidate


def status_of(cand: Candidate | None, timings: dict, guard_error: str | None) -> tuple[str, str | None]:
    """(status, error) of a candidate: evaluated, or the first thing that stopped it."""
    if cand is None:
        return "patch_failed", "no candidate"
    if cand.applied is None or cand.applied.status != "applied":
        return "patch_failed", cand.applied.message if cand.applied else "not applied"
    if cand.build_error:
        return "build_failed", cand.build_error
    base = timings.get("base") or {}
    if base.get("status") != "ok":
        if base.get("category") == "nondeterministic":
            return "nondeterministic_test", base.get("error")
        return "base_failed", f"{base.get('category')}: {base.get('error')}"
    t = timings.get(cand.name) or {}
    if t.get("status") != "ok":
        return t.get("category") or "failed", t.get("error")
    if guard_error:
        return "guard_tests_failed", guard_error
    return "evaluated", None


def candidate_metrics(
    cand: Candidate | None, timings: dict, analysis: Analysis, success_p: float, status: str
) -> tuple[dict, list[str]]:
    base, head, main = timings.get("base"), timings.get("head"), timings.get("main")
    t = timings.get(cand.name) if cand and cand.revision is not None else None
    paired = lockstep.paired(base)  # every candidate ran in base's job, as base did
    correct = status == "evaluated"
    m = metrics.attempt_metrics(
        base, head, t, main, analysis=analysis, paired=paired, p=success_p, correct=correct
    )
    flags = metrics.flags(m, base, t, cand.flags or {}) if cand else []
    return m, flags


def attempt_row(
    spec: dict,
    attempt: dict,
    cand: Candidate | None,
    dup_of: int | None,
    timings: dict,
    analysis: Analysis,
    measured_with: dict,
    guard_error: str | None,
    known: dict | None = None,
) -> dict:
    """The evaluation of one attempt. ``known``: what earlier attempts of the job computed, by candidate (attempts
    sharing a patch share its status and metrics: the bootstraps and SWE-Perf's search run once per candidate)."""
    key = cand.name if cand else None
    if known is not None and key in known:
        status, error, m, flags = known[key]
    else:
        status, error = status_of(cand, timings, guard_error)
        m, flags = candidate_metrics(cand, timings, analysis, spec["settings"]["success_p"], status)
        if known is not None:
            known[key] = status, error, m, flags
    counted = status == "evaluated" and not ({"touches_tests", "touches_build"} & set(flags))
    rec = spec["record"]
    applied = cand.applied if cand else None
    return {
        "schema_version": 1,
        "run_id": spec["run_id"],
        "instance_id": spec["instance_id"],
        "model": spec["model"],
        "attempt": attempt["attempt"],
        "status": status,
        "error": error,
        "prediction": {"format": attempt["format"]},  # where it was read: added by the run's evaluations step
        "matched_by": attempt.get("matched_by"),
        "timed": bool(
            cand and cand.revision is not None and (timings.get(cand.name) or {}).get("samples_ms")
        ),
        "candidate": cand.name if cand else None,
        "patch_sha256": attempt["digest"],
        "duplicate_of": dup_of,
        "apply": {
            "status": applied.status if applied else "patch_failed",
            "method": applied.method if applied else None,
            "message": (applied.message if applied else "")[-4000:],
            "files": applied.files if applied else [],
            **(
                cand.flags
                if cand and cand.flags
                else {"touches_tests": False, "touches_build": False, "test_paths": [], "build_paths": []}
            ),
        },
        "metrics": m,
        "verdict": (m["speedup"] or {}).get("verdict"),
        "success_decided": m["success_decided"]
        if counted
        else ("excluded" if status == "evaluated" else "failure"),
        "flags": flags,
        "counted": counted,
        "record": {
            "dataset": spec["dataset"]["path"],
            "dataset_sha256": spec["dataset"]["sha256"],
            "line": spec["dataset"]["line"],
            "repo": rec["repo"],
            "base_commit": rec["base_commit"],
            "head_commit": rec["head_commit"],
        },
        "measurement": measured_with,
        "harness_version": harness.HARNESS_VERSION,
    }


def calibration_of(cands: list[Candidate], timings: dict, analysis: Analysis, success_p: float) -> dict:
    """A/A: an empty change measured as a candidate (a decided faster or slower against base, or a success
    against the human, is a false verdict); gold: the human's own diff applied as a candidate (its SR should be 1)."""
    out = {}
    for c in cands:
        status, error = status_of(c, timings, None)
        m, _ = candidate_metrics(c, timings, analysis, success_p, status)
        out[c.digest] = {
            "status": status,
            "error": error,
            "speedup": m["speedup"],
            "sr_vs_human": m["sr_vs_human"],
            "success_decided": m["success_decided"],
        }
    return out
