"""Reruns pay only for what changed: each case runs the workflow again and counts LLM requests and
fresh measurements (LLM scripts come from a local OpenAI-compatible server)."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT, copy_workflow, job_counts
from llm_server import FakeLLM, reply

from isobench.dataset import read_dataset

pytestmark = pytest.mark.slow
FAST = {
    "rounds": 1,
    "max_rounds": 1,
    "warmup": 1,
    "warmup_ms": 0,
    "repeat": 1,
    "timeout_s": 60,
    "interleave": "rounds",
}


class Counter:
    def __init__(self, work, fake):
        self.work, self.fake, self.requests = work, fake, 0

    def run(self, *targets):
        cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", "2", "--resources", "gpu=1", "llm=2"]
        proc = subprocess.run(cmd, cwd=self.work, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        calls = len(self.fake.requests) - self.requests
        self.requests = len(self.fake.requests)
        said = re.search(r"measurements this run: (\d+) fresh", proc.stderr)  # the run summary's count
        fresh = int(said.group(1)) if said else 0
        counts = job_counts(proc)
        jobs = {rule: counts.get(rule, 0) for rule in ("generator", "measure")}
        return calls, fresh, jobs, proc.stderr


@pytest.fixture
def setup(tmp_path, demo):
    repo_src, shas = demo
    repo = tmp_path / "repo"
    shutil.copytree(repo_src, repo)
    (tmp_path / "wf").mkdir()
    work = copy_workflow(tmp_path / "wf")
    scripts = {
        sha: (ROOT / "demo" / "generators" / f"{sha[:8]}_test_case_generator.py").read_text()
        for sha in shas.values()
        if (ROOT / "demo" / "generators" / f"{sha[:8]}_test_case_generator.py").exists()
    }

    def answer(request):
        prompt = request["body"]["messages"][1]["content"]
        sha = next(s for s in scripts if s in prompt)
        # another prompt gets another script, as from a real model
        tag = hashlib.sha256(prompt.encode()).hexdigest()[:12]
        return reply(f"```python\n# written for prompt {tag}\n{scripts[sha]}```")

    fake = FakeLLM().start()
    fake.default = answer
    shutil.copy(work / "prompts" / "test_generator.md", work / "prompts" / "other.md")
    source = {"repo": str(repo), "repo_name": "isobench/demokit", "measure": FAST}
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"] = {
        "a": {**source, "measure": dict(FAST), "commits": [shas["primes"], shas["histogram"]]},
        "b": {
            **source,
            "measure": dict(FAST),
            "commits": [shas["regex"]],
            "prompt_template": "prompts/other.md",
        },
    }
    config["llm"] = {
        "provider": "openai",
        "model": "test-model",
        "base_url": fake.base_url("openai"),
        "max_retries": 0,
        "cache_dir": str(tmp_path / "cache" / "llm"),
    }
    config["measure_cache_dir"] = str(tmp_path / "cache" / "measure")
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    yield work, repo, shas, Counter(work, fake), config
    fake.stop()


def test_rerun_semantics(setup, monkeypatch):
    work, repo, shas, counter, config = setup
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-reruns")
    calls, fresh, jobs, _ = counter.run()
    assert (calls, fresh) == (3, 3)

    # nothing changed: nothing runs
    calls, fresh, jobs, err = counter.run()
    assert (calls, fresh, jobs) == (0, 0, {"generator": 0, "measure": 0}) and "Nothing to be done" in err

    # the template touched, then rewritten with identical content: its checksum is unchanged
    template = work / "prompts" / "test_generator.md"
    os.utime(template)
    calls, fresh, jobs, err = counter.run()
    assert (calls, fresh, jobs) == (0, 0, {"generator": 0, "measure": 0})
    template.write_bytes(template.read_bytes())
    assert counter.run()[:3] == (0, 0, {"generator": 0, "measure": 0})

    # source b's own template edited: the prompt of 1 of 3 commits changes
    other = work / "prompts" / "other.md"
    other.write_text(other.read_text() + "\nKeep the test short.\n")
    calls, fresh, jobs, _ = counter.run()
    assert (calls, fresh, jobs) == (1, 1, {"generator": 1, "measure": 1})

    # the global template edited: the prompts of source a's 2 commits change; with early cutoff
    # (`prompts` first) only their generators and measurements run afterwards
    template.write_text(template.read_text() + "\nName the API under test in a comment.\n")
    assert counter.run("prompts")[:2] == (0, 0)
    calls, fresh, jobs, _ = counter.run()
    assert (calls, fresh, jobs) == (2, 2, {"generator": 2, "measure": 2})

    # a step script and the package edited: Snakemake reruns, the caches answer
    step = work / "scripts" / "measure.py"
    step.write_text(step.read_text() + "# edited\n")
    package = work / "isobench" / "record.py"
    package.write_text(package.read_text() + "# edited\n")
    calls, fresh, jobs, err = counter.run()
    assert (calls, fresh, jobs["measure"]) == (0, 0, 3) and "measurements this run: 0 fresh, 3 reused" in err

    # one deleted timing file: only that commit's measurement job runs (restored from the cache)
    (work / "results" / "a" / shas["primes"] / "timing_head.json").unlink()
    calls, fresh, jobs, err = counter.run()
    assert (calls, fresh, jobs) == (0, 0, {"generator": 0, "measure": 1})
    assert "measurements this run: 0 fresh, 1 reused" in err

    # main advanced: no LLM call, the new main measured, records and dataset updated
    (repo / "NEWS.md").write_text("a new release\n")
    subprocess.run(["git", "add", "NEWS.md"], cwd=repo, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "news"], cwd=repo, check=True
    )
    new_main = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    calls, fresh, jobs, _ = counter.run()
    assert (calls, fresh) == (0, 3) and jobs["generator"] == 0
    rows = read_dataset(work / config["dataset"])
    assert len(rows) == 3 and {r["main_commit"] for r in rows} == {new_main}
    timing = json.loads((work / "results" / "b" / shas["regex"] / "timing_main.json").read_text())
    assert timing["sha"] == new_main and timing["measurement"]["cached"] is False

    # measure.epoch: measuring again is deliberate
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["a"]["measure"]["epoch"] = 1
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    calls, fresh, jobs, _ = counter.run()
    assert (calls, fresh, jobs["measure"]) == (0, 2, 2)
