"""Reading predictions as agents really write them, and matching them to records: every one of ISO-Bench's 1,078
real vLLM agent runs (../shared/fixtures/isobench-agent-runs), its prediction lines, GSO's K files, patch folders;
vLLM records made from the real extraction files and test scripts the shared fixtures hold."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from isobench.errors import IsobenchError
from isobench.evaluate import plan
from isobench.evaluate.inputs import expand, read_predictions
from isobench.evaluate.instances import Index, read_dataset
from isobench.record import instance_id

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fixtures"
RUNS = SHARED / "isobench-agent-runs" / "vllm"
REAL = SHARED / "isobench-real" / "vllm"
needs_shared = pytest.mark.skipif(
    not RUNS.is_dir() or not REAL.is_dir(), reason="../shared/fixtures not present"
)
VLLM = "vllm-project/vllm"


def vllm_records() -> list[dict]:
    """The records the shared fixtures can make: one per extraction file (the commit format names the parent,
    the PR format does not: git would, but vLLM is not here), with its test script when there is one."""
    scripts = {
        p.name[:8]: p.read_text(errors="replace")
        for p in (REAL / "generators").glob("*_test_case_generator.py")
    }
    out = {}
    for f in sorted((REAL / "extractions-pr").glob("*.json")) + sorted(
        (REAL / "extractions-commit").glob("*.json")
    ):
        d = json.loads(f.read_text())
        head = d["commit_hash"]
        script = scripts.get(head[:8])
        out[head] = {
            "repo": VLLM,
            "instance_id": instance_id(VLLM, head),
            "base_commit": d.get("parent_hash"),
            "head_commit": head,
            "main_commit": None,
            "efficiency_test": [script] if script else [],
            "status": "ok" if script and d.get("parent_hash") else "failed",
            "test_patch": "",
        }
    return list(out.values())


@needs_shared
def test_every_real_agent_run_is_read_and_matched_or_reported(tmp_path):
    preds = read_predictions([RUNS])
    assert len(preds) == 1078  # one per run folder, whatever its state
    models = Counter(p.model for p in preds)
    assert len(models) == 10 and all("/" in m for m in models)
    broken = [p for p in preds if p.problem]
    # the one empty journal.json: read through its prediction line, or reported, never a crash
    empty = [p for p in preds if p.file.endswith("claude_code/default/2025-12-23_04-37-32/vllm_core-0071")]
    assert len(empty) == 1 and (empty[0].problem or empty[0].instance_id)
    assert sum(1 for p in preds if p.patch and p.patch.strip()) == 584
    # attempts: runs of one (model, commit) numbered in timestamp order, never twice
    keys = Counter((p.instance_id, p.model, p.attempt) for p in preds if not p.problem)
    assert max(keys.values()) == 1
    dataset = tmp_path / "vllm.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in vllm_records()))
    index = read_dataset(dataset).index()
    outcomes = Counter()
    for p in preds:
        if p.problem:
            outcomes["invalid"] += 1
            continue
        rec, how = index.match(p)
        if rec is None:
            assert how.startswith("no record") or how.startswith("ambiguous"), how
            outcomes["unknown"] += 1
            continue
        # the journal names the human commit: the record found is that commit's
        if p.hints.get("head"):
            assert rec["head_commit"].startswith(p.hints["head"].lower()), (p.file, how)
        outcomes[how] += 1
    # every run of a readable journal names a human commit the fixtures have an extraction file of
    assert outcomes["head_commit"] == 1078 - len(broken) - outcomes["instance_id"] - outcomes["base_commit"]
    assert outcomes["head_commit"] >= 1000 and sum(outcomes.values()) == 1078


@needs_shared
def test_real_prediction_lines_name_the_base(tmp_path):
    """The 983 prediction.jsonl lines: vllm-project__vllm-<first 7 of the base>; each matched to the record whose
    base it is, or reported (a PR-format record has no base without the repository)."""
    lines = sorted(RUNS.glob("*/*/*/*/prediction.jsonl"))
    assert len(lines) == 983
    preds = read_predictions(lines)
    dataset = tmp_path / "vllm.jsonl"
    records = vllm_records()
    dataset.write_text("".join(json.dumps(r) + "\n" for r in records))
    index = read_dataset(dataset).index()
    found = Counter()
    bases = {r["base_commit"] for r in records if r["base_commit"]}
    for p in preds:
        assert not p.problem, p.problem
        rec, how = index.match(p, "base")
        if rec is not None:
            assert how == "base_commit" and rec["base_commit"].startswith(p.instance_id.rsplit("-", 1)[1])
            found["matched"] += 1
        else:
            assert not any(b.startswith(p.instance_id.rsplit("-", 1)[1]) for b in bases), how
            found["unknown"] += 1
    assert found["matched"] > 100 and found["unknown"] > 0


@needs_shared
def test_planning_real_runs_reports_each_with_its_reason(tmp_path):
    dataset = tmp_path / "vllm.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in vllm_records()) + "{broken\n")
    cfg = plan.with_defaults(
        {"predictions": str(RUNS)}, plan.ROOT and ROOT / "isobench/schemas/config.schema.yaml"
    )
    run = plan.plan_run("vllm", cfg, str(dataset), {}, tmp_path)
    assert run.predictions == 1078
    statuses = Counter(r["status"] for r in run.rows)
    placed = len(run.placed)
    assert statuses["empty_patch"] > 0 and statuses["instance_unusable"] > 0 and placed > 0
    assert sum(statuses.values()) + placed == 1078  # each run a row or an attempt of a job
    assert any("not a JSON line" in p for p in run.problems)  # the dataset's broken line, named
    unusable = next(r for r in run.rows if r["status"] == "instance_unusable")
    assert unusable["error"]
    # the jobs would fetch vLLM from GitHub (not reachable here): planning alone says where from
    spec = next(iter(run.jobs.values()))
    assert spec["repository"]["location"] == "https://github.com/vllm-project/vllm.git"
    assert all(
        len({a["digest"] for a in s["attempts"]}) <= cfg["attempts_per_job"] for s in run.jobs.values()
    )
    # the prediction lines alone, read as ISO-Bench means them (the id names the base)
    cfg = {**cfg, "predictions": str(RUNS / "*/*/*/*/prediction.jsonl"), "id_names": "base"}
    lines = plan.plan_run("vllm", cfg, str(dataset), {}, tmp_path)
    statuses = Counter(r["status"] for r in lines.rows)
    assert lines.predictions == 983 and statuses["unknown_instance"] > 0 and len(lines.placed) > 0
    assert sum(statuses.values()) + len(lines.placed) == 983


def test_gso_k_files_number_attempts_by_file(tmp_path):
    for k in (1, 2, 10):
        (tmp_path / f"preds_run{k}.jsonl").write_text(
            json.dumps({"instance_id": "x__y-1", "model_name_or_path": "m", "model_patch": f"p{k}"}) + "\n"
        )
    paths = expand("preds_run*.jsonl", tmp_path)
    assert [p.name for p in paths] == [
        "preds_run1.jsonl",
        "preds_run2.jsonl",
        "preds_run10.jsonl",
    ]  # natural order
    preds = read_predictions(paths)
    assert [(p.attempt, p.patch) for p in preds] == [(1, "p1"), (2, "p2"), (3, "p10")]


def test_bad_lines_are_rows_naming_file_line_and_field(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps({"instance_id": "a", "model_name_or_path": "m", "model_patch": "x"}),
                "[1, 2]",
                json.dumps({"instance_id": "a", "model_patch": "x"}),
                json.dumps({"instance_id": "a", "model_name_or_path": "m", "model_patch": 3}),
                json.dumps({"instance_id": "a", "model_name_or_path": "m", "model_patch": "y", "attempt": 0}),
                json.dumps({"instance_id": "a", "model_name_or_path": "m", "model_patch": "z", "attempt": 1}),
                "{oops",
            ]
        )
    )
    preds = read_predictions([f])
    assert len(preds) == 7
    problems = {p.line: p.problem for p in preds if p.problem}
    assert "JSON object" in problems[2]
    assert "model_name_or_path" in problems[3]
    assert "model_patch" in problems[4]
    assert "attempt" in problems[5]
    assert "given twice" in problems[6]  # line 1 took attempt 1
    assert "not a JSON line" in problems[7]


def test_patch_folder_and_missing_paths(tmp_path):
    folder = tmp_path / "model-x"
    folder.mkdir()
    (folder / "inst-1.diff").write_text("diff --git a/a b/a\n")
    (folder / "inst-2.patch").write_text("")
    (folder / "notes.txt").write_text("ignored")
    preds = read_predictions([folder])
    assert [(p.instance_id, p.model, p.format) for p in preds] == [
        ("inst-1", "model-x", "patch_folder"),
        ("inst-2", "model-x", "patch_folder"),
    ]
    with pytest.raises(IsobenchError, match="matches no file"):
        expand(["nope/*.jsonl"], tmp_path)


def test_matching_by_id_head_base_and_ambiguity():
    recs = [
        {"instance_id": "o__r-1", "base_commit": "a" * 40, "head_commit": "b" * 40},
        {"instance_id": "o__r-2", "base_commit": "b" * 40, "head_commit": "c" * 40},
        {"instance_id": "o__r-3", "base_commit": "d" * 40, "head_commit": "dd" + "e" * 38},
        {"instance_id": "o__r-4", "base_commit": "f" * 40, "head_commit": "dd" + "9" * 38},
    ]
    index = Index(recs)
    from isobench.evaluate.inputs import Prediction

    def p(iid, **hints):
        return Prediction("f", 1, "x", iid, "m", "x", hints=hints)

    assert index.match(p("o__r-2"))[0]["instance_id"] == "o__r-2"
    # ISO-Bench names the base: bbbbbbb is r-1's head and r-2's base; 7 digits are read as the base
    assert index.match(p("o__r-bbbbbbb"))[0]["instance_id"] == "o__r-2"
    assert index.match(p("o__r-" + "b" * 40))[0]["instance_id"] == "o__r-1"  # a full SHA: the head first
    assert index.match(p("zz", head="c" * 40))[0]["instance_id"] == "o__r-2"
    rec, why = index.match(p("o__r-dd"))  # too short to be a SHA
    assert rec is None and "no record" in why
    rec, why = index.match(p("x", head="dd" + "0" * 5))
    assert rec is None and "no record" in why
    rec, why = index.match(p("o__r-ddeeeee"))
    assert rec["instance_id"] == "o__r-3"
    rec, why = index.match(p("x", head="ddddddd"[:2] + "d" * 5))
    assert rec is None


def test_dataset_lines_that_are_no_record(tmp_path):
    f = tmp_path / "d.jsonl"
    good = {
        "instance_id": "i",
        "repo": "r",
        "base_commit": "a" * 40,
        "head_commit": "b" * 40,
        "efficiency_test": ["x"],
    }
    f.write_text(
        "\n".join(
            [json.dumps(good), json.dumps({**good, "base_commit": "../etc"}), "nope", json.dumps({"x": 1})]
        )
    )
    d = read_dataset(f)
    assert [r["instance_id"] for r in d.records] == ["i"]
    assert len(d.problems) == 3 and "base_commit" in d.problems[0] and f"{f}:2" in d.problems[0]
    with pytest.raises(IsobenchError, match="no such dataset"):
        read_dataset(tmp_path / "missing.jsonl")


def test_jobs_split_past_attempts_per_job_and_share_identical_patches(tmp_path):
    rec = {
        "instance_id": "o__r-1",
        "repo": "o/r",
        "base_commit": "a" * 40,
        "head_commit": "b" * 40,
        "efficiency_test": ["def setup(): pass"],
        "status": "ok",
    }
    (tmp_path / "d.jsonl").write_text(json.dumps(rec) + "\n")
    patch = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+{}\n"
    lines = [
        {"instance_id": "o__r-1", "model_name_or_path": "m", "model_patch": patch.format(i % 5)}
        for i in range(7)
    ]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    schema = ROOT / "isobench/schemas/config.schema.yaml"
    cfg = plan.with_defaults({"predictions": "p.jsonl", "attempts_per_job": 2, "calibration": False}, schema)
    run = plan.plan_run("r", cfg, "d.jsonl", {}, tmp_path)
    assert sorted(Path(f).name for f in run.jobs) == ["m.part1", "m.part2", "m.part3"]
    distinct = [sorted({a["digest"] for a in s["attempts"]}) for s in run.jobs.values()]
    assert [len(d) for d in distinct] == [2, 2, 1] and run.deduplicated == 2
    # identical patches go to the job of their first attempt: attempts 1 and 6 share one
    first = run.jobs[sorted(run.jobs)[0]]
    assert [a["attempt"] for a in first["attempts"]] == [1, 2, 6, 7]
    assert sum(len(s["attempts"]) for s in run.jobs.values()) == 7
    # the same plan again: the same jobs, the same specs (a rerun redoes nothing)
    assert plan.plan_run("r", cfg, "d.jsonl", {}, tmp_path).jobs == run.jobs


def test_a_job_runs_with_the_blocks_of_the_source_its_record_came_from(tmp_path):
    """env, runner and sandbox of an evaluation job are those of the source whose repository the record is; a
    repository that is no source of this workflow takes the top-level blocks (source None)."""
    recs = [
        {
            "instance_id": f"{owner}__r-1",
            "repo": f"{owner}/r",
            "base_commit": "a" * 40,
            "head_commit": "b" * 40,
            "efficiency_test": ["def setup(): pass"],
            "status": "ok",
        }
        for owner in ("o", "elsewhere")
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    patch = "diff --git a/x b/x\n--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n"
    lines = [{"instance_id": r["instance_id"], "model_name_or_path": "m", "model_patch": patch} for r in recs]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = plan.with_defaults(
        {"predictions": "p.jsonl", "calibration": False}, ROOT / "isobench/schemas/config.schema.yaml"
    )
    sources = {
        "other": {"repo": "/src/x", "repo_name": "x/x", "mirror": "results/other/_git/mirror.git"},
        "mine": {"repo": "/src/r", "repo_name": "o/r", "mirror": "results/mine/_git/mirror.git"},
    }
    runs = {"r": plan.plan_run("r", cfg, "d.jsonl", sources, tmp_path)}
    assert plan.source_of(runs, "r", "o__r-1", "m", sources) == "mine"
    assert plan.source_of(runs, "r", "elsewhere__r-1", "m", sources) is None
    assert plan.source_of(runs, "r", "no__such-1", "m", sources) is None
    assert plan.source_of(runs, "nosuchrun", "o__r-1", "m", sources) is None
