"""Every input is data, through real snakemake runs: a commit id from any input (a bundle line, an extraction
file's contents, the config's ``commits:``) never names a file outside results/, and bad refs, folders, devices,
FIFOs and oversized files in the inputs become failed records or one line, never a traceback, a stopped run or
an unbounded read. A broken config file is one line naming it and where."""

import hashlib
import json
import os
import re
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, before_jobs, copy_workflow, snakemake

from isobench.dataset import read_dataset
from isobench.jsonio import load_json

KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # the Snakefile's wildcard constraint of {commit}
MEMORY = 6 << 30  # an unbounded read fails the test, not the machine


def bounded(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """``cmd`` with its address space capped at MEMORY and a time limit."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))

    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, preexec_fn=limit)


def bounded_snakemake(work: Path, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return bounded(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1", *args], work, timeout
    )


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root`` (the project and its siblings) with its content's sha256 (or its kind), less
    what a run may write: results/, Snakemake's .snakemake/, the measurement cache and Python's __pycache__."""
    found = {}
    for folder, subfolders, files in os.walk(root):
        for name in files + subfolders:
            path = Path(folder) / name
            rel = path.relative_to(root)
            if (
                rel.parts[1:] in (("results",), (".snakemake",), (".isobench-cache",))
                or name == "__pycache__"
            ):
                if name in subfolders:
                    subfolders.remove(name)
                continue
            mode = os.lstat(path).st_mode
            found[str(rel)] = (
                hashlib.sha256(path.read_bytes()).hexdigest() if stat.S_ISREG(mode) else stat.filemode(mode)
            )
    return found


def configure(work: Path, **source) -> None:
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(source)
    config["sources"]["demo"]["measure"] = {"rounds": 3, "max_rounds": 3, "repeat": 2}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))


def planning_lines(stderr: str) -> list[str]:
    """What the run said before any work (a dry run logs its plan to stdout)."""
    return before_jobs(stderr).splitlines()


@pytest.mark.slow
def test_commit_ids_that_are_paths_write_nothing_outside_results(tmp_path, demo):
    _, shas = demo
    work = copy_workflow(tmp_path / "project")
    victim = tmp_path / "victim"
    (victim / "sub").mkdir(parents=True)
    (victim / "keep.txt").write_text("keep")
    (victim / "sub" / "inner.txt").write_text("inner")
    main = shas["release"]
    good = json.loads((ROOT / "demo" / "extractions" / f"{shas['primes']}.json").read_text())

    def line(commit: str) -> str:  # a worktree marker's "path" too: an overwritten marker would name victim
        return json.dumps({**good, "commit_hash": commit, "sha": main, "path": str(victim)})

    inputs = work / "inputs"
    (inputs / "extractions").mkdir(parents=True)
    from_bundle = [
        f"{victim}/bundle",
        "../../../../victim/bundle",
        "../../victim/z",
        f"x/../../_worktrees/{main}",
    ]
    (inputs / "bundle.jsonl").write_text("".join(line(c) + "\n" for c in from_bundle))
    from_folder = [f"{victim}/folder", "../../../../victim/folder", f"y/../../_envs/{main}"]
    for name, commit in zip(("one", "two", "three"), from_folder):  # neutral names: the commit is inside
        (inputs / "extractions" / f"{name}.json").write_text(line(commit))
    (inputs / "single.json").write_text(line(f"{victim}/single"))
    from_commits = [f"{victim}/commit", "../../../../victim/commit", f"z/../../_worktrees/{main}"]
    configure(
        work,
        extractions=["inputs/bundle.jsonl", "inputs/extractions", "inputs/single.json"],
        commits=from_commits,
    )
    before = tree(tmp_path)
    bad_extractions = {
        **{c: f"inputs/bundle.jsonl:{i}" for i, c in enumerate(from_bundle, 1)},
        **{c: f"inputs/extractions/{n}.json" for n, c in zip(("one", "two", "three"), from_folder)},
        f"{victim}/single": "inputs/single.json",
    }

    proc = snakemake(work, "-n")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree(tmp_path) == before
    written = [p for p in (work / "results" / "demo").rglob("*") if "_git" not in p.parts and p.is_file()]
    assert written and all(p.parent.name == "_extractions" and KEY.match(p.stem) for p in written), written
    assert {p.name for p in (work / "results").iterdir()} == {"_demo", "demo"}
    lines = planning_lines(proc.stderr)
    for commit, origin in bad_extractions.items():
        assert sum(f"{origin}: field commit_hash" in x and commit in x for x in lines) == 1, (origin, lines)

    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree(tmp_path) == before
    markers = list((work / "results" / "demo" / "_worktrees").glob("*.json"))
    assert markers and all(load_json(m)["path"] == str(m.relative_to(work).with_suffix("")) for m in markers)
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    for commit, origin in bad_extractions.items():
        head = rows[commit]["revisions"]["head"]
        assert head["category"] == "extraction_invalid" and "field commit_hash" in head["error"], commit
        assert origin in head["error"], (origin, head["error"])
    for commit in from_commits:
        assert rows[commit]["revisions"]["head"]["category"] == "commit_not_found", commit
    assert len(rows) == len(bad_extractions) + len(from_commits)
    folders = {p.name for p in (work / "results" / "demo").iterdir() if not p.name.startswith("_")}
    assert len(folders) == len(rows) and all(KEY.match(f) for f in folders)

    # a worktree marker naming another folder, however it came there: the worktree is the one beside it
    (work / "results" / "demo" / "_worktrees" / f"{main}.json").write_text(
        json.dumps({"sha": main, "path": str(victim)})
    )
    proc = snakemake(work, "--forcerun", "env", "--until", "env")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert tree(tmp_path) == before


