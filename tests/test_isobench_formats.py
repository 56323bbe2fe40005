"""Every input ISO-Bench produces: its three extraction formats, its JSON Lines bundle, the files it leaves
beside them, and its command-line test scripts. The real files (../shared/fixtures/isobench-real) are read
when present; the project's own small files in every format are read always."""

import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from isobench import git
from isobench import plan as planning
from isobench.errors import IsobenchError
from isobench.extraction import _format_facts, bundle_lines, normalize, read_extraction
from isobench.measure import contracts
from isobench.measure.contracts import check_script
from isobench.measure.job import Revision, Settings
from isobench.measure.rounds import not_run
from isobench.pregenerated import find_pregenerated
from isobench.record import build_record

REAL = ROOT.parent / "shared" / "fixtures" / "isobench-real"
OWN = FIXTURES / "formats"
BUNDLE = OWN / "pr_bundle.jsonl"
COLLECTION = OWN / "collection_d8b3dfa732c62d10731f499260fc0b29f213a000.json"
ANALYSIS = {"min_effect": 0.05, "alpha": 0.01, "ci_level": 0.95, "bootstrap": 100, "seed": 0}
HASHES = {
    k: "0"
    for k in (
        "extraction",
        "template",
        "prompt",
        "generator",
        "llm_transcript",
        "timing_base",
        "timing_head",
        "timing_main",
    )
}
META = {"origin": "pregenerated:x", "status": "pregenerated", "error": None, "llm": None}
NOT_RUN = {
    n: not_run(Revision(n, "a" * 40, Path(".")), "env_failed", "x", Settings())
    for n in ("base", "head", "main")
}
needs_real = pytest.mark.skipif(not REAL.is_dir(), reason="../shared/fixtures/isobench-real not present")
REAL_FORMATS = (
    ("vllm/extractions-commit", "commit_extractions_with_apis", 63),
    ("vllm/extractions-pr", "pr_analysis", 99),
    ("single-commit", "commit_collection", 3),
)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def demo_source(extractions):
    return {"repo": "isobench:demo", "extractions": extractions, "commits": [], "main_ref": "main"}


@needs_real
def test_every_real_extraction_file_is_read():
    counts = Counter()
    for folder, fmt, n in REAL_FORMATS:
        files = sorted((REAL / folder).glob("*.json"))
        assert len(files) == n
        for path in files:
            got, data = read_extraction(path)
            assert got == fmt, path
            counts[got] += 1
    assert counts == {"commit_extractions_with_apis": 63, "pr_analysis": 99, "commit_collection": 3}


@needs_real
def test_the_real_bundle_is_read_line_by_line(tmp_path):
    bundle = REAL / "vllm" / "combined_vllm_pr_dataset.filled.jsonl"
    entries, warnings = bundle_lines(bundle)
    assert len(entries) == 99 and warnings == []
    assert {c for _, c, _ in entries} == {p.stem for p in (REAL / "vllm" / "extractions-pr").glob("*.json")}
    for number, commit, line in entries:
        path = tmp_path / f"{commit}.json"
        path.write_text(line)
        fmt, data = read_extraction(path, origin=f"{bundle}:{number}")
        assert fmt == "pr_analysis" and data["commit_hash"] == commit


@needs_real
def test_real_models_na_never_reach_the_prompt():
    seen = Counter()
    for path in sorted((REAL / "vllm" / "extractions-pr").glob("*.json")):
        fmt, data = read_extraction(path)
        _, extra = _format_facts(fmt, data, {"message": ""}, [])
        assert "N/A" not in extra.get("models", [])
        seen["kept" if extra.get("models") else "none"] += 1
    assert seen["none"] >= 48 and seen["kept"] > 0  # 48 files say only "N/A"


@needs_real
def test_every_real_script_is_found_detected_and_checked():
    scripts = sorted((REAL / "vllm" / "generators").glob("*_test_case_generator.py"))
    assert len(scripts) == 96
    for path in scripts:
        text = path.read_text()
        assert contracts.detect(text) == "isobench_cli", path.name
        assert check_script(text, path.name) == "isobench_cli"
        sha8 = path.name.split("_")[0]
        assert find_pregenerated(path.parent, sha8 + "0" * 32) == path


