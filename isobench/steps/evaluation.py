"""The evaluation rules: one job per (instance, model), the run's evaluations.jsonl, and its report."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..evaluate import job as ej
from ..evaluate import report as er
from ..evaluate.rows import attempt_row, calibration_of
from ..jsonio import load_json, validate, write_json, write_valid
from ..measure.job import Revision
from ..measure.machine import ran_on
from ..measure.rounds import not_run
from ..measure.runners import Runner
from ..secrecy import redact, secret_values
from .common import log, now_iso


def evaluate_job_step(smk) -> None:
    spec = load_json(smk.input.spec)
    folder = Path(smk.input.spec).parent
    out_dir = Path(smk.output.candidates)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    p = smk.params
    settings, recorded, overrides = ej.settings_of(spec)
    analysis = ej.analysis_of(spec, p.analysis)
    runner = Runner.from_config(p.runner)
    if overrides:
        log.debug("measurement: the record's settings, with the evaluation's %s over them", overrides)
    stamp = {
        "settings": settings.as_dict(),
        "contract": settings.contract,
        "recorded": recorded,
        "overrides": overrides,
        "measured_at": now_iso(),
        "ran_on": ran_on(),
    }
    timings: dict = {}
    cands: list = []
    try:
        mirror = ej.ensure_repository(spec)
        revisions, cands = ej.prepare(spec, folder, mirror, p.env, runner)
        measured = sum(c.revision is not None for c in cands)
        if not measured:
            raise NothingToMeasure(
                "no candidate of this job applied and built: base and head were not measured"
            )
        what = f"{spec['instance_id']} for {spec['model']}: base, head and {measured} candidate(s)"
        log.debug("evaluating %s", what)
        timings, placed = ej.measure(
            spec, folder, revisions, cands, settings=settings, analysis=analysis, sandbox=p.sandbox,
            runner=runner, gpu_cfg=p.gpu, python_path=p.python_path,
        )  # fmt: skip
        stamp.update(gpu_slot=placed["gpu_slot"], warnings=placed["warnings"])
        stamp.update({k: (timings.get("base") or {}).get(k) for k in ("interleave", "rounds_stop")})
    except NothingToMeasure as exc:
        log.info("%s", exc)
        stamp["error"] = str(exc)
    except Exception as exc:  # noqa: BLE001  the repository or a tree cannot be had: every attempt says so
        unavailable = isinstance(exc, ej.RepositoryUnavailable)
        log.warning("not measured: %s", exc)
        stamp["failure"] = "repo_unavailable" if unavailable else "job_failed"
        stamp["error"] = str(exc) if unavailable else f"{type(exc).__name__}: {exc}"
    write_timings(smk, spec, folder, out_dir, timings, stamp, settings)
    guards = guard_results(spec, cands, timings, folder, settings, p, runner)
    rows = attempt_rows(spec, cands, timings, analysis, stamp, guards, folder, out_dir)
    calibration = None
    if spec["calibration"] and timings:
        calibration = calibration_of(cands, timings, analysis, spec["settings"]["success_p"])
    job = {
        "schema_version": 1,
        "run_id": spec["run_id"],
        "instance_id": spec["instance_id"],
        "model": spec["model"],
        "rows": rows,
        "measurement": stamp,
        "calibration": calibration,
    }
    write_valid(smk.output.job, job, "evaluation_job")
    log.info(
        "evaluated %s for %s: %s",
        spec["instance_id"],
        spec["model"],
        "; ".join(
            f"attempt {r['attempt']} {r['status']}" + (f" ({r['verdict']})" if r["verdict"] else "")
            for r in rows
        )
        or "no attempt",
    )
    shutil.rmtree(folder / "trees", ignore_errors=True)


class NothingToMeasure(Exception):
    """Every candidate of the job failed to apply or build: there is nothing to time base and head against."""


def write_timings(smk, spec, folder, out_dir, timings, stamp, settings) -> None:
    """The timing files of base and head (rule outputs) and of each candidate (and main) under candidates/; a job
    that measured nothing still writes base's and head's, saying why."""
    secrets = secret_values()
    for name, t in timings.items():
        t = redact(t, secrets)
        validate(t, "timing", f"{folder}: timing of {name}")
        own = name in ("base", "head")
        write_json(getattr(smk.output, f"timing_{name}") if own else out_dir / name / "timing.json", t)
    for name in ("base", "head"):
        if name not in timings:
            sha = spec["record"][f"{name}_commit"]
            failure = stamp.get("failure", "job_failed")
            t = not_run(
                Revision(name, sha, Path(".")), failure, stamp.get("error") or "not measured", settings
            )
            validate(t, "timing", f"{folder}: timing of {name}")
            write_json(getattr(smk.output, f"timing_{name}"), t)


def guard_results(spec, cands, timings, folder, settings, p, runner) -> dict:
    """{candidate: None when the guard tests pass, else why not}, for every candidate measured correct."""
    selection = spec["settings"].get("guard_tests")
    out = {}
    for c in cands if selection and timings else []:
        if c.revision is not None and (timings.get(c.name) or {}).get("status") == "ok":
            out[c.name] = ej.guard_tests(selection, c, folder, settings, p.sandbox, runner, p.python_path)
    return out


def attempt_rows(spec, cands, timings, analysis, stamp, guards, folder, out_dir) -> list[dict]:
    """One evaluation per attempt, each validated and written as candidates/attempt-<n>/evaluation.json."""
    by_digest = {c.digest: c for c in cands}
    rows, first, known = [], {}, {}
    for a in sorted(spec["attempts"], key=lambda a: a["attempt"]):
        cand = by_digest.get(a["digest"])
        guard = guards.get(cand.name) if cand else None
        row = attempt_row(spec, a, cand, first.get(a["digest"]), timings, analysis, stamp, guard, known)
        if "failure" in stamp and not timings:
            row.update(status=stamp["failure"], error=stamp["error"], timed=False)
        first.setdefault(a["digest"], a["attempt"])
        validate(row, "evaluation", f"{folder}: attempt {a['attempt']}")
        write_json(out_dir / f"attempt-{a['attempt']}" / "evaluation.json", row)
        rows.append(row)
    return rows


def evaluations_step(smk) -> None:
    """evaluations.jsonl: exactly one row per prediction read (planning's rows and every job's attempts), each with
    where it was read (from planned.json: a line moved in its file re-measures nothing)."""
    planned = load_json(smk.input.planned)
    rows = list(planned["rows"])
    calibration = []
    where = {(p["instance_id"], p["model"], p["attempt"]): p["prediction"] for p in planned["placed"]}
    for path in smk.input.jobs:
        job = load_json(path)
        for r in job["rows"]:
            read = where.get((r["instance_id"], r["model"], r["attempt"]), {})
            rows.append({**r, "prediction": {**r["prediction"], **read}})
        if job.get("calibration"):
            calibration.append({"instance_id": job["instance_id"], **job["calibration"]})
    rows.sort(
        key=lambda r: (
            r["prediction"]["file"],
            r["prediction"]["line"] or 0,
            r["model"] or "",
            r["attempt"] or 0,
        )
    )
    er.write_jsonl(smk.output.rows, rows)
    write_valid(
        smk.output.calibration,
        {"run_id": planned["run_id"], "instances": calibration},
        "evaluation_calibration",
    )
    log.info("%s: %d rows (%d predictions read)", smk.output.rows, len(rows), planned["predictions"])


def evaluation_report_step(smk) -> None:
    rows = er.read_jsonl(smk.input.rows)
    calibration = load_json(smk.input.calibration)
    table = er.write_report(
        rows, calibration, Path(smk.output.report), smk.params.run_id, smk.params.analysis
    )
    log.debug("%s", table)  # the run's end prints the leaderboards (rules/common.smk)