@pytest.mark.slow
def test_bad_refs_folders_devices_and_fifos_become_records_or_one_line(tmp_path, demo):
    _, shas = demo
    work = copy_workflow(tmp_path / "project")
    odd = work / "odd"
    odd.mkdir()
    (odd / f"{shas['primes']}.json").mkdir()
    (odd / f"{shas['regex']}.json").symlink_to("/dev/zero")
    os.mkfifo(odd / f"{shas['topk']}.json")
    with open(odd / f"{shas['wordfreq']}.json", "wb") as fh:
        fh.truncate((64 << 20) + 1)  # sparse: larger than an extraction file may be
    os.mkfifo(odd / "notes.json")
    (odd / "zero.json").symlink_to("/dev/zero")
    shutil.copy(ROOT / "demo" / "extractions" / f"{shas['histogram']}.json", odd)
    (work / "gens").mkdir()
    with open(work / "gens" / f"{shas['histogram'][:8]}_test_case_generator.py", "wb") as fh:
        fh.truncate((16 << 20) + 1)  # larger than a pre-generated script may be
    configure(work, extractions="odd", generators="gens", commits=["--version", ".hidden", "-n/../x"])

    proc = bounded_snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
    lines = planning_lines(proc.stderr)
    for name in ("notes.json", "zero.json"):
        assert sum(f"odd/{name}: not a regular file" in x and "skipped" in x for x in lines) == 1, lines
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    for key, what in (
        ("primes", "not a regular file (a directory)"),
        ("regex", "not a regular file (a character device)"),
        ("topk", "not a regular file (a FIFO)"),
        ("wordfreq", f"{(64 << 20) + 1} bytes, larger than the 64 MiB an extraction file may have"),
    ):
        error = rows[shas[key]]["revisions"]["head"]["error"]
        assert rows[shas[key]]["revisions"]["head"]["category"] == "extraction_invalid", key
        assert f"odd/{shas[key]}.json: {what}" in error and "\n" not in error, error
    error = rows[shas["histogram"]]["revisions"]["head"]["error"]
    assert rows[shas["histogram"]]["revisions"]["head"]["category"] == "invalid_script"
    assert error.endswith(f"{(16 << 20) + 1} bytes, larger than the 16 MiB a pre-generated script may have")
    for ref in ("--version", ".hidden", "-n/../x"):  # the record keeps the ref as named; its folder is safe
        assert rows[ref]["revisions"]["head"]["category"] == "commit_not_found", ref
    folders = {p.name for p in (work / "results" / "demo").iterdir() if not p.name.startswith("_")}
    assert len(folders) == 8 and all(KEY.match(f) for f in folders), folders

    # a bundle larger than a bundle may be: one line naming it, nothing read
    with open(work / "big.jsonl", "wb") as fh:
        fh.truncate((256 << 20) + 1)
    configure(work, extractions="big.jsonl", commits=[shas["primes"]])
    proc = bounded_snakemake(work, "-n")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"isobench: big.jsonl: {(256 << 20) + 1} bytes, larger than the 256 MiB a JSON Lines bundle may have"
    ), proc.stderr[-2000:]