@needs_real
def test_a_folder_as_iso_bench_leaves_it_plans_63_commits_and_warns_once(in_tmp, demo, capsys):
    folder = in_tmp / "extractions"
    shutil.copytree(REAL / "vllm" / "extractions-commit", folder)
    (folder / "extraction_summary.json").write_text(
        json.dumps({"total": 65, "successful": 63, "commits": [{"commit_hash": "0" * 40}]})
    )
    plans = planning.plan_sources(
        {
            "prompt_template": str(ROOT / "prompts" / "test_generator.md"),
            "sources": {"vllm": demo_source(str(folder))},
        },
        prepare=True,
    )
    assert len(plans["vllm"].commits) == 63  # (their commits are not in this repository: each fails alone)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert sum("extraction_summary.json" in line for line in warnings) == 1
    assert "extraction_summary.json: not an extraction" in warnings[0]
    # the commits are vLLM's, not this repository's: said once for all of them, before any work (each ends as a
    # failed record)
    assert len(warnings) == 2 and "source vllm: none of these 63 commits is in its repository" in warnings[1]


def test_own_files_of_every_format_are_read():
    assert read_extraction(COLLECTION)[0] == "commit_collection"
    assert (
        read_extraction(FIXTURES / "b4810b61e1ebebf853a8d70b094c09e99200bd69.json")[0]
        == "commit_extractions_with_apis"
    )
    assert read_extraction(next(FIXTURES.glob("pr_analysis_*.json")))[0] == "pr_analysis"
    entries, warnings = bundle_lines(BUNDLE)
    assert [(n, c[:8]) for n, c, _ in entries] == [(1, "f38af463"), (3, "f7db9fce")]
    assert warnings == [f"{BUNDLE}:4: not an extraction of any known format (no commit_hash); skipped"]


def test_plan_a_folder_and_a_bundle(in_tmp, demo, capsys):
    _, shas = demo
    folder = in_tmp / "extractions"
    folder.mkdir()
    shutil.copy(COLLECTION, folder)
    shutil.copy(OWN / "extraction_summary.json", folder)
    plans = planning.plan_sources(
        {
            "prompt_template": str(ROOT / "prompts" / "test_generator.md"),
            "sources": {"demo": demo_source([str(folder), str(BUNDLE)])},
        },
        prepare=True,
    )
    plan = plans["demo"]
    assert set(plan.commits) == {shas["primes"], shas["wordfreq"], shas["regex"]}
    err = capsys.readouterr().err.splitlines()
    assert sum("extraction_summary.json: not an extraction" in line for line in err) == 1
    assert sum("pr_bundle.jsonl:4: not an extraction" in line for line in err) == 1
    wordfreq = plan.commits[shas["wordfreq"]]
    assert wordfreq.origin == f"{BUNDLE}:1" and wordfreq.base == shas["readme-usage"]
    split = Path(wordfreq.extraction_file)
    assert split.parent == Path("results/demo/_extractions") and json.loads(split.read_text())["pr_date"]
    mtime = split.stat().st_mtime_ns
    planning.plan_sources(
        {
            "prompt_template": str(ROOT / "prompts" / "test_generator.md"),
            "sources": {"demo": demo_source(str(BUNDLE))},
        },
        prepare=True,
    )
    assert split.stat().st_mtime_ns == mtime  # an unchanged line is not rewritten: nothing reruns

    mirror = plan.mirror
    data = normalize(
        source="demo",
        repo_name="o/demokit",
        mirror=mirror,
        commit=shas["wordfreq"],
        extraction_file=split,
        origin=wordfreq.origin,
    )
    assert data["extraction_file"] == f"{BUNDLE}:1" and data["format"] == "pr_analysis"
    assert "models" not in data["extra"] and data["extra"]["perf_command"]  # ["N/A"]: not model-specific
    assert data["pr_number"] == 3
    assert data["patch_functions"] == ["demokit/text.py::word_frequencies"]
    assert data["test_functions"] == ["tests/test_text.py::test_word_frequencies_keeps_first_seen_order"]
    regex = plan.commits[shas["regex"]]
    data = normalize(
        source="demo",
        repo_name="o/demokit",
        mirror=mirror,
        commit=shas["regex"],
        extraction_file=regex.extraction_file,
        origin=regex.origin,
    )
    assert data["extra"]["models"] == ["org/tiny-model"]
    primes = normalize(
        source="demo",
        repo_name="o/demokit",
        mirror=mirror,
        commit=shas["primes"],
        extraction_file=str(folder / COLLECTION.name),
    )
    assert primes["format"] == "commit_collection" and primes["affected_apis"] == ["primes_below"]
    assert primes["warnings"] == [] and primes["pr_number"] is None


