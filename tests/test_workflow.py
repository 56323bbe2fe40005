"""The whole workflow, run with snakemake on a copy of the project (slow: about a minute)."""

import json
import shutil

import pytest
import yaml
from conftest import ROOT, copy_workflow, demo_subset, snakemake, snakemake_log

from isobench.dataset import read_dataset
from isobench.demo.history import STEPS
from isobench.jsonio import validate

pytestmark = pytest.mark.slow
KIND = {s.key: s.kind for s in STEPS}


def test_demo_dataset(demo_run, demo):
    work, _ = demo_run
    _, shas = demo
    by_sha = {v: k for k, v in shas.items()}
    rows = read_dataset(work / "results" / "dataset.jsonl")
    assert sorted(by_sha[r["head_commit"]] for r in rows) == sorted(
        s.key for s in STEPS if s.kind in ("perf", "wrong", "noop")
    )
    for r in rows:
        validate(r, "record", r["instance_id"])
        assert r["main_commit"] == shas["release"]
        record = json.loads((work / "results" / "demo" / r["head_commit"] / "record.json").read_text())
        assert record == r
        for name in ("base", "head", "main"):
            validate(
                json.loads(
                    (work / "results" / "demo" / r["head_commit"] / f"timing_{name}.json").read_text()
                ),
                "timing",
                name,
            )
    rows = {by_sha[r["head_commit"]]: r for r in rows}
    for key, r in rows.items():
        if KIND[key] == "perf":
            assert r["human_performance"] > 1.2, (key, r["human_performance"])
            assert (
                r["status"] == "ok"
                and len(r["duration_changes"][0]["base"]) == len(r["duration_changes"][0]["head"]) >= 8 * 10
            )  # the defaults: at least 8 rounds of 10 calls
            assert r["comparisons"]["base_head"]["verdict"] == "faster", (key, r["comparisons"])
            assert r["comparisons"]["base_head"]["ci_low"] > 1
        if r["status"] == "ok":  # the demo's tests run the code their commit changed, all of it
            cov = r["coverage"]
            assert cov["status"] == "exercised" and cov["changed_lines_covered"] == 1.0, (key, cov)
            assert cov["functions_hit"] and not cov["functions_missed"]
            assert {r["place"] for r in cov["imported_from"]} == {"worktree"}
    topk = rows["topk"]
    assert topk["revisions"]["head"]["category"] == "not_equivalent"
    assert topk["revisions"]["head"]["equivalent"] is False and topk["human_performance"] is None
    ma = rows["moving-average"]
    assert [ma["revisions"][n]["status"] for n in ("base", "head", "main")] == ["ok", "ok", "failed"]
    assert ma["revisions"]["main"]["category"] == "import_error" and ma["duration_changes"][0]["main"] == []
    prov = rows["pairwise"]["provenance"]
    assert prov["environment"]["torch"] and prov["generator_origin"].startswith("pregenerated:")
    text = (work / "results" / "dataset.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text


def test_dataset_loads_with_datasets(demo_run):
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset(
        "json", data_files=str(demo_run[0] / "results" / "dataset.jsonl"), split="train"
    )
    assert ds.num_rows == 7


def test_second_run_has_nothing_to_do(demo_run):
    proc = snakemake(demo_run[0])
    assert proc.returncode == 0
    assert "Nothing to be done" in proc.stderr + proc.stdout


def test_template_edit_re_renders_prompts_without_re_measuring(demo_run):
    template = demo_run[0] / "prompts" / "test_generator.md"
    template.write_text(template.read_text() + "\nOne more rule: keep the test short.\n")
    proc = snakemake(demo_run[0], "--dry-run")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "prompt" in out and "record" in out
    assert "rule measure:" not in out and "rule generator:" not in out
    proc = snakemake(demo_run[0])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Nothing to be done" in (snakemake(demo_run[0]).stderr)


def test_lint_and_format(demo_run):
    proc = snakemake(demo_run[0], "--lint")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    import subprocess
    import sys
    from pathlib import Path

    fmt = Path(sys.executable).parent / "snakefmt"
    if not fmt.exists():
        pytest.skip("snakefmt is not installed beside this Python")
    out = subprocess.run([str(fmt), "--check", str(ROOT)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


def test_bad_inputs_are_one_line_errors_and_others_go_on(tmp_path, demo):
    _, shas = demo
    work = copy_workflow(tmp_path)
    keys = ("primes", "histogram", "regex", "wordfreq")
    ext, gen = demo_subset(work, shas, "bad", keys, keys)
    (ext / f"{shas['wordfreq']}.json").write_text('{"commit_hash": "%s", "parent_hash": ' % shas["wordfreq"])
    missing = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b"
    (ext / f"{missing}.json").write_text(
        json.dumps({"commit_hash": missing, "parent_hash": missing, "message": "m", "files_changed": []})
    )
    (gen / f"{shas['regex'][:8]}_test_case_generator.py").write_text("def setup(:\n    pass\n")
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="bad/extractions",
        generators="bad/generators",
        measure={"rounds": 2, "max_rounds": 2, "warmup": 1, "repeat": 2, "timeout_s": 60},
    )
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    proc = snakemake(work)  # every commit ends as a record: no job fails, the dataset is written
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = (
        proc.stderr.splitlines()
    )  # each bad input named: at planning, in its commit's record line, at the end
    assert any(f"{shas['wordfreq']}.json: invalid JSON at line 1" in line for line in lines), lines
    assert any(f"commit {missing} is not in the repository of source demo" in line for line in lines), lines
    assert any(
        f"{shas['regex'][:8]}_test_case_generator.py: syntax error at line 1" in line for line in lines
    ), lines
    assert "Traceback" not in proc.stderr
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    assert {k: rows[shas[k]]["status"] for k in keys} == {
        "primes": "ok",
        "histogram": "ok",
        "regex": "failed",
        "wordfreq": "failed",
    }
    assert rows[missing]["revisions"]["head"]["category"] == "commit_not_found"
    before = {p: p.read_bytes() for p in (work / "results").glob("**/*.json*")}

    # An invalid config value: one line, nothing run, nothing lost.
    proc = snakemake(work, "--config", "diff_budget_chars=5")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        "isobench: config: field diff_budget_chars: 5 is less than the minimum of 1000"
    )
    assert {p: p.read_bytes() for p in before} == before


def test_deleted_timing_or_worktree_is_restored(demo_run, demo):
    work, _ = demo_run
    _, shas = demo
    commit = work / "results" / "demo" / shas["histogram"]
    (commit / "timing_head.json").unlink()
    shutil.rmtree(work / "results" / "demo" / "_worktrees" / shas["histogram"])
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ran = snakemake_log(proc)
    assert ran.count("rule measure:") == 1 and "rule worktree:" not in ran
    assert ran.count("rule record:") == 1 and ran.count("rule dataset:") == 1
    assert json.loads((commit / "timing_head.json").read_text())["status"] == "ok"


def test_isobench_and_gso_style_scripts_through_the_workflow(tmp_path, demo):
    _, shas = demo
    work = copy_workflow(tmp_path)
    ext = work / "cli" / "extractions"
    ext.mkdir(parents=True)
    for key in ("primes", "histogram"):
        shutil.copy(ROOT / "demo" / "extractions" / f"{shas[key]}.json", ext)
    shutil.copytree(ROOT / "tests" / "fixtures" / "contract_generators", work / "cli" / "generators")
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="cli/extractions",
        generators="cli/generators",
        measure={"rounds": 5, "max_rounds": 5, "warmup": 1, "repeat": 1, "timeout_s": 60, "exclusive": False},
    )
    config["gpu"] = {
        "devices": [0, 1, 2],
        "lock_dir": str(tmp_path / "gpu-locks"),
    }  # three GPUs, as named by a user
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(work, gpus=2)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("isobench: GPUs: 2 slot(s), device(s) 0, 1 (gpu.devices, first 2") == 1
    for key in ("primes", "histogram"):  # each measure job held one of the run's two GPUs
        for name in ("base", "head", "main"):
            t = json.loads((work / "results" / "demo" / shas[key] / f"timing_{name}.json").read_text())
            slot = t["gpu_slot"]
            assert slot["pool"] == ["0", "1"] and "--resources gpu=2" in slot["source"], slot
            assert slot["device"] in ("0", "1") and slot["cuda_visible_devices"] == slot["device"]
            assert t["gpu_state"]["available"] is False  # no nvidia-smi here: the fields say so
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    for key, contract in (("primes", "isobench_cli"), ("histogram", "gso_cli")):
        r = rows[shas[key]]
        validate(r, "record", key)
        assert r["provenance"]["contract"] == contract
        assert r["status"] == "ok" and len(r["duration_changes"][0]["base"]) == 5
        assert r["comparisons"]["base_head"]["speedup"] > 1.2