def test_the_extraction_step_reads_only_regular_files_of_bounded_size(tmp_path, mirror, demo):
    """The step's own read (a file can change between planning and the step): one line, quickly."""
    _, shas = demo
    (tmp_path / "dir.json").mkdir()
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.json")
    with open(tmp_path / "big.json", "wb") as fh:
        fh.truncate((64 << 20) + 1)
    code = (
        "import sys; from isobench.extraction import normalize, failed_extraction; from isobench.errors import "
        "CommitFailure\nfor name in sys.argv[3:]:\n    try:\n        normalize(source='s', repo_name='r', "
        "mirror=sys.argv[1], commit=sys.argv[2], extraction_file=name)\n    except CommitFailure as exc:\n"
        "        print(exc.category, exc)\n    print(failed_extraction(source='s', repo_name='r', commit='c', "
        "head=None, base=None, extraction_file=name, origin=None, category='x', error='e')['extraction_sha256'])"
    )
    names = ["dir.json", "zero.json", "fifo.json", "big.json"]
    proc = bounded([sys.executable, "-c", code, str(mirror), shas["primes"], *names], tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.splitlines() == [
        "extraction_invalid dir.json: not a regular file (a directory)",
        "None",
        "extraction_invalid zero.json: not a regular file (a character device)",
        "None",
        "extraction_invalid fifo.json: not a regular file (a FIFO)",
        "None",
        f"extraction_invalid big.json: {(64 << 20) + 1} bytes, larger than the 64 MiB an extraction file may have",
        "None",
    ]


def test_a_broken_config_file_is_one_line_naming_it_and_where(tmp_path):
    work = copy_workflow(tmp_path / "project")
    config = work / "config" / "config.yaml"
    config.write_text(config.read_text() + "measure:\n  rounds: [3\n  repeat: 2\n")
    proc = snakemake(work, "-n", timeout=120)
    assert proc.returncode == 1
    lines = [x for x in proc.stderr.splitlines() if x.strip() and not x.startswith("Using workflow specific")]
    assert len(lines) == 1 and lines[0].startswith("isobench: config/config.yaml: not YAML at line "), lines
    # Snakemake reads a --configfile itself, before the workflow: the README's first lines name the check
    config.write_text(config.read_text().rsplit("measure:\n", 1)[0])
    (work / "extra.yaml").write_text("llm:\n  model: [x\n")
    proc = snakemake(work, "-n", "--configfile", "extra.yaml", timeout=120)
    assert proc.returncode == 1 and "not valid JSON or YAML" in proc.stdout + proc.stderr
    check = subprocess.run(
        [sys.executable, "-m", "isobench.cli", "check", "--configfile", "extra.yaml"],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 1 and check.stderr.startswith(
        "isobench: extra.yaml: not YAML at line 3, column 1"
    )
    first = (ROOT / "README.md").read_text().split("\n---\n")[0]
    assert "isobench check --configfile" in first and "not valid JSON or YAML" in first
