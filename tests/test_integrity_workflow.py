"""Issue 23 through real snakemake runs on copies of the demo run (tests/conftest.py: demo_run): hand-edited
numbers never reach the dataset (a forged record is rebuilt, a forged cache entry is measured again, the audit
recomputes every figure from the timing files), and the last complete dataset always exists (a truncated
dataset, a damaged record, a kill -9 during the dataset job)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import processes_with, snakemake, snakemake_log

from isobench.dataset import read_dataset

pytestmark = pytest.mark.slow


@pytest.fixture
def work(demo_run, tmp_path) -> Path:
    dest = tmp_path / "wf"
    shutil.copytree(demo_run[0], dest, symlinks=True)
    return dest


def isobench(work: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "isobench.cli", *args]
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=600)


def audit(work: Path) -> tuple[int, dict]:
    proc = isobench(work, "audit", "--json")
    assert proc.stdout, proc.stderr
    return proc.returncode, json.loads(proc.stdout)


def ok_commit(work: Path) -> Path:
    rows = read_dataset(work / "results" / "dataset.jsonl")
    row = max((r for r in rows if r["status"] == "ok"), key=lambda r: r["human_performance"])
    return work / "results" / "demo" / row["head_commit"]


def forge(record: dict) -> dict:
    """2.4x -> 42x: the ratio and the speedup say 42, everything else as it was."""
    record = json.loads(json.dumps(record))
    record["human_performance"] = 42.0
    record["comparisons"]["base_head"]["speedup"] = 42.0
    return record


def test_a_hand_edited_record_is_found_by_the_audit_and_rebuilt_by_the_next_run(work):
    folder = ok_commit(work)
    path = folder / "record.json"
    original = json.loads(path.read_text())
    dataset = work / "results" / "dataset.jsonl"
    # the forged record, and its dataset line made to agree with it: every hash in the chain still matches
    path.write_text(json.dumps(forge(original), indent=2))
    rows = [forge(r) if r["head_commit"] == original["head_commit"] else r for r in read_dataset(dataset)]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, report = audit(work)
    assert code == 1 and not report["ok"]
    found = {f["detail"].split(":")[0] for f in report["findings"] if f["artifact"].endswith("record.json")}
    assert found == {"human_performance", "comparisons.base_head.speedup"}, report["findings"]
    detail = next(f["detail"] for f in report["findings"] if f["detail"].startswith("human_performance"))
    assert f"the record says 42.0, its timing files give {original['human_performance']}" in detail

    proc = snakemake(work)  # a plain rerun: the forged record is set aside and rebuilt, never copied
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "edited record (its sha256 differs from record_seal.json" in proc.stderr
    assert json.loads(path.read_text())["human_performance"] == original["human_performance"]
    line = next(r for r in read_dataset(dataset) if r["head_commit"] == original["head_commit"])
    assert line == original and all(r["human_performance"] != 42.0 for r in read_dataset(dataset))
    assert [p.name.split("-")[0] for p in folder.glob("record.json.*-*")] == ["record.json.edited"]
    code, report = audit(work)  # what was set aside is named until someone has looked at it
    assert code == 1 and {f["detail"].split(":")[0] for f in report["findings"]} == {"set aside by a run"}
    for evidence in report["findings"]:
        (work / evidence["artifact"]).unlink()
    assert audit(work)[0] == 0


def _cache_entry(work: Path, folder: Path) -> Path:
    key = json.loads((folder / "timing_head.json").read_text())["measurement"]["key"]
    return work / ".isobench-cache" / "measure" / key[:2] / f"{key}.json"


def test_a_forged_cache_entry_is_measured_again_and_forcerun_measures_again(work):
    folder = ok_commit(work)
    entry = _cache_entry(work, folder)
    doc = json.loads(entry.read_text())
    forged = [s / 10 for s in doc["timings"]["head"]["samples_ms"]]
    doc["timings"]["head"]["samples_ms"] = forged
    entry.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")  # a valid entry, with forged samples
    (folder / "timing_head.json").unlink()  # its measure job runs again, and asks the cache
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (folder / "logs" / "measure.log").read_text()
    assert "is invalid (its sha256 differs from" in log and "measurement: fresh" in log, log[-2000:]
    head = json.loads((folder / "timing_head.json").read_text())
    assert head["measurement"]["cached"] is False and head["samples_ms"] != forged
    record = json.loads((folder / "record.json").read_text())
    assert record["duration_changes"][0]["head"] == head["samples_ms"]
    assert audit(work)[0] == 0

    # the cache now holds a valid entry; the documented ways to measure again still measure
    for forcerun in (
        ["--forcerun=measure"],
        [f"--forcerun={folder.relative_to(work) / 'timing_base.json'}"],
    ):
        before = head["measurement"]["measured_at"], head["samples_ms"]
        time.sleep(1.1)  # measured_at has a resolution of one second
        # --forcerun=X: the option takes every word after a plain --forcerun (a target there would be forced)
        proc = snakemake(work, *forcerun, str(folder.relative_to(work) / "record.json"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        log = (folder / "logs" / "measure.log").read_text()
        assert "measurement: fresh (forced by --forcerun" in log and "from the measurement cache" not in log
        assert snakemake_log(proc).count("rule measure:") == 1  # this commit's job alone
        head = json.loads((folder / "timing_head.json").read_text())
        assert head["measurement"]["cached"] is False
        assert (head["measurement"]["measured_at"], head["samples_ms"]) != before


def test_a_truncated_dataset_is_restored_without_a_traceback(work):
    dataset = work / "results" / "dataset.jsonl"
    complete = dataset.read_bytes()
    dataset.write_bytes(complete[:30000])
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "damaged dataset" in proc.stderr and "Traceback" not in proc.stderr
    assert dataset.read_bytes() == complete and len(list(dataset.parent.glob("dataset.jsonl.damaged-*"))) == 1
    dataset.write_bytes(complete[:30000])
    (dataset.parent / "dataset.jsonl.complete").unlink()  # no complete copy either: rebuilt from the records
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        "it is rebuilt from the records in this run" in proc.stderr
        and "localrule dataset:" in snakemake_log(proc)
    )
    assert dataset.read_bytes() == complete and "Traceback" not in proc.stderr
    assert "records written this run: 0 (the dataset holds 7" in proc.stderr


def test_a_damaged_record_is_rebuilt_in_the_same_run_and_the_dataset_kept(work):
    folder = ok_commit(work)
    record = folder / "record.json"
    original, stat = record.read_text(), record.stat()
    record.write_text(original[:300])
    os.utime(record, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # damaged in place: older than the dataset
    script = work / "scripts" / "dataset.py"
    script.write_text(script.read_text() + "# edited: the dataset job runs again\n")
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "damaged record" in proc.stderr and list(folder.glob("record.json.damaged-*"))
    assert json.loads(record.read_text()) == json.loads(original)
    rows = read_dataset(work / "results" / "dataset.jsonl")
    assert len(rows) == 7 and json.loads(original) in rows


def test_a_run_killed_during_the_dataset_job_leaves_the_dataset_in_place(work):
    dataset = work / "results" / "dataset.jsonl"
    complete = dataset.read_bytes()
    script = work / "scripts" / "dataset.py"
    text = script.read_text()
    script.write_text("import time\n\ntime.sleep(600)\n" + text)  # the dataset job runs, and never ends
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1"]
    run = subprocess.Popen(
        cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 300
        while not [p for p in processes_with(str(work / ".snakemake" / "scripts")) if p != run.pid]:
            assert run.poll() is None and time.monotonic() < deadline, "the dataset job never started"
            time.sleep(0.2)
        assert not (dataset.parent / "dataset.jsonl.complete").exists()  # Snakemake deleted the rule's output
    finally:
        os.killpg(run.pid, signal.SIGKILL)
        run.wait()
    assert dataset.read_bytes() == complete  # never missing, never partial
    script.write_text(text)
    assert snakemake(work, "--unlock").returncode == 0
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (
        dataset.read_bytes() == complete
        and (dataset.parent / "dataset.jsonl.complete").read_bytes() == complete
    )
