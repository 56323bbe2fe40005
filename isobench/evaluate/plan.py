"""The plan of an evaluation run, made once per Snakemake run in the main process: predictions read and matched,
the rows of what can never be timed (invalid_prediction, unknown_instance, instance_unusable, empty_patch), and
one job per (instance, model): the spec file its rule reads, rewritten only when its content changes, so that a
rerun redoes only the jobs whose patches, record or settings changed.

Files: ``results/evaluations/<run>/planned.json`` (the planning rows and problems) and, per job,
``results/evaluations/<run>/<instance>/<model>/spec.json``. A model named ``_calibration`` is the per-instance
calibration: an empty change (A/A) and the human's own diff (gold) measured as candidates.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import IsobenchError
from ..git import is_url
from ..jsonio import dumps, validate, write_text_atomic
from ..settings import load_schema
from ..untrusted import commit_key
from . import apply
from .inputs import Prediction, expand, read_predictions
from .instances import Dataset, read_dataset, unusable

ROOT = "results/evaluations"
CALIBRATION = "_calibration"


def key_of(name: str) -> str:
    """A name (model, instance id) as one safe path component, as a commit id becomes one
    (``codex/gpt-4o`` → ``key-codex_gpt-4o-1a2b3c4d``): never a path."""
    return commit_key(name, prefix="key-")


@dataclass
class EvalRun:
    run_id: str
    dataset: str
    rows: list[dict] = field(default_factory=list)  # predictions that reach no job
    problems: list[str] = field(default_factory=list)  # planning problems, listed together
    jobs: dict[str, dict] = field(default_factory=dict)  # job folder -> spec
    placed: list[dict] = field(default_factory=list)  # where each attempt sent to a job was read
    predictions: int = 0
    deduplicated: int = 0  # attempts that share a patch already measured in their job

    @property
    def folder(self) -> str:
        return f"{ROOT}/{self.run_id}"


# What a job uses of its record: a record measured again (new timings, same test and SHAs) re-measures nothing.
RECORD_FIELDS = (
    "repo",
    "instance_id",
    "base_commit",
    "head_commit",
    "main_commit",
    "efficiency_test",
    "test_patch",
    "setup_commands",
    "install_commands",
    "version",
)


def used_fields(record: dict) -> dict:
    prov = record.get("provenance") or {}
    return {
        **{k: record.get(k) for k in RECORD_FIELDS},
        "provenance": {k: prov.get(k) for k in ("measure_settings", "contract", "analysis")},
    }


def shown_path(path: Path, base: Path) -> Path:
    """A path under the project folder relative to it (rows and specs stay the same when the folder moves)."""
    try:
        return path.relative_to(base)
    except ValueError:
        return path


def prediction_facts(p: Prediction) -> dict:
    return {"file": p.file, "line": p.line, "format": p.format, "run_id": p.run_id}


def row(run_id: str, p: Prediction, category: str, error: str | None, record: dict | None = None) -> dict:
    """A row of evaluations.jsonl for a prediction that never reaches a job."""
    return {
        "run_id": run_id,
        "instance_id": (record or {}).get("instance_id") or p.instance_id,
        "model": p.model,
        "attempt": p.attempt,
        "status": category,
        "error": error,
        "prediction": prediction_facts(p),
        "timed": False,
    }


def mirror_for(record: dict, cfg: dict, sources: dict) -> dict:
    """Where the record's repository comes from: the evaluation's ``repos`` map, a source of this workflow whose
    repository it is (its mirror, already made), the record's repo as a path or URL, or GitHub's owner/name."""
    repo = record["repo"]
    location = (cfg.get("repos") or {}).get(repo)
    if location is None:
        for plan in sources.values():
            if repo in (plan.get("repo_name"), plan.get("repo")):
                return {"repo": repo, "location": plan.get("repo"), "mirror": plan["mirror"], "source": True}
        if is_url(repo) or Path(repo).is_absolute():
            location = repo
        elif re.match(r"^[\w.-]+/[\w.-]+$", repo):
            location = f"https://github.com/{repo}.git"
        else:
            location = repo
    return {
        "repo": repo,
        "location": location,
        "mirror": f"{ROOT}/_mirrors/{key_of(repo)}.git",
        "source": False,
    }


def source_of(runs: dict, run_id: str, instance: str, model: str, sources: dict) -> str | None:
    """The workflow source (``sources``: as given to ``plan_evaluations``) whose repository the job's record is:
    its env, runner and sandbox blocks are the job's, so that candidates run as the revisions were measured.
    None when the repository is no source of this workflow (the top-level blocks then)."""
    run = runs.get(run_id)
    spec = run.jobs.get(f"{ROOT}/{run_id}/{instance}/{model}") if run else None
    repository = (spec or {}).get("repository") or {}
    if not repository.get("source"):
        return None
    return next((name for name, s in sources.items() if s["mirror"] == repository["mirror"]), None)


def plan_run(run_id: str, cfg: dict, dataset_path: str, sources: dict, base: Path) -> EvalRun:
    """The plan of one evaluation run (``cfg``: its block of the config, defaults filled in)."""
    run = EvalRun(run_id, dataset_path)
    dataset: Dataset = read_dataset(base / dataset_path)  # an absolute dataset_path stays itself
    dataset.path = str(dataset_path)  # as configured: a project folder moved elsewhere keeps its specs
    run.problems += dataset.problems
    index = dataset.index()
    preds = read_predictions(expand(cfg["predictions"], base))
    preds = [replace(p, file=str(shown_path(Path(p.file), base))) for p in preds]
    run.predictions = len(preds)
    groups: dict[tuple[str, str], list[tuple[Prediction, dict]]] = {}
    used: dict[str, dict] = {}
    for p in preds:
        if p.problem:
            run.rows.append(row(run_id, p, "invalid_prediction", f"{p.where}: {p.problem}"))
            continue
        record, how = index.match(p, cfg["id_names"])
        if record is None:
            run.rows.append(row(run_id, p, "unknown_instance", f"{p.where}: {how}"))
            continue
        bad = unusable(record)
        if bad:
            run.rows.append(row(run_id, p, "instance_unusable", f"{bad[0]}: {bad[1]}", record))
            continue
        if not apply.normalized(p.patch):
            run.rows.append(
                row(run_id, p, "empty_patch", "the patch is empty or null: nothing to time", record)
            )
            continue
        used[record["instance_id"]] = record
        groups.setdefault((record["instance_id"], p.model), []).append((p, {"matched_by": how}))
    for (iid, model), items in sorted(groups.items()):
        _add_jobs(run, cfg, used[iid], model, items, dataset, sources)
    if cfg["calibration"]:
        for _, record in sorted(used.items()):
            _add_job(run, cfg, record, CALIBRATION, CALIBRATION, [], dataset, sources, calibration=True)
    bad = [r for r in run.rows if r["status"] in ("invalid_prediction", "unknown_instance")]
    run.problems += [r["error"] for r in bad]
    return run


def _add_jobs(
    run: EvalRun, cfg: dict, record: dict, model: str, items, dataset: Dataset, sources: dict
) -> None:
    """The jobs of one (instance, model): its distinct patches, ``attempts_per_job`` at most per job (split
    deterministically, by attempt number)."""
    items = sorted(items, key=lambda it: it[0].attempt)
    digests: list[str] = []
    for p, _ in items:
        d = apply.digest(p.patch)
        if d not in digests:
            digests.append(d)
    run.deduplicated += len(items) - len(digests)
    size = cfg["attempts_per_job"]
    parts = [digests[i : i + size] for i in range(0, len(digests), size)]
    for n, part in enumerate(parts, 1):
        chosen = [(p, extra) for p, extra in items if apply.digest(p.patch) in part]
        suffix = f".part{n}" if len(parts) > 1 else ""
        _add_job(run, cfg, record, model, key_of(model) + suffix, chosen, dataset, sources)


def _add_job(run, cfg, record, model, model_key, items, dataset, sources, calibration=False) -> None:
    folder = f"{run.folder}/{key_of(record['instance_id'])}/{model_key}"
    # what is measured only: where a line was read is not (moving a line re-measures nothing; the run's
    # evaluations.jsonl takes it from planned.json)
    attempts = [
        {
            "attempt": p.attempt,
            "format": p.format,
            "matched_by": extra["matched_by"],
            "digest": apply.digest(p.patch),
            "patch": p.patch,
        }
        for p, extra in items
    ]
    run.placed += [
        {
            "instance_id": record["instance_id"],
            "model": model,
            "attempt": p.attempt,
            "job": folder,
            "prediction": prediction_facts(p),
        }
        for p, _ in items
    ]
    run.jobs[folder] = {
        "schema_version": 1,
        "run_id": run.run_id,
        "instance_id": record["instance_id"],
        "model": model,
        "calibration": calibration,
        "attempts": attempts,
        "record": used_fields(record),
        "dataset": {"path": dataset.path, "sha256": dataset.sha256, "line": record["_line"]},
        "repository": mirror_for(record, cfg, sources),
        "settings": {k: cfg[k] for k in ("apply", "guard_tests", "success_p", "include_main", "measure")},
    }


def write_plan(runs: dict[str, EvalRun]) -> None:
    """Each job's spec file, written only when its content changed (its time stamp is what reruns a job), and
    each run's planned.json."""
    for run in runs.values():
        for folder, spec in run.jobs.items():
            validate(spec, "evaluation_spec", str(Path(folder) / "spec.json"))
            _write_if_changed(Path(folder) / "spec.json", dumps(spec) + "\n")
        planned = {
            "run_id": run.run_id,
            "dataset": run.dataset,
            "predictions": run.predictions,
            "rows": run.rows,
            "problems": run.problems,
            "jobs": sorted(run.jobs),
            "placed": run.placed,
            "deduplicated": run.deduplicated,
        }
        validate(planned, "evaluation_planned", str(Path(run.folder) / "planned.json"))
        _write_if_changed(Path(run.folder) / "planned.json", dumps(planned) + "\n")


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text(encoding="utf-8") == text:
            return
    except OSError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def with_defaults(cfg: dict, schema_path) -> dict:
    """An evaluation block with the schema's defaults filled in (Snakemake's validate does not reach into
    ``additionalProperties``)."""
    props = load_schema(str(schema_path))["$defs"]["evaluation"]["properties"]
    return {**{k: v["default"] for k, v in props.items() if "default" in v}, **cfg}


