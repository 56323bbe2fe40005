"""Numbers are traceable to what wrote them, and the last complete dataset always exists (issue 23): record
seals, the dataset's digest and last complete copy, the measurement cache's digests, --forcerun, and the run
summary of a damaged dataset. The same through real snakemake runs: tests/test_integrity_workflow.py."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES

from isobench.dataset import (
    complete_copy,
    damaged_records,
    protect_dataset,
    read_records,
    write_dataset,
    write_record,
)
from isobench.measure.cache import FORCERUN_ENV, MeasurementCache, forced, forcerun_environment
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit
from isobench.report import run_summary

ROWS = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]


def records(tmp_path) -> list:
    paths = []
    for i, row in enumerate(ROWS):
        paths.append(tmp_path / f"r{i}" / "record.json")
        write_record(paths[-1], row)
    return paths


def test_a_hand_edited_record_is_set_aside_and_the_others_kept(tmp_path, capsys):
    paths = records(tmp_path)
    forged = json.loads(paths[0].read_text())
    forged["human_performance"] = 42.0  # valid JSON, valid schema, wrong number
    paths[0].write_text(json.dumps(forged, indent=2))
    (paths[1].parent / "record_seal.json").unlink()  # a record nothing vouches for
    moved = damaged_records(paths)
    assert [p.relative_to(tmp_path).as_posix().split("-")[0] for p in moved] == [
        "r0/record.json.edited",
        "r1/record.json.unsealed",
    ]
    assert json.loads(moved[0].read_text()) == forged and not paths[0].exists() and not paths[1].exists()
    assert all(p.exists() for p in paths[2:])  # sealed and intact: trusted
    err = capsys.readouterr().err
    assert "edited record (its sha256 differs from record_seal.json" in err
    assert "it is rebuilt from its inputs" in err
    assert damaged_records(paths[2:]) == []


def test_the_last_complete_dataset_is_restored_whatever_happened_to_it(tmp_path, capsys):
    paths = records(tmp_path)
    dataset = tmp_path / "dataset.jsonl"
    copy = tmp_path / "dataset.jsonl.complete"
    assert complete_copy(dataset) == str(copy)
    assert write_dataset(paths, dataset, copy) == 7
    complete = dataset.read_bytes()
    assert copy.read_bytes() == complete and protect_dataset(dataset) is None

    dataset.write_bytes(complete[: len(complete) // 2])  # truncated mid-line
    assert protect_dataset(dataset) == "restored" and dataset.read_bytes() == complete
    assert len(list(tmp_path.glob("dataset.jsonl.damaged-*"))) == 1

    dataset.write_bytes(b"".join(complete.splitlines(keepends=True)[:3]))  # truncated at a line's end
    assert protect_dataset(dataset) == "restored" and len(read_records(dataset)) == 7
    assert len(list(tmp_path.glob("dataset.jsonl.edited-*"))) == 1  # parses, but is not what was written

    rows = read_records(dataset)
    rows[0]["human_performance"] = 42.0  # a line edited by hand
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert protect_dataset(dataset) == "restored" and dataset.read_bytes() == complete
    assert len(list(tmp_path.glob("dataset.jsonl.edited-*"))) == 2

    dataset.unlink()  # deleted (or a job killed while Snakemake had deleted its output)
    assert protect_dataset(dataset) == "restored" and dataset.read_bytes() == complete

    copy.write_text("{}\n")  # the copy damaged too: the dataset stays, the rule runs again
    assert protect_dataset(dataset) == "rebuild" and not copy.exists() and dataset.read_bytes() == complete
    dataset.write_bytes(complete[:100])  # and now nothing complete is left: set aside, rebuilt
    assert protect_dataset(dataset) == "rebuild" and not dataset.exists()
    assert len(list(tmp_path.glob("dataset.jsonl.damaged-*"))) == 2  # nothing is ever deleted
    err = capsys.readouterr().err
    assert "the last complete dataset is restored from dataset.jsonl.complete" in err
    assert "Traceback" not in err


def test_a_run_summary_of_a_damaged_dataset_is_one_line_not_a_traceback(tmp_path):
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text((FIXTURES / "demo_dataset.jsonl").read_text()[:3000])
    text = run_summary(dataset, [], [], [], 0.0)
    assert "the dataset is damaged" in text and "line 1: invalid JSON" in text


FAST = Settings(rounds=2, max_rounds=2, warmup=0, warmup_ms=0, repeat=2, timeout_s=60)
TEST = """
import toy

def setup():
    return 2000

def experiment(n):
    return toy.work(n)

def store_result(result, path):
    open(path, "w").write(str(result))

def load_result(path):
    return int(open(path).read())

def check_equivalence(reference, current):
    assert reference == current
"""


@pytest.fixture
def measured(tmp_path, revisions):
    gen = tmp_path / "generator.py"
    gen.write_text(TEST)
    timings = measure_commit(gen, revisions, tmp_path / "scratch", FAST)
    return {n: {**t, "measurement": {"key": "k", "cached": False}} for n, t in timings.items()}


def test_an_edited_cache_entry_is_measured_again_never_served(tmp_path, measured, caplog):
    cache, key = MeasurementCache(tmp_path / "cache"), "ef" * 32
    cache.put(key, measured)
    assert cache.get(key) == measured
    entry = tmp_path / "cache" / key[:2] / f"{key}.json"
    doc = json.loads(entry.read_text())
    doc["timings"]["head"]["samples_ms"] = [s / 10 for s in doc["timings"]["head"]["samples_ms"]]
    entry.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")  # still a valid entry: forged
    assert cache.get(key) is None
    assert "its sha256 differs from" in caplog.text and "measuring again" in caplog.text
    cache.put(key, measured)  # the fresh measurement replaces it
    assert cache.get(key) == measured
    (tmp_path / "cache" / key[:2] / f"{key}.sha256").unlink()  # an entry of an older cache: no digest
    assert cache.get(key) is None and "no digest beside it" in caplog.text


def test_forcerun_of_the_measure_rule_or_of_its_files_is_seen_by_its_jobs(monkeypatch):
    outputs = ["results/s/c/timing_base.json", "results/s/c/timing_head.json"]
    monkeypatch.delenv(FORCERUN_ENV, raising=False)
    assert not forced("measure", outputs)
    monkeypatch.setenv(FORCERUN_ENV, forcerun_environment({"measure"})[FORCERUN_ENV])
    assert forced("measure", outputs) and not forced("record", ["results/s/c/record.json"])
    monkeypatch.setenv(
        FORCERUN_ENV, forcerun_environment({"./results/s/c/timing_head.json", "prompt"})[FORCERUN_ENV]
    )
    assert forced("measure", outputs) and not forced("measure", ["results/s/other/timing_head.json"])
