"""Audit, report, summary and export on a copy of the demo's workflow run (tests/conftest.py: demo_run)."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import snakemake

from isobench import artifacts
from isobench.dataset import read_dataset

pytestmark = pytest.mark.slow
GSO_FIELDS = {
    "instance_id",
    "repo",
    "base_commit",
    "opt_commit",
    "api",
    "prob_script",
    "tests",
    "hints_text",
    "setup_commands",
    "install_commands",
    "created_at",
    "gt_commit_message",
    "gt_diff",
    "arch",
    "instance_image_tag",
}


@pytest.fixture
def work(demo_run, tmp_path) -> Path:
    """A copy of the demo run (workflow, results and caches) to tamper with."""
    dest = tmp_path / "wf"
    shutil.copytree(demo_run[0], dest, symlinks=True)
    return dest


def isobench(work: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "isobench.cli", *args],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def audit_json(work: Path, *args: str, env: dict | None = None) -> tuple[int, dict]:
    proc = isobench(work, "audit", "--json", *args, env=env)
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def a_commit(work: Path, status: str = "ok") -> Path:
    row = next(r for r in read_dataset(work / "results" / "dataset.jsonl") if r["status"] == status)
    return work / "results" / "demo" / row["head_commit"]


def test_audit_of_a_clean_run_passes(work):
    proc = isobench(work, "audit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: OK" in proc.stdout and "7 records, 7 dataset lines" in proc.stdout
    code, report = audit_json(work, "--strict")
    assert code == 0 and report["ok"] and report["findings"] == []
    assert report["counts"] == {"integrity": 0, "schema": 0, "secret": 0, "stale": 0, "missing": 0}
    assert report["failures"] == {"import_error": {"main": 1}, "not_equivalent": {"head": 1, "main": 1}}


def _tamper_generator(work):
    path = a_commit(work) / "generator.py"
    path.write_text(path.read_text() + "# changed after the fact\n")
    return path


def _tamper_timing(work):
    path = a_commit(work) / "timing_head.json"
    timing = json.loads(path.read_text())
    timing["samples_ms"][0] *= 0.5
    path.write_text(json.dumps(timing, indent=2))
    return path


def _tamper_dataset_line(work):
    path = work / "results" / "dataset.jsonl"
    rows = read_dataset(path)
    rows[0]["human_performance"] = 100.0
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _plant_key(work):
    path = a_commit(work) / "logs" / "measure.log"
    with open(path, "a") as fh:
        fh.write("debug: using key sk-ant-api03-" + "Xy7" * 12 + "\n")
    return path


def _plant_escaped_key(work):
    """A key starting a line inside a JSON string: after the escape `\\n`, not after a separator."""
    path = a_commit(work) / "prompt.json"
    meta = json.loads(path.read_text())
    meta["template"] = "first line\nhf_" + "Ab3" * 12  # a string where the schema wants one: only a secret
    path.write_text(json.dumps(meta))
    return path


def _break_marker(work):
    """An artifact no record hashes, edited into what its step never writes: its schema says so."""
    path = next((work / "results" / "demo" / "_envs").glob("*.json"))
    marker = json.loads(path.read_text())
    marker["status"] = "fine"
    path.write_text(json.dumps(marker))
    return path


@pytest.mark.parametrize(
    "tamper,kind",
    [
        (_tamper_generator, "integrity"),
        (_tamper_timing, "integrity"),
        (_tamper_dataset_line, "integrity"),
        (_plant_key, "secret"),
        (_plant_escaped_key, "secret"),
        (_break_marker, "schema"),
    ],
)
def test_audit_fails_naming_the_tampered_artifact(work, tamper, kind):
    path = tamper(work)
    proc = isobench(work, "audit")
    assert proc.returncode == 1, proc.stdout
    assert "verdict: FAILED" in proc.stdout and str(path.relative_to(work)) in proc.stdout
    code, report = audit_json(work)
    assert code == 1 and not report["ok"]
    assert [
        f["kind"] for f in report["findings"] if f["artifact"].startswith(str(path.relative_to(work)))
    ] == [kind]


def test_a_key_of_this_environment_is_found_anywhere_we_wrote(work):
    key = "zz-" + "Q9w" * 10  # no known token shape: found because it is the value of an API key variable
    path = a_commit(work) / "prompt.json"
    path.write_text(
        json.dumps({**json.loads(path.read_text()), "template": key})
    )  # still valid: only a secret
    env = {**__import__("os").environ, "OPENAI_API_KEY": key}
    code, report = audit_json(work, env=env)
    assert code == 1 and report["counts"]["secret"] == 1
    assert "the value of OPENAI_API_KEY (set in this environment) at byte" in report["findings"][0]["detail"]
    assert key not in json.dumps(report)


def test_stale_and_missing_records_are_listed(work):
    template = work / "prompts" / "test_generator.md"
    template.write_text(template.read_text() + "\nOne more instruction.\n")
    (a_commit(work, "failed") / "record.json").unlink()
    code, report = audit_json(work)
    assert code == 0 and report["ok"]  # nothing was tampered with: reported, not failed
    assert report["counts"]["stale"] == 6 and report["counts"]["missing"] == 1
    assert all(
        "changed since the record was built" in f["detail"]
        for f in report["findings"]
        if f["kind"] == "stale"
    )
    code, _ = audit_json(work, "--strict")
    assert code == 1


def test_audit_as_a_snakemake_target(work):
    proc = snakemake(work, "--keep-going", "audit")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((work / "results" / "audit.json").read_text())["ok"]
    assert artifacts.schema_of("audit.json") == "audit"
    assert artifacts.check(work / "results" / "audit.json", "audit") is None
    path = _tamper_dataset_line(work)
    proc = snakemake(work, "--keep-going", "audit")
    assert proc.returncode != 0
    assert "audit failed" in proc.stderr and str(path.relative_to(work)) in proc.stderr


def test_summary_report_and_run_summary(demo_run, work):
    assert "isobench run summary" in demo_run[1].stderr
    assert "records written this run: 7" in demo_run[1].stderr
    err = demo_run[1].stderr
    # counted in commits: main's failure where base and head passed is said apart (it fails no commit)
    assert "  main (the branch tip) failed for 1 of the other commits (import_error 1)" in err
    # per commit: the one failed commit named by its extraction file, its category and the message
    assert "  failed commits: 1 of 7 (not_equivalent 1)" in err
    assert re.search(r"\n    [0-9a-f]{40}\.json: not_equivalent: \S", err), err[-3000:]
    summary = isobench(work, "summary")
    assert summary.returncode == 0, summary.stderr
    lines = summary.stdout.splitlines()
    assert lines[0].split()[:4] == ["commit", "api", "status", "verdict"] and len(lines) == 2 + 7 + 1
    assert "faster 5" in lines[-1] and "not_equivalent" in summary.stdout
    proc = snakemake(work, "--report", "report.html")
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = (work / "report.html").read_text()
    files = {
        name: base64.b64decode(data).decode()
        for name, data in re.findall(
            r'"data_uri": "data:[a-z/+]+;charset=utf8;filename=([\w.]+);base64,([A-Za-z0-9+/=]+)"', html
        )
    }
    assert set(files) == {"speedups.svg", "samples.svg", "summary.html"}
    assert "<svg" in files["speedups.svg"] and "word_frequencies" in files["speedups.svg"]
    assert "<svg" in files["samples.svg"] and "main" in files["samples.svg"]
    assert files["summary.html"].count("<tr>") == 1 + 7 and "faster" in files["summary.html"]
    # the first page is the dataset at a glance: the counts, the figure, the per-commit table, the LLM's part
    assert "<div class='isobench-front'>" in html and "<b>7 commits</b> (6 ok, 1 failed)" in html
    assert "data:image/svg+xml;base64," in html and "<h3>Per commit</h3>" in html
    assert html.count("class='verdict-faster'") >= 5 and "<h3>The LLM</h3>" in html


def test_export_round_trips_through_datasets(work, tmp_path):
    from datasets import Dataset, load_from_disk

    from isobench.features import decode, record_features

    rows = read_dataset(work / "results" / "dataset.jsonl")
    proc = isobench(work, "export", "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    # every column of the record schema in every row (None where a record has no value), free-form values as
    # JSON text: decoded, each row is its record
    full = [{key: r.get(key) for key in record_features()} for r in rows]
    for ds in (
        load_from_disk(str(tmp_path / "out" / "isobench" / "hf")),
        Dataset.from_parquet(str(tmp_path / "out" / "isobench" / "test.parquet")),
    ):
        assert ds.features == record_features() and decode(ds.to_list(), ds.features) == full
    card = (tmp_path / "out" / "isobench" / "README.md").read_text()
    assert card.startswith("---\n") and "holds 7 records" in card
    gso = load_from_disk(str(tmp_path / "out" / "gso" / "hf"))
    ok = [r for r in rows if r["status"] == "ok"]  # benchmark instances only: base and head measured
    assert set(gso.column_names) == GSO_FIELDS and len(gso) == len(ok) == 6
    by_id = {r["instance_id"]: r for r in rows}
    for g in gso.to_list():
        r = by_id[g["instance_id"]]
        assert (g["opt_commit"], g["gt_diff"], g["prob_script"]) == (
            r["head_commit"],
            r["patch"],
            r["efficiency_test"][0],
        )
    perf = Dataset.from_parquet(str(tmp_path / "out" / "swe-perf" / "test.parquet")).to_list()
    assert len(perf) == len(ok)
    for p in perf:
        r = by_id[p["instance_id"]]
        assert (
            p["human_performance"] == r["human_performance"] and p["efficiency_test"] == r["efficiency_test"]
        )
        assert p["duration_changes"][0]["head"] == r["duration_changes"][0]["head"]


def test_stale_when_main_moved_or_settings_changed(work, demo):
    mirror = work / "results" / "demo" / "_git" / "mirror.git"
    subprocess.run(["git", "update-ref", "refs/heads/main", demo[1]["rename"]], cwd=mirror, check=True)
    config = work / "config" / "config.yaml"
    config.write_text(
        config.read_text().replace("    main_ref: main\n", "    main_ref: main\n    measure: {rounds: 9}\n")
    )
    code, report = audit_json(work)
    assert code == 0 and report["ok"]
    details = [f["detail"] for f in report["findings"] if f["kind"] == "stale"]
    assert sum(d.startswith("main was ") for d in details) == 7
    assert sum(d == "measure settings changed: rounds" for d in details) == 7


def _rewrite_provenance(work: Path, head: str, generator: dict | None, origin: str) -> Path:
    """Give a record (and its dataset line) this generator provenance; None: a record of an older version,
    with only the origin string."""
    path = work / "results" / "demo" / head / "record.json"
    record = json.loads(path.read_text())
    record["provenance"].pop("generator", None)
    if generator is not None:
        record["provenance"]["generator"] = generator
    record["provenance"]["generator_origin"] = origin
    path.write_text(json.dumps(record, indent=2))
    dataset = work / "results" / "dataset.jsonl"
    rows = [record if r["head_commit"] == head else r for r in read_dataset(dataset)]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_stale_when_the_llm_changed_read_from_the_generator_provenance(work):
    config = work / "config" / "config.yaml"
    config.write_text(re.sub(r"(?m)^  model: null.*$", "  model: new-model", config.read_text()))
    assert "  model: new-model\n" in config.read_text()
    rows = read_dataset(work / "results" / "dataset.jsonl")
    heads = [r["head_commit"] for r in rows]
    written = rows[4][
        "provenance"
    ]  # as this version writes it: the structure, and the string derived from it
    assert written["generator"]["source"] == "pregenerated" and written["generator"]["model"] is None
    assert written["generator_origin"] == f"pregenerated:{written['generator']['path']}"
    old_model = {"source": "llm", "provider": "openai", "model": "old-model", "path": None}
    new_model = {**old_model, "model": "new-model"}
    # the structure is what counts: a disagreeing origin string is never read beside it
    by_old = _rewrite_provenance(work, heads[0], old_model, "llm:openai/new-model")
    _rewrite_provenance(work, heads[1], new_model, "llm:openai/old-model")
    # a record of an older version has only the string: the audit derives the structure from it
    old_cached = _rewrite_provenance(work, heads[2], None, "cache:openai/old-model")
    _rewrite_provenance(work, heads[3], None, "pregenerated:demo/generators/x_test_case_generator.py")
    code, report = audit_json(work)
    assert code == 0 and report["ok"] and report["counts"]["schema"] == 0, report["findings"]
    changed = sorted(
        (f["kind"], f["artifact"], f["detail"]) for f in report["findings"] if "generated by" in f["detail"]
    )
    detail = "generated by openai/old-model, the config now names openai/new-model"
    assert changed == sorted(("stale", str(p.relative_to(work)), detail) for p in (by_old, old_cached))
    # a wrong structure is a schema violation, never read
    wrong = _rewrite_provenance(work, heads[1], {**new_model, "source": "gpt"}, "llm:openai/new-model")
    code, report = audit_json(work)
    assert code == 1 and not report["ok"]
    assert [f["detail"] for f in report["findings"] if f["artifact"] == str(wrong.relative_to(work))] == [
        f"{wrong.relative_to(work)}: field provenance.generator.source: 'gpt' is not one of "
        "['llm', 'cache', 'pregenerated', 'none']"
    ]
