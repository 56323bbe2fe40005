"""The evaluator through real snakemake runs: the demo's dataset, taken as a file made elsewhere, scored in a fresh
workflow folder (no results/ of its own) against predictions as agents write them; then a second model's file
added (only its jobs run), then nothing to do. Hostile candidates each meet the rule written for them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import job_counts, snakemake, snakemake_log
from workflow_copy import copy_workflow

from isobench import artifacts
from isobench.evaluate.report import GSO_SUMMARY

GOLD_AND_AGENT = ("isobench__demokit-f38af46", "isobench__demokit-d8b3dfa")


class Patches:
    """Patches against a record's base, made with git in a clone of the demo repository."""

    def __init__(self, repo: Path, where: Path):
        self.tree = where / "clone"
        subprocess.run(["git", "clone", "-q", str(repo), str(self.tree)], check=True)

    def edit(self, base: str, *changes: tuple[str, str, str]) -> str:
        subprocess.run(["git", "-C", str(self.tree), "checkout", "-q", "--detach", base], check=True)
        for path, old, new in changes:
            f = self.tree / path
            text = f.read_text() if f.exists() else ""
            assert old in text, (path, old)
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(text.replace(old, new, 1))
        subprocess.run(["git", "-C", str(self.tree), "add", "-A"], check=True)
        out = subprocess.run(
            ["git", "-C", str(self.tree), "diff", "--cached"], capture_output=True, text=True
        ).stdout
        subprocess.run(["git", "-C", str(self.tree), "reset", "-q", "--hard"], check=True)
        return out


