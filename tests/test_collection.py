"""ISO-Bench's commit-collection file (``performance_commits``) read as one commit per entry, a file of another
repository refused per commit, what every input file knows kept in failed records, and generator scripts that
match no planned commit named once at planning. Through real snakemake runs."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake

from isobench.dataset import read_dataset
from isobench.jsonio import load_json

SINGLE = ROOT.parent / "shared" / "fixtures" / "isobench-real" / "single-commit"
VLLM_URL = "https://github.com/vllm-project/vllm"


def project(tmp_path: Path, collection: dict, **source) -> Path:
    work = copy_workflow(tmp_path / "project")
    folder = work / "collected"
    (folder / "extractions").mkdir(parents=True)
    (folder / "generators").mkdir()
    (folder / "extractions" / "vllm_commits.json").write_text(json.dumps(collection, indent=2))
    # ISO-Bench's run summary beside it: not an extraction
    (folder / "extractions" / "extraction_summary.json").write_text(
        json.dumps({"total_commits": len(collection["performance_commits"]), "successful": 3})
    )
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="collected/extractions", generators="collected/generators", **source
    )
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def demo_entries(repo: Path, keys: dict, names: list[str]) -> list[dict]:
    """Collection entries for demo commits as ISO-Bench's collection step writes them (subject, message, date,
    files, apis), from git."""
    out = []
    for name in names:
        sha = keys[name]
        fmt = "%s%x00%B%x00%aI"
        subject, message, date = subprocess.run(
            ["git", "show", "-s", f"--format={fmt}", sha],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\0")[:3]
        files = subprocess.run(
            ["git", "diff", "--name-only", f"{sha}^", sha],
            cwd=repo,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        out.append(
            {
                "commit_hash": sha,
                "subject": f"{subject} (#{100 + len(out)})",
                "message": message,
                "date": date.strip(),
                "files_changed": files,
                "apis": [f"demokit.{name}"],
                "diff_text": None,
            }
        )
    return out


@pytest.mark.skipif(
    not SINGLE.is_dir(), reason="../shared/fixtures (ISO-Bench's real vLLM files) not present"
)
def test_a_vllm_collection_file_gives_one_record_per_commit_with_what_it_says(tmp_path):
    entries = [json.loads(p.read_text()) for p in sorted(SINGLE.glob("*.json"))]
    # bad entries among the good ones: a path for a commit, and no commit at all
    broken = {
        "commit_hash": "../../victim/x",
        "subject": "Broken entry (#7)",
        "message": "m",
        "apis": ["a.b"],
    }
    nameless = {"subject": "no commit here"}
    listed = entries + [broken, nameless]
    collection = {"repo_name": "vllm", "repo_url": VLLM_URL, "performance_commits": listed}
    # hosted on the demo repository, which holds none of vLLM's commits
    work = project(tmp_path, collection, repo_name="vllm-project/vllm")
    (work / "collected" / "generators" / "deadbeef_test_case_generator.py").write_text("print('hi')\n")
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_dataset(work / "results" / "dataset.jsonl")
    assert len(rows) == len(entries) + 1 == 4  # the nameless entry is left out, with a word
    by_head = {r["head_commit"]: r for r in rows}
    bad = next(r for r in rows if r["revisions"]["head"]["category"] == "extraction_invalid")
    assert "performance_commits[3]: field commit_hash" in bad["revisions"]["head"]["error"]
    assert bad["pr_number"] == 7 and bad["api"] == "a.b"  # what the entry says survives its failure
    assert not (work.parent / "victim").exists() and not (tmp_path / "victim").exists()
    assert sum("performance_commits[4] names no commit" in line for line in proc.stderr.splitlines()) == 1
    for entry in entries:
        r = by_head[entry["commit_hash"]]
        pr = int(entry["subject"].rsplit("(#", 1)[1].rstrip(")"))
        assert r["status"] == "failed" and r["revisions"]["head"]["category"] == "commit_not_found"
        assert r["pr_number"] == pr and r["instance_id"] == f"vllm-project__vllm-PR-{pr}"
        assert r["created_at"] == entry["date"] and r["gt_commit_message"] == entry["message"]
        apis = (
            json.loads(entry["apis"].replace("'", '"')) if isinstance(entry["apis"], str) else entry["apis"]
        )
        assert r["api"] == (", ".join(apis) if apis else None)
        assert r["provenance"]["extraction_file"].endswith(
            "vllm_commits.json:performance_commits[%d]" % listed.index(entry)
        )
    # ISO-Bench's summary beside it is no extraction: said once
    assert sum("extraction_summary.json: not an extraction" in line for line in proc.stderr.splitlines()) == 1
    unmatched = [line for line in proc.stderr.splitlines() if "match no planned commit" in line]
    assert len(unmatched) == 1 and "deadbeef_test_case_generator.py" in unmatched[0]


def test_a_collection_of_the_source_is_read_and_another_repositorys_is_refused_per_commit(tmp_path, demo):
    repo, shas = demo
    entries = demo_entries(repo, shas, ["primes", "histogram"])
    collection = {
        "repo_name": "demokit",
        "repo_url": "https://example.org/isobench/demokit.git",
        "performance_commits": entries,
    }
    work = project(tmp_path, collection)
    for key in ("primes", "histogram"):  # their pre-generated tests (no LLM here)
        name = f"{shas[key][:8]}_test_case_generator.py"
        (work / "collected" / "generators" / name).write_text(
            (ROOT / "demo" / "generators" / name).read_text()
        )
    target = f"results/demo/{shas['primes']}/extraction.json"
    proc = snakemake(work, target)
    assert proc.returncode == 0, proc.stderr[-3000:]
    extraction = load_json(work / target)
    assert extraction["status"] == "ok" and extraction["format"] == "commit_collection"
    assert extraction["pr_number"] == 100 and extraction["affected_apis"] == ["demokit.primes"]
    assert extraction["extraction_file"].endswith("vllm_commits.json:performance_commits[0]")

    other = {**collection, "repo_name": "vllm", "repo_url": VLLM_URL}
    work = project(tmp_path / "other", other)
    proc = snakemake(work, "--until", "record")
    assert proc.returncode == 0, proc.stderr[-3000:]
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("isobench: warning:")]
    refused = [
        line for line in warnings if "is not the repository of source demo" in line
    ]  # once, not per commit
    assert (
        len(refused) == 1
        and "field repo_url" in refused[0]
        and "its 2 commits end as failed records" in refused[0]
    )
    for key in ("primes", "histogram"):
        record = load_json(work / "results" / "demo" / shas[key] / "record.json")
        head = record["revisions"]["head"]
        assert head["category"] == "extraction_invalid" and "field repo_url" in head["error"]
        assert record["pr_number"] in (100, 101) and record["instance_id"].endswith(
            f"-PR-{record['pr_number']}"
        )
        assert record["gt_commit_message"] and record["api"] == f"demokit.{key}"
