"""Real ISO-Bench scripts through the whole workflow, on the project's own demo repository.

Two demo commits get a real ISO-Bench script's text as their pre-generated script (from
../shared/fixtures/isobench-real when present, else the project's own scripts of the same shape): one whose
target module is absent (vllm), one that needs a CUDA device. The third keeps its demo script. The
commits come from a commit-collection file in a folder holding a summary JSON, and from a JSON Lines bundle.
"""

import json
import shutil

import pytest
import yaml
from conftest import FIXTURES, ROOT, copy_workflow, snakemake

from isobench.dataset import read_dataset
from isobench.jsonio import load_json, validate

pytestmark = pytest.mark.slow
REAL_SCRIPTS = ROOT.parent / "shared" / "fixtures" / "isobench-real" / "vllm" / "generators"
OWN = FIXTURES / "formats"


def scripts():
    """(script text, expected error) of the target-not-resolved and the capability cases."""
    if REAL_SCRIPTS.is_dir():
        return (
            (REAL_SCRIPTS / "015069b0_test_case_generator.py").read_text(),
            "No module named 'vllm'",
            (REAL_SCRIPTS / "0ec82edd_test_case_generator.py").read_text(),
            "moe_align_block_size requires CUDA device",
        )
    own = FIXTURES / "cli_scripts"
    return (
        (own / "target_not_resolved.py").read_text(),
        "No module named 'demokit_gpu_ops'",
        (own / "capability_unsupported.py").read_text(),
        "fused_histogram requires CUDA device",
    )


def test_real_scripts_through_the_workflow(tmp_path, demo):
    _, shas = demo
    work = copy_workflow(tmp_path)
    unresolved, unresolved_error, capability, capability_error = scripts()
    folder, generators = work / "iso" / "extractions", work / "iso" / "generators"
    folder.mkdir(parents=True)
    generators.mkdir()
    shutil.copy(OWN / "collection_d8b3dfa732c62d10731f499260fc0b29f213a000.json", folder)
    shutil.copy(OWN / "extraction_summary.json", folder)
    shutil.copy(OWN / "pr_bundle.jsonl", work / "iso")
    (generators / f"{shas['wordfreq'][:8]}_test_case_generator.py").write_text(unresolved)
    (generators / f"{shas['regex'][:8]}_test_case_generator.py").write_text(capability)
    name = f"{shas['primes'][:8]}_test_case_generator.py"
    shutil.copy(ROOT / "demo" / "generators" / name, generators / name)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions=["iso/extractions", "iso/pr_bundle.jsonl"], generators="iso/generators"
    )
    config["sources"]["demo"].setdefault("measure", {}).update(rounds=3, max_rounds=3, repeat=3)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("isobench: warning:")]
    assert len(warnings) == 2, warnings  # the summary file and the bundle's non-extraction line, once each
    assert "extraction_summary.json: not an extraction" in warnings[0] and "pr_bundle.jsonl:4" in warnings[1]

    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    assert set(rows) == {shas["primes"], shas["wordfreq"], shas["regex"]}
    for r in rows.values():
        validate(r, "record", r["instance_id"])
    cases = (
        (shas["wordfreq"], "target_not_resolved", unresolved_error),
        (shas["regex"], "capability_unsupported", capability_error),
    )
    for sha, category, error in cases:
        r = rows[sha]
        assert r["status"] == "failed" and r["test_failed"] == "Yes"
        for name in ("base", "head", "main"):
            rev = r["revisions"][name]
            assert (rev["category"], rev["error"]) == (category, error), (name, rev)
            assert rev["equivalent"] is not True
        timing = load_json(work / "results" / "demo" / sha / "timing_base.json")
        assert timing["contract"] == "isobench_cli" and error in timing["stdout_tail"]
        assert timing["script_report"]["error"] == error
        head = r["revisions"]["head"]  # the script's own word reaches the record: its report, its error lines
        assert json.loads(head["script_report"])["error"] == error
        assert [json.loads(line).get("error") for line in head["script_errors"]] == [error]
        assert r["provenance"]["extraction_file"] == "iso/pr_bundle.jsonl:" + (
            "1" if sha == shas["wordfreq"] else "3"
        )
    # the record of a bundle line carries the PR from its pr_url
    assert rows[shas["wordfreq"]]["instance_id"] == "isobench__demokit-PR-3"

    primes = rows[shas["primes"]]  # intact beside them
    assert primes["status"] == "ok" and primes["test_failed"] == "No"
    assert (
        primes["revisions"]["head"]["equivalent"] is True
        and primes["comparisons"]["base_head"]["speedup"] > 1
    )
    assert primes["instance_id"] == f"isobench__demokit-{shas['primes'][:7]}"
    assert primes["patch_functions"] == ["demokit/numbers.py::primes_below"]
    assert primes["version"].startswith("python3.") and primes["version"].endswith(
        f"-worktree@{shas['primes'][:12]}"
    )
    assert primes["provenance"]["extraction_file"].endswith(
        "collection_d8b3dfa732c62d10731f499260fc0b29f213a000.json"
    )
    assert (
        json.loads((work / "results" / "demo" / shas["primes"] / "extraction.json").read_text())["format"]
        == "commit_collection"
    )

    # records of every shape (coverage, scripts' reports) keep one column type each: they round-trip
    datasets = pytest.importorskip("datasets")
    listed = [rows[k] for k in sorted(rows)]
    assert datasets.Dataset.from_list(listed).to_list() == listed

    again = snakemake(work)  # nothing changed: nothing runs, the split bundle lines are not rewritten
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
