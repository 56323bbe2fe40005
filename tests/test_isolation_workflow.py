"""The workflow with venv environments per SHA and a hostile generated test among honest ones."""

import json

import pytest
import yaml
from conftest import copy_workflow, demo_subset, job_counts, processes_with, snakemake, snakemake_log

from isobench.dataset import read_dataset
from isobench.jsonio import validate

pytestmark = pytest.mark.slow
SECRET = "sk-test-SECRET-isolation-2718281828"
MARKER = "5151.515151"

HOSTILE = f'''
import json, os, sys, time
from demokit.binning import histogram

def setup():
    print("key:", os.environ.get("OPENAI_API_KEY"), file=sys.stderr)
    if os.fork() == 0:
        os.setsid()
        os.execvp("sleep", ["sleep", "{MARKER}"])
    return [float(i % 97) for i in range(20000)]

def experiment(values):
    return histogram(values, [0.0, 25.0, 50.0, 75.0, 100.0])

def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(ref, cur):
    assert ref == cur
'''


def test_venv_per_sha_and_a_hostile_test(tmp_path, demo, monkeypatch):
    _, shas = demo
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    work = copy_workflow(tmp_path)
    _, gen = demo_subset(work, shas, "iso", ("primes", "histogram"), ("primes",))
    (gen / f"{shas['histogram'][:8]}_test_case_generator.py").write_text(HOSTILE)
    main = shas["release"]
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="iso/extractions",
        generators="iso/generators",
        measure={
            "rounds": 2,
            "warmup": 1,
            "warmup_ms": 0,
            "repeat": 2,
            "timeout_s": 60,
            "interleave": "rounds",
        },
        env={"mode": "venv", "verify_command": '{python} -c "import demokit"'},
        setup_commands=["{python} -m pip install --quiet wheel"],
        # main's install fails on purpose: its revision is env_failed, everything else goes on
        install_commands=[
            f"test {{sha}} != {main}",
            "{python} -m pip install --quiet --no-deps --no-build-isolation --no-index {worktree}",
        ],
    )
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    envs = sorted((work / "results" / "demo" / "_envs").glob("*.json"))
    needed = {shas["primes"], shas["histogram"], main} | {
        json.loads((work / "results" / "demo" / shas[k] / "extraction.json").read_text())["base_commit"]
        for k in ("primes", "histogram")
    }
    assert {p.stem for p in envs} == needed  # one environment per SHA, main's shared by both commits
    assert snakemake_log(proc).count("rule env:") == len(needed)
    markers = {p.stem: json.loads(p.read_text()) for p in envs}
    assert markers[main]["status"] == "failed" and "install command exited with 1" in markers[main]["error"]
    assert all(
        m["status"] == "ok" and "/venv/bin/python" in m["python"] for s, m in markers.items() if s != main
    )

    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    for r in rows.values():
        validate(r, "record", r["instance_id"])
    primes = rows[shas["primes"]]
    assert primes["status"] == "ok" and primes["comparisons"]["base_head"]["speedup"] > 1
    assert primes["revisions"]["main"]["category"] == "env_failed"
    timing = json.loads((work / "results" / "demo" / shas["primes"] / "timing_head.json").read_text())
    assert timing["python"] == markers[shas["primes"]]["python"] and timing["sandbox"]["env_allowlist"]

    hostile = rows[shas["histogram"]]
    assert hostile["revisions"]["base"]["category"] == "sandbox_violation"
    assert hostile["revisions"]["head"]["category"] == "sandbox_violation"
    assert hostile["revisions"]["main"]["category"] == "env_failed"
    assert processes_with(MARKER) == []
    for path in (work / "results").rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path

    # Nothing to do on a second run: no environment is built again.
    before = {p: p.stat().st_mtime for p in envs}
    proc = snakemake(work)
    assert proc.returncode == 0 and "env" not in job_counts(proc)
    assert {p: p.stat().st_mtime for p in envs} == before
