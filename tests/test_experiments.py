"""ISO-Bench's experiments.yaml read as it is (issue 26, point 1): its keys become a source, the dataset's name
and the publish rule; the seed's example, pointed at the demo, runs through the real workflow and pushes to the
Hub stand-in."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, copy_workflow, snakemake
from hub_server import FakeHub

from isobench.config import load_config
from isobench.errors import IsobenchError
from isobench.experiments import adopt, github_name

# The seed's example (../shared/seed/iso-bench-commit-to-dataset.md, "Configuration (YAML)"), as ISO-Bench has it
SEED_EXAMPLE = """\
# ISO-Bench commit-to-dataset configuration (BATCH MODE)
repo_path: "/root/ISO-Bench/vllm"
extractions_dir: "/root/ISO-Bench/misc/experiments/commit_extractions_with_apis"
use_docker: false
docker_image: "anonymous/vllm-bench:latest"
dataset_name: vllm_dataset_with_test
hf_repo: https://huggingface.co/ISO-Bench
push_to_hf: false
setup_commands: []
install_commands: []
api: null
notes: null
"""


def iso_layout(root: Path, demo: tuple) -> Path:
    """ISO-Bench's folders holding three of the demo's commits: misc/experiments/{commit_extractions_with_apis,
    generated_test_generators_v4} (scripts named by 8-character hash, as ISO-Bench's), and a clone of the demo
    whose origin is on GitHub; returns the clone."""
    demo_repo, shas = demo
    experiments = root / "misc" / "experiments"
    for folder in ("commit_extractions_with_apis", "generated_test_generators_v4"):
        (experiments / folder).mkdir(parents=True)
    for key in ("primes", "histogram", "wordfreq"):
        shutil.copy(
            ROOT / "demo" / "extractions" / f"{shas[key]}.json", experiments / "commit_extractions_with_apis"
        )
        name = f"{shas[key][:8]}_test_case_generator.py"
        shutil.copy(ROOT / "demo" / "generators" / name, experiments / "generated_test_generators_v4")
    clone = root / "vllm"
    subprocess.run(["git", "clone", "-q", str(demo_repo), str(clone)], check=True)
    subprocess.run(
        ["git", "-C", str(clone), "remote", "set-url", "origin", "https://github.com/isobench/demokit.git"],
        check=True,
    )
    return clone


def experiments_yaml(root: Path, clone: Path, **changes) -> Path:
    data = yaml.safe_load(SEED_EXAMPLE)
    data.update(
        repo_path=str(clone),
        extractions_dir=str(root / "misc" / "experiments" / "commit_extractions_with_apis"),
    )
    data.update(changes)
    path = root / "experiments.yaml"
    path.write_text(SEED_EXAMPLE.split("\n", 1)[0] + "\n" + yaml.safe_dump(data, sort_keys=False))
    return path


def test_each_key_is_used_or_reported(tmp_path, demo):
    clone = iso_layout(tmp_path, demo)
    path = experiments_yaml(tmp_path, clone, notes="batch 1", api="tokenizer")
    config = yaml.safe_load(path.read_text())
    notes = adopt(config, [str(path)])
    source = config["sources"]["vllm"]
    assert list(config["sources"]) == ["vllm"]  # the demo's source is not added
    assert source["repo"] == str(clone) and source["repo_name"] == "isobench/demokit"
    assert source["extractions"].endswith("commit_extractions_with_apis")
    assert source["generators"] == str(tmp_path / "misc" / "experiments" / "generated_test_generators_v4")
    assert source["notes"] == "batch 1" and "env" not in source and "runner" not in source
    assert config["dataset"] == "data/vllm_dataset_with_test.jsonl" and "publish" not in config
    assert notes == [
        f"{path}: docker_image: not used (use_docker is false)",
        f"{path}: api: not used (each record's api comes from its extraction's affected_apis)",
        f"{path}: hf_repo: not used (push_to_hf is false)",
    ]
    # commands: a venv per revision that sees the host's packages, the commands run there and are recorded
    config = yaml.safe_load(
        experiments_yaml(tmp_path, clone, install_commands=["pip install -e ."]).read_text()
    )
    adopt(config, [str(path)])
    assert config["sources"]["vllm"]["env"] == {"mode": "venv", "system_site_packages": True}
    assert config["sources"]["vllm"]["install_commands"] == ["pip install -e ."]
    # docker: the image runs the tree from source; publishing: hf_repo's namespace and the dataset's name
    config = yaml.safe_load(experiments_yaml(tmp_path, clone, use_docker=True, push_to_hf=True).read_text())
    assert adopt(config, [str(path)]) == []
    assert config["sources"]["vllm"]["runner"] == {"kind": "docker", "image": "anonymous/vllm-bench:latest"}
    assert config["sources"]["vllm"]["env"] == {"mode": "image"}
    assert config["publish"] == {"repo_id": "ISO-Bench/vllm_dataset_with_test"}
    # what `isobench check` and the audit read: the same, checked against the schema with its defaults
    full = load_config(ROOT / "config" / "config.yaml", overrides=[path])
    assert full["publish"] == {
        "repo_id": "ISO-Bench/vllm_dataset_with_test",
        "split": "test",
        "private": False,
    }
    assert list(full["sources"]) == ["vllm"] and full["sources"]["vllm"]["main_ref"] == "main"


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"use_docker": True, "docker_image": None}, "docker_image", "name the image"),
        ({"use_docker": True, "install_commands": ["make"]}, "install_commands", "use_docker: false"),
        ({"dataset_name": "../../etc/x"}, "dataset_name", "data/<dataset_name>.jsonl"),
        ({"push_to_hf": True, "hf_repo": "https://huggingface.co/"}, "hf_repo", "names no Hub dataset"),
        ({"push_to_hf": "yes"}, "push_to_hf", "true or false"),
        ({"repo_path": None}, "repo_path", "need repo_path"),
        ({"setup_commands": "make"}, "setup_commands", "list of commands"),
    ],
)
def test_what_cannot_be_honoured_is_one_line_naming_the_file_and_key(tmp_path, changes, field, words):
    path = experiments_yaml(tmp_path, tmp_path / "vllm", **changes)
    with pytest.raises(IsobenchError) as exc:
        adopt(yaml.safe_load(path.read_text()), [str(path)])
    message = str(exc.value)
    assert message.startswith(f"{path}: field {field}: ") and words in message and "\n" not in message


def test_github_names():
    assert github_name("https://github.com/vllm-project/vllm.git") == "vllm-project/vllm"
    assert github_name("git@github.com:sgl-project/sglang.git") == "sgl-project/sglang"
    assert github_name("https://gitlab.com/a/b.git") is None


def test_the_seed_example_runs_on_the_demo_and_publishes(tmp_path, demo, monkeypatch):
    work = copy_workflow(tmp_path / "wf")
    clone = iso_layout(tmp_path, demo)
    path = experiments_yaml(tmp_path, clone, push_to_hf=True)
    fast = tmp_path / "fast.yaml"
    fast.write_text("measure: {rounds: 2, max_rounds: 2, repeat: 2, warmup: 1}\n")
    hub = FakeHub().start()
    try:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.setenv("HF_TOKEN", hub.token)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        proc = snakemake(work, "--configfile", str(path), str(fast), timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stderr.count("docker_image: not used (use_docker is false)") == 1
        rows = [
            json.loads(line)
            for line in (work / "data" / "vllm_dataset_with_test.jsonl").read_text().splitlines()
        ]
        assert len(rows) == 3 and {r["repo"] for r in rows} == {"isobench/demokit"}
        assert all(r["instance_id"].startswith("isobench__demokit-") for r in rows)
        assert {r["provenance"]["generator"]["source"] for r in rows} == {"pregenerated"}
        assert not (work / "results" / "dataset.jsonl").exists()  # the demo's source was not added
        published = json.loads((work / "results" / "publish.json").read_text())
        repo_id = "ISO-Bench/vllm_dataset_with_test"
        assert published["repo_id"] == repo_id and published["pushed"] and len(published["added"]) == 3
        assert len(hub.commits(repo_id)) == 2 and "README.md" in hub.files(repo_id)
        # nothing changed: nothing runs, nothing is pushed
        writes = len(hub.writes())
        again = snakemake(work, "--configfile", str(path), str(fast), timeout=600)
        assert again.returncode == 0 and "Nothing to be done" in again.stderr, again.stderr[-2000:]
        assert len(hub.writes()) == writes
    finally:
        hub.stop()