def plan_evaluations(
    config: dict, sources: dict, base: Path, schema_path
) -> tuple[dict[str, EvalRun], list[str]]:
    """Every evaluation run of the config, and one line for each run whose dataset or predictions cannot be read
    at all (``snakemake evaluate`` stops on it; a dataset run goes on). A bad line or record is a row or a
    problem of its run."""
    runs, broken = {}, []
    for run_id, cfg in (config.get("evaluations") or {}).items():
        cfg = with_defaults(cfg, schema_path)
        dataset = cfg.get("dataset") or config["dataset"]
        try:
            runs[run_id] = plan_run(run_id, cfg, dataset, sources, base)
        except IsobenchError as exc:
            broken.append(f"evaluations.{run_id}: {exc}")
    return runs, broken


def print_plan(runs: dict[str, EvalRun], unplanned: list[str] = (), limit: int = 10) -> None:
    """The lines an evaluation prints at the start of a run: what was read, what will run, and every problem
    listed together (the first ``limit``, then their count)."""
    import sys

    for line in unplanned:
        sys.stderr.write(f"isobench: {line} (`snakemake evaluate` stops on it; other targets go on)\n")
    for run in runs.values():
        counts: dict[str, int] = {}
        for r in run.rows:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        extra = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        sys.stderr.write(
            f"isobench: evaluation {run.run_id}: {run.predictions} predictions against {run.dataset}: "
            f"{len(run.jobs)} jobs{f', {run.deduplicated} identical patches measured once' if run.deduplicated else ''}"
            f"{f'; not timed: {extra}' if extra else ''}\n"
        )
        for problem in run.problems[:limit]:
            sys.stderr.write(f"isobench: evaluation {run.run_id}: {problem}\n")
        if len(run.problems) > limit:
            sys.stderr.write(
                f"isobench: evaluation {run.run_id}: ... and {len(run.problems) - limit} more problems\n"
            )
