"""Shared fixtures: the demo repository and its mirror, built once per test session."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from workflow_copy import copy_workflow  # noqa: F401  (the tests' way to a copy of the project)

from isobench import git
from isobench.demo import build_demo_repo
from isobench.measure.job import Revision

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures" / "isobench-extractions"


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """(repo path, {step key: sha}) of a freshly built demo repository."""
    path = tmp_path_factory.mktemp("demo") / "demokit"
    return path, build_demo_repo(path)


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, demo):
    """(workflow folder, CompletedProcess) of the demo run locally, once per session (tests/test_workflow.py
    edits it afterwards; its first dataset stays in ``<folder>.first-dataset.jsonl`` for comparisons)."""
    work = copy_workflow(tmp_path_factory.mktemp("wf"))
    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shutil.copy(work / "results" / "dataset.jsonl", work.with_name(work.name + ".first-dataset.jsonl"))
    return work, proc


@pytest.fixture(scope="session")
def mirror(demo, tmp_path_factory):
    return git.ensure_mirror(str(demo[0]), tmp_path_factory.mktemp("mirror") / "mirror.git")


@pytest.fixture
def revisions(tmp_path):
    """Three toy 'worktrees': a module toy.py whose VERSION names the revision."""
    revs = []
    for i, name in enumerate(("base", "head", "main")):
        root = tmp_path / name
        root.mkdir()
        (root / "toy.py").write_text(f"VERSION = {name!r}\n\ndef work(n):\n    return sum(range(n))\n")
        revs.append(Revision(name, f"{i}" * 40, root))
    return revs


def demo_subset(work: Path, shas: dict, folder: str, extractions, generators) -> tuple[Path, Path]:
    """``work/<folder>/{extractions,generators}`` holding the demo's files of the given step keys."""
    ext, gen = work / folder / "extractions", work / folder / "generators"
    ext.mkdir(parents=True)
    gen.mkdir(parents=True)
    for key in extractions:
        shutil.copy(ROOT / "demo" / "extractions" / f"{shas[key]}.json", ext)
    for key in generators:
        shutil.copy(ROOT / "demo" / "generators" / f"{shas[key][:8]}_test_case_generator.py", gen)
    return ext, gen


def processes_with(text: str) -> list[int]:
    """PIDs of live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


# A function-contract test's result handling by JSON (the test imports json): what most purpose-written tests share.
JSON_CHECKS = """
def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(ref, cur):
    assert ref == cur
"""


def snakemake(workdir: Path, *args: str, timeout: int = 600, gpus: int = 1) -> subprocess.CompletedProcess:
    # --resources=X (one word): a plain --resources takes every word after it, a target included
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", f"--resources=gpu={gpus}", *args]
    return subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)


def snakemake_log(proc: subprocess.CompletedProcess) -> str:
    """Snakemake's own log of a run that ran jobs (.snakemake/log/): every job's rule, inputs, outputs and
    reason, and isobench's lines, whatever the console showed (its default is the progress view)."""
    found = re.search(r"Complete [Ll]og(?:\(s\))?: (\S+)", proc.stderr + proc.stdout)
    assert found, (proc.stderr + proc.stdout)[-2000:]
    return Path(found.group(1)).read_text(encoding="utf-8")


def before_jobs(stderr: str) -> str:
    """What a run said while planning, before its job table (Snakemake's "Building DAG" or the progress view's
    "Job stats")."""
    return re.split(r"Building DAG|Job stats", stderr, maxsplit=1)[0]


def job_counts(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """{rule: jobs} of a run (from its log) or of a dry run (the console's job table); {} when nothing was to
    be done."""
    text = proc.stdout + proc.stderr
    if "Nothing to be done" in text:
        return {}
    if re.search(r"Complete [Ll]og", text):
        block = snakemake_log(proc).split("Job stats:")[1].split("total")[0]
        return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", block, re.M)}
    block = text.split("Job stats")[1].split("total")[0]  # the progress view's table: "evaluate job   1"
    return {
        m.group(1).strip().replace(" ", "_"): int(m.group(2))
        for m in re.finditer(r"^\s*([a-z][\w ]*?)\s+(\d+)\s*$", block, re.M)
    }


def without_timings(record: dict, work: Path) -> dict:
    """A record less what differs between two measurements of the same content (timings, when and where
    they were taken, and the workflow folder in error messages)."""
    r = json.loads(json.dumps(record).replace(str(work), "WORKFLOW"))
    for key in ("comparisons", "duration_changes", "human_performance", "human_performance_mean"):
        r.pop(key)
    for rev in r["revisions"].values():
        for key in ("median_ms", "iqr_ms", "warnings", "n"):  # adaptive rounds: n may differ
            rev.pop(key)
    prov = r["provenance"]
    prov.pop("timing_sha256")
    if prov.get("measurement"):
        prov["measurement"] = {"key": prov["measurement"]["key"]}
    return r


def pytest_sessionstart(session):
    """The tests run generated code in bubblewrap's sandbox (isobench/measure/view.py), and an evaluation's
    `apply: fuzzy` uses GNU patch: install Debian's packages when they are missing and this user may (root or
    passwordless sudo, apt-get)."""
    missing = [pkg for tool, pkg in (("bwrap", "bubblewrap"), ("patch", "patch")) if not shutil.which(tool)]
    if not missing or not shutil.which("apt-get"):
        return
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if sudo and not shutil.which("sudo"):
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, "apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if subprocess.run(install, capture_output=True, env=env).returncode != 0:
        subprocess.run([*sudo, "apt-get", "update", "-q"], capture_output=True, env=env)
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:
            sys.stderr.write(
                f"conftest: apt-get install {' '.join(missing)} failed: tests that need them will fail\n"
            )


IMAGE_SH = ROOT / "tests" / "containers" / "image.sh"
_image_build: dict = {}


def pytest_collection_finish(session):
    """Start building the container tests' image (apt, debootstrap: minutes the first time) as soon as the run
    knows it has container tests, so that it overlaps with the tests that come before them."""
    if any(item.nodeid.startswith("tests/test_containers.py") for item in session.items) and not _image_build:
        cache = getattr(session.config, "cache", None)  # None under -p no:cacheprovider
        folder = cache.mkdir("isobench-image") if cache else Path(tempfile.mkdtemp(prefix="isobench-image-"))
        log = Path(folder) / "image.log"
        out = open(log.with_suffix(".out"), "w")
        _image_build["proc"] = subprocess.Popen(
            ["bash", str(IMAGE_SH)], stdout=out, stderr=open(log, "w"), text=True
        )
        _image_build["files"] = (log.with_suffix(".out"), log)


def container_image_build(timeout: float = 1500) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of tests/containers/image.sh: the build started at collection, or a new one."""
    if "proc" not in _image_build:
        proc = subprocess.run(["bash", str(IMAGE_SH)], capture_output=True, text=True, timeout=timeout)
        return proc.returncode, proc.stdout, proc.stderr
    code = _image_build["proc"].wait(timeout=timeout)
    out, err = (p.read_text() for p in _image_build["files"])
    return code, out, err