def test_broken_bundle_lines_fail_their_commit_naming_file_and_line(in_tmp, demo):
    _, shas = demo
    bundle = in_tmp / "broken.jsonl"
    bundle.write_text(
        json.dumps({"commit_hash": shas["wordfreq"], "commit_subject": 5})
        + "\n"
        + '{"commit_hash": "'
        + shas["regex"]
        + '", "commit_sub\n'
        + "not json at all\n"
    )
    plan = planning.plan_source("demo", demo_source(str(bundle)), prepare=True)
    assert set(plan.commits) == {shas["wordfreq"], shas["regex"]}
    assert plan.warnings == [f"{bundle}:3: not an extraction of any known format (no commit_hash); skipped"]
    for key, message in (
        (shas["wordfreq"], f"{bundle}:1: field commit_subject: expected string"),
        (shas["regex"], f"{bundle}:2: invalid JSON"),
    ):
        c = plan.commits[key]
        with pytest.raises(IsobenchError) as exc:
            normalize(
                source="demo",
                repo_name="r",
                mirror=plan.mirror,
                commit=key,
                extraction_file=c.extraction_file,
                origin=c.origin,
            )
        assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_pr_from_a_merge_commit_on_the_ancestry_path(tmp_path):
    repo = tmp_path / "r"

    def run(*a):
        return subprocess.run(
            ["git", *a], cwd=repo, check=True, capture_output=True, text=True
        ).stdout.strip()

    repo.mkdir()
    run("init", "-q", "-b", "main")
    run("config", "user.email", "t@t")
    run("config", "user.name", "t")
    (repo / "m.py").write_text("def f():\n    return 1\n")
    run("add", "-A")
    run("commit", "-qm", "initial")
    run("checkout", "-qb", "feature")
    (repo / "m.py").write_text("def f():\n    return 2\n")
    run("commit", "-qam", "Speed up f")
    head = run("rev-parse", "HEAD")
    run("checkout", "-q", "main")
    (repo / "other.py").write_text("x = 1\n")
    run("add", "-A")
    run("commit", "-qm", "unrelated")
    run("merge", "-q", "--no-ff", "feature", "-m", "Merge pull request #42 from someone/feature")
    main = run("rev-parse", "HEAD")
    mirror = git.ensure_mirror(str(repo), tmp_path / "m.git")
    assert git.merged_pr(mirror, head, main) == 42
    assert git.merged_pr(mirror, head, head) is None  # not merged into that main
    data = normalize(source="s", repo_name="org/proj", mirror=mirror, commit=head, extraction_file=None)
    assert data["pr_number"] is None and data["patch_functions"] == ["m.py::f"]
    record = build_record(
        extraction=data,
        source_cfg={},
        generator_text="x",
        timings=NOT_RUN,
        main_sha=main,
        hashes=HASHES,
        generator_meta=META,
        template="t",
        analysis=ANALYSIS,
        merged_pr=42,
    )
    assert record["instance_id"] == "org__proj-PR-42" and record["provenance"]["pr_from"] == "merge_commit"
