"""One bad commit never costs the dataset, through real snakemake runs: broken, unknown, duplicated and
missing extractions, an invalid pre-generated script, an unwritable measurement cache, a hand-edited timing
file, a truncated record, and the project folder copied elsewhere."""

import json
import shutil

import pytest
import yaml
from conftest import ROOT, before_jobs, copy_workflow, snakemake

from isobench.cli import main as cli
from isobench.dataset import read_dataset
from isobench.jsonio import load_json, validate, write_json

pytestmark = pytest.mark.slow


def test_bad_commits_become_records_and_nothing_earned_is_lost(tmp_path, demo, capsys):
    _, shas = demo
    (tmp_path / "project").mkdir()
    work = copy_workflow(tmp_path / "project")
    ext, gen = work / "bad" / "extractions", work / "bad" / "generators"
    ext.mkdir(parents=True)
    gen.mkdir()
    for key in ("primes", "regex", "topk"):
        shutil.copy(ROOT / "demo" / "extractions" / f"{shas[key]}.json", ext)
    shutil.copy(
        ROOT / "demo" / "extractions" / f"{shas['regex']}.json", ext / f"{shas['regex'][:8]}-old.json"
    )
    (ext / f"{shas['wordfreq']}.json").write_text(json.dumps({"commit_hash": shas["wordfreq"], "hello": 1}))
    (ext / f"{shas['histogram']}.json").write_text('{"commit_hash": "' + shas["histogram"] + '", "parent_')
    (ext / "extraction_summary.json").write_text(json.dumps({"total": 5}))
    for key in ("primes", "regex", "wordfreq", "histogram"):
        name = f"{shas[key][:8]}_test_case_generator.py"
        shutil.copy(ROOT / "demo" / "generators" / name, gen / name)
    (gen / f"{shas['topk'][:8]}_test_case_generator.py").write_text("def setup(:\n    pass\n")
    (work / "blocker").write_text("a file where the measurement cache folder should be")
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="bad/extractions", generators="bad/generators", commits=["no-such-ref"]
    )
    config["sources"]["demo"].setdefault("measure", {}).update(rounds=3, max_rounds=3, repeat=2)
    config["measure_cache_dir"] = "blocker/measure"
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    proc = snakemake(work)  # no --keep-going needed: no job fails
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    before_work = before_jobs(err)  # every planning problem, one line each, before any work
    for needle in (
        "extraction_summary.json: not an extraction",
        f"-old.json and bad/extractions/{shas['regex']}.json both name commit",
        "commit no-such-ref is not in the repository",
    ):
        assert sum(needle in line for line in before_work.splitlines()) == 1, needle
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    for r in rows.values():
        validate(r, "record", r["head_commit"])
    expected = {
        shas["regex"]: "duplicate_extraction",
        shas["wordfreq"]: "extraction_invalid",
        shas["histogram"]: "extraction_invalid",
        shas["topk"]: "invalid_script",
        "no-such-ref": "commit_not_found",
    }
    assert set(rows) == {shas["primes"], *expected}
    for key, category in expected.items():
        r = rows[key]
        assert r["status"] == "failed" and r["test_failed"] == "Yes", key
        assert {rev["category"] for rev in r["revisions"].values()} == {category}, key
        assert "\n" not in r["revisions"]["head"]["error"]
    assert "syntax error at line 1" in rows[shas["topk"]]["revisions"]["base"]["error"]
    assert rows[shas["topk"]]["efficiency_test"] == ["def setup(:\n    pass\n"]  # the script is kept, not run
    assert rows["no-such-ref"]["base_commit"] is None
    assert rows[shas["primes"]]["status"] == "ok"
    summary = err[err.index("isobench run summary") :]
    for category in set(expected.values()):
        assert category in summary
    # the cache could not be written: a warning, and the timings were kept
    primes = work / "results" / "demo" / shas["primes"]
    assert "measurement cache cannot be written" in (primes / "logs" / "measure.log").read_text()

    # A hand-edited timing file is never laundered into the record, and the audit names it.
    timing = load_json(primes / "timing_head.json")
    write_json(primes / "timing_head.json", {**timing, "samples_ms": [s / 10 for s in timing["samples_ms"]]})
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = load_json(primes / "record.json")
    assert record["revisions"]["head"]["category"] == "tampered" and record["status"] == "failed"
    assert cli(["audit", "-d", str(work)]) == 1
    assert "tampered" in capsys.readouterr().out
    proc = snakemake(
        work,
        "--forcerun",
        "measure",
        "--allowed-rules",
        "measure",
        "record",
        "dataset",
        "llm_summary",
        "report_figures",
        "all",
    )  # the documented way back: measure again
    assert load_json(primes / "record.json")["status"] == "ok", proc.stderr[-2000:]

    # A truncated record is set aside and rebuilt; the dataset is never lost meanwhile.
    (primes / "record.json").write_text((primes / "record.json").read_text()[:100])
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "damaged record" in proc.stderr and list(primes.glob("record.json.damaged-*"))
    assert len(read_dataset(work / "results" / "dataset.jsonl")) == 6
    assert load_json(primes / "record.json")["status"] == "ok"

    # The project folder copied elsewhere: nothing new to do.
    moved = tmp_path / "elsewhere" / "project"
    shutil.copytree(work, moved, symlinks=True)
    proc = snakemake(moved, "-n")
    assert proc.returncode == 0 and "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]