def jsonl(lines) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def rows_of(work: Path, run: str) -> list[dict]:
    path = work / "results" / "evaluations" / run / "evaluations.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def evaluate(work: Path, run: str) -> dict[int, dict]:
    """`snakemake evaluate` with the folder's eval.yaml; the rows of ``run`` by attempt."""
    proc = snakemake(work, "evaluate", "--configfile", "eval.yaml", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return {r["attempt"]: r for r in rows_of(work, run)}


@pytest.fixture(scope="module")
def evaluated(demo_run, demo, tmp_path_factory):
    """A fresh workflow folder, the demo's dataset copied beside it, one predictions file; evaluated once."""
    root = tmp_path_factory.mktemp("evaluate")
    work = copy_workflow(root / "wf")
    dataset = root / "downloaded-dataset.jsonl"  # made elsewhere: not this folder's results/
    shutil.copy(demo_run[0].with_name(demo_run[0].name + ".first-dataset.jsonl"), dataset)
    records = {json.loads(x)["instance_id"]: json.loads(x) for x in dataset.read_text().splitlines()}
    patches = Patches(demo[0], root)
    a, b = (records[i] for i in GOLD_AND_AGENT)
    wrong = patches.edit(
        a["base_commit"], ("demokit/text.py", "words.count(word) for", "words.count(word) + 1 for")
    )
    slow = patches.edit(
        b["base_commit"],
        (
            "demokit/numbers.py",
            "    primes = []\n",
            "    import time\n    time.sleep(0.02)\n    primes = []\n",
        ),
    )
    broken = wrong.replace("        if word not in unique:", "        if word not in seen_words:")
    (work / "preds.jsonl").write_text(
        jsonl(
            [
                {"instance_id": a["instance_id"], "model_name_or_path": "gold", "model_patch": a["patch"]},
                {"instance_id": b["instance_id"], "model_name_or_path": "gold", "model_patch": b["patch"]},
                {"instance_id": a["instance_id"], "model_name_or_path": "agent", "model_patch": wrong},
                '{"instance_id": "isobench__demokit-f38af46", "model_name_or_path": ',  # malformed: line 4
                {"instance_id": b["instance_id"], "model_name_or_path": "agent", "model_patch": slow},
                {"instance_id": b["instance_id"], "model_name_or_path": "agent", "model_patch": ""},
                {"instance_id": a["instance_id"], "model_name_or_path": "agent", "model_patch": broken},
                {
                    "instance_id": "isobench__demokit-0000000",
                    "model_name_or_path": "agent",
                    "model_patch": slow,
                },
            ]
        )
    )
    (work / "eval.yaml").write_text(
        f"evaluations:\n  demo:\n    predictions: preds.jsonl\n    dataset: {dataset}\n"
        "    measure: {rounds: 4, max_rounds: 16}\n"
    )
    proc = snakemake(work, "evaluate", "--configfile", "eval.yaml", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return work, records, patches, proc


def test_demo_evaluation(evaluated):
    work, records, _, proc = evaluated
    rows = rows_of(work, "demo")
    assert len(rows) == 8  # exactly one row per line read, the malformed one included
    by = {(r["model"], (r["instance_id"] or "")[-7:], r["attempt"]): r for r in rows}
    gold = [r for r in rows if r["model"] == "gold"]
    assert all(r["status"] == "evaluated" and r["timed"] for r in gold)
    for r in gold:  # the human's own diff, re-measured beside head in the same job
        assert abs(r["metrics"]["sr_vs_human"]["speedup"] - 1) < 0.15, r["metrics"]["sr_vs_human"]
    # head→candidate for the human's own diff, in the model's jobs and in the calibration jobs: an A/A comparison.
    # Its interval must hold the truth (1) for most of them and must rarely decide against the candidate. How
    # narrow it is depends on the machine, not on the code: alone on this 2-core VM the lower bounds sat at
    # 0.96-0.98, within the whole suite at 0.84-0.90 (a 5-10 % difference between two processes of identical
    # code; the calibration reports such rates to the user), so success by the lower bound is not asserted here.
    cal = json.loads((work / "results/evaluations/demo/calibration.json").read_text())
    selfchecks = [r["metrics"]["sr_vs_human"] for r in gold] + [
        c["gold"]["sr_vs_human"] for c in cal["instances"]
    ]
    assert len(selfchecks) == 4
    assert all(c["ci_low"] <= c["speedup"] <= c["ci_high"] for c in selfchecks), selfchecks
    assert sum(c["verdict"] in ("no_change", "inconclusive") for c in selfchecks) >= 2, selfchecks
    assert sum(c["ci_low"] <= 1.0 <= c["ci_high"] for c in selfchecks) >= 2, selfchecks
    assert sum(c["ci_high"] < 0.95 for c in selfchecks) <= 1, selfchecks
    assert by[("agent", "f38af46", 1)]["status"] == "not_equivalent"
    assert by[("agent", "d8b3dfa", 1)]["verdict"] == "slower"
    assert by[("agent", "d8b3dfa", 1)]["success_decided"] == "failure"
    assert by[("agent", "d8b3dfa", 2)]["status"] == "empty_patch" and not by[("agent", "d8b3dfa", 2)]["timed"]
    broken = by[("agent", "f38af46", 2)]
    assert broken["status"] == "patch_failed" and not broken["timed"]
    assert "patch does not apply" in broken["error"] or "patch failed" in broken["error"]
    assert not (
        work / "results/evaluations/demo/isobench__demokit-f38af46/agent/candidates" / broken["candidate"]
    ).exists()
    bad = next(r for r in rows if r["status"] == "invalid_prediction")
    assert bad["prediction"]["line"] == 4 and "preds.jsonl:4" in bad["error"]
    unknown = next(r for r in rows if r["status"] == "unknown_instance")
    assert unknown["prediction"]["line"] == 8 and "0000000" in unknown["error"]
    assert "preds.jsonl:4" in proc.stderr and "preds.jsonl:8" in proc.stderr  # listed together at planning
    # no dataset job ran: the evaluation read the dataset file, never rebuilt it
    assert not list((work / "results").glob("demo/*/record.json"))
    assert "rule measure:" not in snakemake_log(proc)
    # per attempt: its evaluation.json and the timing files of base, head and the candidate
    job = work / "results/evaluations/demo/isobench__demokit-d8b3dfa/agent"
    assert json.loads((job / "candidates/attempt-1/evaluation.json").read_text())["verdict"] == "slower"
    cand = by[("agent", "d8b3dfa", 1)]["candidate"]
    timing = json.loads((job / "candidates" / cand / "timing.json").read_text())
    assert timing["revision"] == cand and timing["status"] == "ok"
    assert json.loads((job / "timing_base.json").read_text())["revision"] == "base"
    assert "time.sleep" in (job / "candidates" / cand / "applied.diff").read_text()
    # the settings: the record's own, the evaluation's two over them, recorded
    measured = by[("agent", "d8b3dfa", 1)]["measurement"]
    assert (
        measured["overrides"] == {"rounds": 4, "max_rounds": 16} and measured["recorded"]["max_rounds"] == 30
    )
    # calibration: A/A and the human's diff as candidates, apart from the models
    cal = json.loads((work / "results/evaluations/demo/calibration.json").read_text())
    assert len(cal["instances"]) == 2
    assert all(
        c["aa"]["status"] == "evaluated" and c["gold"]["status"] == "evaluated" for c in cal["instances"]
    )


def test_reports(evaluated):
    work = evaluated[0]
    report = work / "results/evaluations/demo/report"
    gso = json.loads((report / "gold.demo.report.json").read_text())
    assert set(gso["summary"]) == set(GSO_SUMMARY)
    assert {"completed_ids", "passed_ids", "opt_base_ids", "opt_commit_ids", "opt_main_ids"} <= set(
        gso["instance_sets"]
    )
    assert gso["summary"]["passed_instances"] == 2
    header = (report / "sweperf.csv").read_text().splitlines()[0].split(",")
    assert {"apply", "correctness", "performance", "human_performance"} <= set(header)
    assert "human_speedup_ratio" in (report / "swefficiency.csv").read_text().splitlines()[0]
    for figure in ("sr_distribution.svg", "candidate_vs_human.svg"):
        assert (report / figure).read_text().startswith("<?xml")
    board = json.loads((report / "leaderboard.json").read_text())
    assert set(board["models"]) == {"gold", "agent"}
    assert board["calibration"]["aa_measured"] == 2
    out = subprocess.run(
        [sys.executable, "-m", "isobench.cli", "leaderboard", str(work / "results/evaluations/demo")],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert out.returncode == 0, out.stderr
    assert "gold" in out.stdout and "calibration" in out.stdout
    # every JSON file of the evaluation has its schema, and is valid (isobench/artifacts.py)
    seen = {}
    for path, schema in artifacts.walk(work / "results"):
        assert schema and artifacts.check(path, schema) is None, path
        seen[schema] = seen.get(schema, 0) + 1
    assert {"evaluation_spec", "evaluation_job", "evaluation", "evaluation_planned", "evaluation_calibration",
            "evaluation_leaderboard", "evaluation_gso_report", "timing"} <= set(seen)  # fmt: skip


def test_second_model_runs_only_its_jobs(evaluated):
    work, records, patches, _ = evaluated
    a = records[GOLD_AND_AGENT[0]]
    # a second model's file: the human's patch with CRLF line ends, and once more unchanged (identical: measured once)
    crlf = a["patch"].replace("\n", "\r\n")
    (work / "preds2.jsonl").write_text(
        jsonl(
            [
                {"instance_id": a["instance_id"], "model_name_or_path": "second", "model_patch": p}
                for p in (crlf, a["patch"])
            ]
        )
    )
    cfg = (
        (work / "eval.yaml")
        .read_text()
        .replace("predictions: preds.jsonl", "predictions: [preds.jsonl, preds2.jsonl]")
    )
    (work / "eval.yaml").write_text(cfg)
    # a dry run with Snakemake's own console (profiles/classic): its plan lists each job's files
    dry = snakemake(
        work, "-n", "--workflow-profile", "profiles/classic", "evaluate", "--configfile", "eval.yaml"
    )
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert job_counts(dry).get("evaluate_job") == 1, dry.stdout[-3000:]
    assert "/second/spec.json" in dry.stdout
    proc = snakemake(work, "evaluate", "--configfile", "eval.yaml", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    second = [r for r in rows_of(work, "demo") if r["model"] == "second"]
    assert [r["attempt"] for r in second] == [1, 2]
    assert second[0]["candidate"] == second[1]["candidate"] and second[1]["duplicate_of"] == 1
    assert len(rows_of(work, "demo")) == 10
    again = snakemake(work, "-n", "evaluate", "--configfile", "eval.yaml")
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-2000:]
    # one attempt's patch edited: only its (instance, model) is measured again
    edited = a["patch"].replace(
        "return dict(Counter(tokenize(text)))", "return dict(Counter(tokenize(text)))  # x"
    )
    assert edited != a["patch"]
    (work / "preds2.jsonl").write_text(
        jsonl(
            [
                {"instance_id": a["instance_id"], "model_name_or_path": "second", "model_patch": p}
                for p in (crlf, edited)
            ]
        )
    )
    proc = snakemake(work, "evaluate", "--configfile", "eval.yaml", timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert job_counts(proc).get("evaluate_job") == 1 and "/second/spec.json" in snakemake_log(proc)
    second = [r for r in rows_of(work, "demo") if r["model"] == "second"]
    assert second[1]["duplicate_of"] is None and second[1]["candidate"] != second[0]["candidate"]


def test_hostile_candidates(evaluated):
    """Each reward hack meets its rule: replaying base's reference (locked away: not_equivalent), replacing the
    clock (the harness's is bound first: no speedup), keeping results across calls (caching_suspect), editing the
    tests (touches_tests: measured, never counted), breaking what the timed test does not see (guard tests)."""
    work, records, patches, _ = evaluated
    a = records[GOLD_AND_AGENT[0]]
    start = "    words = tokenize(text)\n"
    replay = patches.edit(
        a["base_commit"],
        (
            "demokit/text.py",
            start,
            (
                "    import json, os, sys\n"
                "    ref = sys.argv[sys.argv.index('--reference') + 1] if '--reference' in sys.argv else ''\n"
                "    data = os.path.dirname(os.path.dirname(os.path.dirname(ref)))\n"
                "    vault = os.path.join(os.path.dirname(data), 'vault')\n"
                "    for path in (os.path.join(data, 'reference.out'), os.path.join(vault, 'reference.out')):\n"
                "        if os.path.exists(path):\n"
                "            return json.load(open(path))\n"
                "    return {}\n"
            ),
        ),
    )
    clock = patches.edit(
        a["base_commit"],
        (
            "demokit/text.py",
            "import re\n",
            (
                "import re\nimport time as _t\n\n_real = _t.perf_counter_ns\n"
                "_t.perf_counter_ns = lambda: _real() // 1000\n"
                "_t.perf_counter = lambda: _real() / 1e12\n"
            ),
        ),
    )
    cache = patches.edit(
        a["base_commit"],
        ("demokit/text.py", "import re\n", "import re\n\n_CACHE = {}\n"),
        ("demokit/text.py", start, "    if text in _CACHE:\n        return dict(_CACHE[text])\n" + start),
        (
            "demokit/text.py",
            "    return {word: words.count(word) for word in unique}",
            "    _CACHE[text] = {word: words.count(word) for word in unique}\n    return dict(_CACHE[text])",
        ),
    )
    # equal on the timed text (lowercase words), wrong on the repository's own test of tokenize: guard tests catch it
    guard = patches.edit(
        a["base_commit"],
        ("demokit/text.py", 'return re.findall(r"[a-z\']+", text.lower())', "return text.lower().split()"),
    )
    tests = a["patch"] + patches.edit(
        a["base_commit"], ("tests/test_speed.py", "", "def test_fast():\n    assert True\n")
    )
    build = a["patch"] + patches.edit(
        a["base_commit"], ("pyproject.toml", "[project]\n", "[project]\n# faster\n")
    )
    # a compiled source changed where the env mode builds nothing: build_failed, never timed (nor silently dropped)
    compiled = patches.edit(a["base_commit"], ("demokit/fast.c", "", "int fast;\n"))
    (work / "hostile.jsonl").write_text(
        jsonl(
            [
                {
                    "instance_id": a["instance_id"],
                    "model_name_or_path": "hostile",
                    "model_patch": p,
                    "attempt": i,
                }
                for i, p in enumerate((replay, clock, cache, tests, guard, build, compiled), 1)
            ]
        )
    )
    # a test whose result differs run to run: base disagrees with itself, no candidate is charged
    nondet = work.parent / "nondeterministic.jsonl"
    test = "import json, random\n\ndef setup():\n    return 0\n\ndef experiment(x):\n    return random.random()\n"
    test += "\ndef store_result(r, p):\n    json.dump(r, open(p, 'w'))\n"
    test += "\ndef load_result(p):\n    return json.load(open(p))\n"
    test += "\ndef check_equivalence(a, b):\n    assert a == b\n"
    nondet.write_text(json.dumps({**a, "efficiency_test": [test]}) + "\n")
    (work / "nondet.jsonl").write_text(
        jsonl(
            [
                {"instance_id": a["instance_id"], "model_name_or_path": "any", "model_patch": a["patch"]},
                {
                    "instance_id": a["instance_id"],
                    "model_name_or_path": "none-applies",
                    "model_patch": "junk\n",
                },
            ]
        )
    )
    # a record whose repository cannot be had: its rows say so, the other runs go on
    elsewhere = work.parent / "elsewhere.jsonl"
    elsewhere.write_text(json.dumps({**a, "repo": "nowhere/none", "instance_id": "nowhere__none-1"}) + "\n")
    (work / "elsewhere-preds.jsonl").write_text(
        jsonl([{"instance_id": "nowhere__none-1", "model_name_or_path": "any", "model_patch": a["patch"]}])
    )
    with open(work / "eval.yaml", "a") as fh:
        fh.write(
            f"  elsewhere:\n    predictions: elsewhere-preds.jsonl\n    dataset: {elsewhere}\n"
            "    repos: {nowhere/none: /nonexistent/none}\n"
            f"  hostile:\n    predictions: hostile.jsonl\n    dataset: {work.parent / 'downloaded-dataset.jsonl'}\n"
            "    calibration: false\n    guard_tests: tests/test_text.py\n    attempts_per_job: 8\n"
            "    measure: {rounds: 3, max_rounds: 5}\n"
            f"  nondet:\n    predictions: nondet.jsonl\n    dataset: {nondet}\n    calibration: false\n"
            "    measure: {rounds: 2, max_rounds: 2}\n"
        )
    rows = evaluate(work, "hostile")
    assert rows[1]["status"] == "not_equivalent", rows[1]["error"]
    assert rows[2]["status"] == "evaluated"
    assert rows[2]["metrics"]["speedup"]["speedup"] < 2 and "excessive_speedup" not in rows[2]["flags"]
    assert "caching_suspect" in rows[3]["flags"], rows[3]["metrics"]["means_ms"]
    assert "touches_tests" in rows[4]["flags"] and rows[4]["apply"]["test_paths"] == ["tests/test_speed.py"]
    assert (
        rows[4]["status"] == "evaluated"
        and not rows[4]["counted"]
        and rows[4]["success_decided"] == "excluded"
    )
    assert rows[5]["status"] == "guard_tests_failed" and "test_tokenize" in rows[5]["error"], rows[5]["error"]
    assert rows[5]["timed"] and rows[5]["success_decided"] == "failure"
    assert "excessive_speedup" in rows[3]["flags"]  # cached results: far more than 10x base
    assert "touches_build" in rows[6]["flags"] and rows[6]["status"] == "evaluated" and not rows[6]["counted"]
    assert rows[7]["status"] == "build_failed" and not rows[7]["timed"], rows[7]
    assert "demokit/fast.c" in rows[7]["error"] and "env mode none" in rows[7]["error"]
    (row,) = rows_of(work, "elsewhere")
    assert row["status"] == "repo_unavailable" and "/nonexistent/none" in row["error"] and not row["timed"]
    row, junk = sorted(rows_of(work, "nondet"), key=lambda r: r["model"])
    assert row["status"] == "nondeterministic_test" and "nondeterministic" in row["error"]
    # a job none of whose patches applies times nothing at all, base and head included
    assert junk["status"] == "patch_failed" and not junk["timed"]
    job = json.loads(
        (work / "results/evaluations/nondet" / a["instance_id"] / "none-applies/job.json").read_text()
    )
    assert "were not measured" in job["measurement"]["error"]


def test_candidates_get_environments_built_and_verified(demo_run, demo, tmp_path):
    """env mode venv: each candidate's tree gets an environment of its own, installed by the record's install
    commands and verified; one that fails its verification is build_failed and never timed."""
    work = copy_workflow(tmp_path / "wf")
    # an install that needs no index: the tree on the venv's path (a .pth file), as `pip install -e` would put it
    install = (
        '{python} -c "import pathlib, site; '
        "pathlib.Path(site.getsitepackages()[0], 't.pth').write_text('{worktree}')\""
    )
    first = demo_run[0].with_name(demo_run[0].name + ".first-dataset.jsonl")
    a = next(json.loads(x) for x in first.read_text().splitlines() if GOLD_AND_AGENT[0] in x)
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text(json.dumps({**a, "install_commands": [install]}) + "\n")
    patches = Patches(demo[0], tmp_path)
    subprocess.run(
        ["git", "-C", str(patches.tree), "checkout", "-q", "--detach", a["base_commit"]], check=True
    )
    (patches.tree / "demokit" / "series.py").unlink()  # the verification imports it
    subprocess.run(["git", "-C", str(patches.tree), "add", "-A"], check=True)
    broken = (
        a["patch"]
        + subprocess.run(
            ["git", "-C", str(patches.tree), "diff", "--cached"], capture_output=True, text=True
        ).stdout
    )
    subprocess.run(["git", "-C", str(patches.tree), "reset", "-q", "--hard"], check=True)
    preds = [
        {"instance_id": a["instance_id"], "model_name_or_path": "m", "model_patch": p}
        for p in (a["patch"], broken)
    ]
    (work / "preds.jsonl").write_text(jsonl(preds))
    (work / "eval.yaml").write_text(
        "env: {mode: venv, system_site_packages: true, verify_command: '{python} -c \"import demokit.series\"'}\n"
        f"evaluations:\n  venv:\n    predictions: preds.jsonl\n    dataset: {dataset}\n    calibration: false\n"
        "    include_main: true\n    measure: {rounds: 3, max_rounds: 4}\n"
    )
    rows = evaluate(work, "venv")
    assert rows[1]["status"] == "evaluated", rows[1]["error"]
    job = work / "results/evaluations/venv" / GOLD_AND_AGENT[0] / "m"
    timing = json.loads((job / "candidates" / rows[1]["candidate"] / "timing.json").read_text())
    assert timing["python"] == os.path.abspath(job / "envs" / rows[1]["candidate"] / "venv/bin/python")
    assert (
        rows[2]["status"] == "build_failed" and not rows[2]["timed"] and "demokit.series" in rows[2]["error"]
    )
    # the branch tip, measured beside them on request: GSO's opt_main has its numbers
    assert (job / "candidates/main/timing.json").exists() and rows[1]["metrics"]["main_speedup"][
        "speedup"
    ] > 0
    assert rows[1]["metrics"]["gso"]["hm_speedup_patch_main"] is not None
    # the candidates' venv markers have their schema; their installed files and trees are not artifacts of ours
    walked = {path: schema for path, schema in artifacts.walk(work / "results")}
    marker = job / "envs" / rows[1]["candidate"] / "marker.json"
    assert walked[marker] == "env_marker" and artifacts.check(marker, "env_marker") is None
    assert all(schema and artifacts.check(path, schema) is None for path, schema in walked.items()), walked
