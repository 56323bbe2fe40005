"""The evaluation rules: one job per (instance, model), the run's evaluations.jsonl, and its report."""

from __future__ import annotations

import shutil
from pathlib import Path

from ..evaluate import job as ej
from ..evaluate import report as er
from ..evaluate.rows import attempt_row, calibration_of
from ..jsonio import load_json, validate, write_json
from ..measure.containers import Runner
from ..measure.machine import ran_on
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
        log.info("measurement: the record's settings, with the evaluation's %s over them", overrides)
    timings: dict = {}
    cands: list = []
    stamp = {
        "settings": settings.as_dict(),
        "contract": settings.contract,
        "recorded": recorded,
        "overrides": overrides,
        "measured_at": now_iso(),
        "ran_on": ran_on(),
    }
    try:
        mirror = ej.ensure_repository(spec)
        revisions, cands = ej.prepare(spec, folder, mirror, p.env, runner)
        for c in cands:
            if c.applied and c.applied.status != "applied":
                log.info("  %s: patch_failed: %s", c.name, c.applied.message.splitlines()[-1:])
        log.info(
            "evaluating %s for %s: base, head and %d candidate(s), %d to %d rounds",
            spec["instance_id"],
            spec["model"],
            sum(c.revision is not None for c in cands),
            settings.rounds,
            settings.most_rounds,
        )
        timings, placed = ej.measure(
            spec,
            folder,
            revisions,
            cands,
            settings=settings,
            analysis=analysis,
            sandbox=p.sandbox,
            runner=runner,
            gpu_cfg=p.gpu,
            python_path=p.python_path,
        )
        stamp.update(gpu_slot=placed["gpu_slot"], warnings=placed["warnings"])
        stamp.update({k: (timings.get("base") or {}).get(k) for k in ("interleave", "rounds_stop")})
    except (
        Exception
    ) as exc:  # a repository or tree that cannot be had: every attempt says so, nothing is timed
        log.warning("not measured: %s", exc)
        stamp["error"] = f"{type(exc).__name__}: {exc}"
    secrets = secret_values()
    for name, t in timings.items():
        t = redact(t, secrets)
        validate(t, "timing", f"{folder}: timing of {name}")
        target = (
            Path(getattr(smk.output, f"timing_{name}"))
            if name in ("base", "head")
            else out_dir / name / "timing.json"
        )
        write_json(target, t)
    for name in ("base", "head"):
        if name not in timings:
            write_json(
                getattr(smk.output, f"timing_{name}"),
                {"revision": name, "status": "not_run", "error": stamp.get("error")},
            )
    guards = {}
    selection = spec["settings"].get("guard_tests")
    if selection and timings:
        for c in cands:
            if c.revision is not None and (timings.get(c.name) or {}).get("status") == "ok":
                guards[c.name] = ej.guard_tests(
                    selection, c, folder, settings, p.sandbox, runner, p.python_path
                )
    by_digest = {c.digest: c for c in cands}
    rows, first = [], {}
    for a in sorted(spec["attempts"], key=lambda a: a["attempt"]):
        cand = by_digest.get(a["digest"])
        row = attempt_row(
            spec,
            a,
            cand,
            first.get(a["digest"]),
            timings,
            analysis,
            stamp,
            guards.get(cand.name) if cand else None,
        )
        if "error" in stamp and not timings:
            row.update(
                status="repo_unavailable"
                if "mirror" in stamp["error"] or "commits" in stamp["error"]
                else "job_failed",
                error=stamp["error"],
                timed=False,
            )
        first.setdefault(a["digest"], a["attempt"])
        validate(row, "evaluation", f"{folder}: attempt {a['attempt']}")
        write_json(out_dir / f"attempt-{a['attempt']}" / "evaluation.json", row)
        rows.append(row)
    job = {
        "schema_version": 1,
        "run_id": spec["run_id"],
        "instance_id": spec["instance_id"],
        "model": spec["model"],
        "rows": rows,
        "measurement": stamp,
        "calibration": calibration_of(cands, timings, analysis, spec["settings"]["success_p"])
        if spec["calibration"] and timings
        else None,
    }
    write_json(smk.output.job, job)
    for r in rows:
        log.info(
            "  attempt %s: %s%s", r["attempt"], r["status"], f" ({r['verdict']})" if r["verdict"] else ""
        )
    shutil.rmtree(folder / "trees", ignore_errors=True)


def evaluations_step(smk) -> None:
    """evaluations.jsonl: exactly one row per prediction read (planning's rows and every job's attempts)."""
    planned = load_json(smk.input.planned)
    rows = list(planned["rows"])
    calibration = []
    where = {(p["instance_id"], p["model"], p["attempt"]): p["prediction"] for p in planned["placed"]}
    for path in smk.input.jobs:
        job = load_json(path)
        for r in job["rows"]:
            rows.append(
                {
                    **r,
                    "prediction": {
                        **r["prediction"],
                        **where.get((r["instance_id"], r["model"], r["attempt"]), {}),
                    },
                }
            )
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
    write_json(smk.output.calibration, {"run_id": planned["run_id"], "instances": calibration})
    log.info("%s: %d rows (%d predictions read)", smk.output.rows, len(rows), planned["predictions"])


def evaluation_report_step(smk) -> None:
    rows = er.read_jsonl(smk.input.rows)
    calibration = load_json(smk.input.calibration)
    out = Path(smk.output.report)
    table = er.write_report(rows, calibration, out, smk.params.run_id, smk.params.analysis)
    log.info("%s", table)
