"""The console a person reads: the demo's run piped (as CI and `nohup` see it) and a run with one broken
extraction file in a real terminal (a pty, drawn by the terminal emulator pyte): the progress view, isobench's
own lines, the details only in the logs, and the broken file named among the last lines."""

import fcntl
import hashlib
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time

import pyte
import pytest
import yaml
from conftest import FIXTURES, ROOT, before_jobs, copy_workflow, demo_subset, snakemake_log

from isobench.failures import failure_lines, main_line

WIDTH, HEIGHT = 150, 400  # a screen tall enough that nothing scrolls away


def test_the_demo_console_shows_what_matters(demo_run, demo):
    work, proc = demo_run
    _, shas = demo
    lines = proc.stderr.splitlines()
    assert len(lines) < 70, len(lines)  # was about 1,100 with every job's details
    for detail in ("localrule", "jobid", "input:", "reason:", "wildcards:"):
        assert detail not in proc.stderr, detail
    assert not [x for x in lines if x.startswith(("worktree ", "env ", "prompt: ", "extraction ", "  base "))]
    records = [x for x in lines if x.startswith("record isobench__demokit-")]
    assert len(records) == 7
    assert f"record isobench__demokit-{shas['topk'][:7]}: failed, not_equivalent: " in proc.stderr
    assert any(x.endswith("faster (main failed: import_error)") for x in records), records
    end = lines[-20:]
    assert "isobench run summary" in end
    assert "  failed commits: 1 of 7 (not_equivalent 1)" in end
    assert "  main (the branch tip) failed for 1 of the other commits (import_error 1)" in end
    assert [x for x in end if x.startswith(f"    {shas['topk']}.json: not_equivalent: check_equivalence: ")]
    # the details are where a person looks for them: each job's log, and Snakemake's own log of the run
    measure_log = (work / "results" / "demo" / shas["primes"] / "logs" / "measure.log").read_text()
    assert "\n  base " in measure_log and ": median " in measure_log
    ran = snakemake_log(proc)
    assert ran.count("rule measure:") == 7 and sum(x in ran for x in records) == 7
    assert not list((work / "results").rglob("*.console"))  # each job's lines were printed, then removed


def run_in_terminal(cmd: list[str], cwd, timeout: float = 600) -> tuple[int, str, list[str]]:
    """``cmd`` run with a pty for its terminal; returns its exit code, the screen it left, as drawn by a
    terminal emulator (the progress view's redraws applied, not concatenated), and the progress view's total
    line each time the screen showed it."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", HEIGHT, WIDTH, 0, 0))
    env = {**os.environ, "COLUMNS": str(WIDTH), "LINES": str(HEIGHT), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(cmd, cwd=cwd, stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True)
    os.close(slave)
    screen = pyte.Screen(WIDTH, HEIGHT)
    stream = pyte.ByteStream(screen)
    progress: list[str] = []  # the progress view's total line, as it stood each time it was seen
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            stream.feed(chunk)
            progress += [
                x.strip() for x in screen.display if "Total Progress" in x and re.search(r" \d+/\d+ ", x)
            ]
    finally:
        os.close(master)
        code = proc.wait(timeout=60)
    text = "\n".join(line.rstrip() for line in screen.display).rstrip()
    return code, text, progress


@pytest.mark.slow
def test_one_broken_extraction_file_is_named_in_the_last_lines_of_a_terminal(tmp_path, demo):
    _, shas = demo
    work = copy_workflow(tmp_path / "project")
    ext, gen = demo_subset(work, shas, "two", ["primes", "histogram"], ["primes", "histogram"])
    broken = ext / f"{shas['histogram']}.json"
    broken.write_text(broken.read_text()[:300])  # cut short, as a full disk or a killed copy leaves it
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="two/extractions",
        generators="two/generators",
        measure={"rounds": 3, "max_rounds": 3, "repeat": 2, "warmup": 1},
    )
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    code, screen, progress = run_in_terminal(
        [sys.executable, "-m", "snakemake", "--cores", "2", "--resources=gpu=1"], work
    )
    assert code == 0, screen[-3000:]
    lines = screen.splitlines()
    # the progress view was drawn: jobs done of planned (each step's too), elapsed time
    drawn = [x for x in progress if re.search(r"Total Progress .* (\d+)/(\d+) +\d+% +\d+:\d\d:\d\d", x)]
    assert len({x.split("/")[0] for x in drawn}) > 1, progress[-3:]  # it moved
    last = lines[-20:]
    named = [
        x
        for x in last
        if f"two/extractions/{shas['histogram']}.json" in x or f"{shas['histogram']}.json" in x
    ]
    assert named and all("extraction_invalid" in x for x in named), last
    assert any("invalid JSON at line" in x for x in named), last
    assert "  failed commits: 1 of 2 (extraction_invalid 1)" in last
    assert "Traceback" not in screen and len(lines) < 50, screen


SHARED_VLLM = ROOT.parent / "shared" / "fixtures" / "isobench-real" / "vllm" / "extractions-commit"


def test_commits_the_repository_lacks_are_one_line_at_planning_and_at_the_end(tmp_path):
    """ISO-Bench's real vLLM extraction files (the demo's, their commits changed, without ../shared) pointed at the
    demo repository: planning says it once, not once per file, and the end groups the commits by cause."""
    work = copy_workflow(tmp_path / "project")
    files = sorted(SHARED_VLLM.glob("*.json")) if SHARED_VLLM.is_dir() else []
    folder = work / "elsewhere"
    folder.mkdir()
    if files:
        for path in files:
            shutil.copy(path, folder)
    else:
        for i, path in enumerate(sorted((ROOT / "demo" / "extractions").glob("*.json"))):
            data = json.loads(path.read_text())
            data["commit_hash"] = hashlib.sha1(f"elsewhere {i}".encode()).hexdigest()
            (folder / f"{data['commit_hash']}.json").write_text(json.dumps(data))
    n = len(list(folder.glob("*.json")))
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(extractions="elsewhere", generators=None)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1"], cwd=work, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    said = [x for x in before_jobs(proc.stderr).splitlines() if "in its repository" in x or "is not in" in x]
    assert len(said) == 1 and f"source demo: none of these {n} commits is in its repository" in said[0], said
    assert "is sources.demo.repo the repository they come from?" in said[0]

    # the end of the run: one line for the commits that failed for one cause, counted in commits
    records = [json.loads(x) for x in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]
    for r in records:
        sha, name = r["head_commit"], f"elsewhere/{r['head_commit']}.json"
        r["status"], r["provenance"]["extraction_file"] = "failed", name
        for rev in r["revisions"].values():
            rev.update(
                category="commit_not_found",
                error=f"{name}: field commit_hash: commit {sha} not found in the repository of source demo",
            )
    lines = failure_lines(records)
    assert lines[0] == f"  failed commits: {len(records)} of {len(records)} (commit_not_found {len(records)})"
    assert len(lines) == 2 and lines[1].startswith(f"    {len(records)} commits (")
    assert lines[1].endswith(
        "...): commit_not_found: field commit_hash: commit … not found in the repository of source demo"
    ), lines
    assert main_line(records) == []  # main is not counted apart for commits that failed
