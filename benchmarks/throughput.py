"""Throughput: 40 commits through the workflow against the same 40 through a sequential loop.

    python benchmarks/throughput.py [--commits 40] [--latency 2]

A synthetic repository holds one small pure-Python module per commit, each later commit rewriting one of
them faster. No commit has a pre-generated script: a local OpenAI-compatible server (the tests' server,
through the real SDK) answers every generation request after --latency seconds with that commit's test.
- workflow: `snakemake --cores 8 --resources gpu=1 llm=8` (measure.exclusive false, as on a GPU box:
  generation overlaps measurement; GPU jobs one at a time). Prints the wall time, the sum of the measure
  jobs' times (Snakemake's `benchmark:` files) and one generation's time.
- sequential loop: for each commit one after the other, clone the repository, ask the same server for its
  test, and measure base, head and main with the same settings.
Both run in this one process, against the same server; the goals are wall <= 1.2 x (measure sum + one
generation) and >= 3x faster than the loop.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from isobench import git, llm  # noqa: E402
from isobench.generate import Cache, Generator, Policy  # noqa: E402
from isobench.measure import Revision, Settings, measure_commit, smoke_run  # noqa: E402
from llm_server import FakeLLM, reply  # noqa: E402

MEASURE = {"rounds": 2, "max_rounds": 2, "warmup": 1, "warmup_ms": 0, "repeat": 3, "timeout_s": 120, "interleave": "rounds",
           "exclusive": False}
SLOW = "def work(n):\n    total = 0\n    for i in range(n):\n        total += i * {k}\n    return total\n"
FAST = "def work(n):\n    return {k} * n * (n - 1) // 2\n"
TEST = '''import json

from pkg import mod_{i} as m


def setup():
    return 200000


def experiment(n):
    return m.work(n)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert reference == current, (reference, current)
'''


def make_repo(path: Path, n: int) -> list[str]:
    """Initial commit with n slow modules, then one commit per module making it fast; returns those SHAs."""
    path.mkdir(parents=True)
    env = {**os.environ, "GIT_AUTHOR_NAME": "b", "GIT_AUTHOR_EMAIL": "b@e", "GIT_COMMITTER_NAME": "b",
           "GIT_COMMITTER_EMAIL": "b@e"}

    def run(*args):
        return subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True).stdout

    run("init", "--quiet", "--initial-branch", "main")
    (path / "pkg").mkdir()
    (path / "pkg" / "__init__.py").write_text("")
    for i in range(n):
        (path / "pkg" / f"mod_{i}.py").write_text(SLOW.format(k=i + 1))
    run("add", "-A")
    run("commit", "-qm", "initial")
    shas = []
    for i in range(n):
        (path / "pkg" / f"mod_{i}.py").write_text(FAST.format(k=i + 1))
        run("commit", "-qam", f"[Perf] closed form for mod_{i}")
        shas.append(run("rev-parse", "HEAD").strip())
    return shas


def workflow(tmp: Path, repo: Path, shas: list[str], fake: FakeLLM, extra: list[str]) -> dict:
    work = tmp / "wf"
    work.mkdir()
    for part in ("Snakefile", "rules", "scripts", "isobench", "prompts", "config", "envs", "profiles", "report"):
        src = ROOT / part
        (shutil.copytree if src.is_dir() else shutil.copy)(src, work / part)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["sources"] = {"t": {"repo": str(repo), "commits": shas, "measure": MEASURE}}
    config["llm"] = {"provider": "openai", "model": "bench", "base_url": fake.base_url("openai"), "max_retries": 0}
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "8", "--resources", "gpu=1", "llm=8", *extra],
                          cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - started
    if proc.returncode:
        raise SystemExit(proc.stderr[-3000:])

    def seconds(name: str) -> list[float]:
        out = []
        for path in (work / "results" / "t").glob(f"*/logs/{name}.benchmark.tsv"):
            with open(path) as fh:
                out.append(float(next(csv.DictReader(fh, delimiter="\t"))["s"]))
        return out

    gens = sorted(seconds("generator"))
    return {"wall": wall, "measure_sum": sum(seconds("measure")), "generation": gens[len(gens) // 2]}


def sequential(tmp: Path, repo: Path, shas: list[str], fake: FakeLLM) -> float:
    """The same work, one commit after another: clone, generate (ask, check, smoke-run), measure."""
    settings = llm.LLMSettings(model="bench", base_url=fake.base_url("openai"), max_retries=0)
    system, repair = (ROOT / "prompts" / "system.md").read_text(), (ROOT / "prompts" / "repair.md").read_text()
    started = time.monotonic()
    for n, sha in enumerate(shas):
        clone = tmp / f"clone{n}"
        subprocess.run(["git", "clone", "--quiet", "--no-local", repo.resolve().as_uri(), str(clone)], check=True)
        revs = {"base": f"{sha}^", "head": sha, "main": "main"}
        paths = {}
        for name, ref in revs.items():
            paths[name] = clone.parent / f"clone{n}-{name}"
            subprocess.run(["git", "worktree", "add", "--quiet", "--detach", str(paths[name]), ref], cwd=clone,
                           check=True)
        revisions = [Revision(name, git.resolve(clone, ref), paths[name]) for name, ref in revs.items()]
        candidate = tmp / f"candidate{n}.py"

        def smoke(text: str) -> str | None:
            candidate.write_text(text)
            return smoke_run(candidate, revisions[1], tmp / f"smoke{n}", 120)

        gen = Generator(settings, Policy(cache=False), Cache(tmp / f"cache{n}", read=False), system, repair, smoke)
        script = tmp / f"test{n}.py"
        script.write_text(gen.generate(f"Commit: {sha}").script)
        measure_commit(script, revisions, tmp / f"scratch{n}", Settings.from_config(MEASURE))
    return time.monotonic() - started


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--snakemake-args", nargs="*", default=[], help="more arguments of the workflow's run")
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-key")
    with tempfile.TemporaryDirectory(prefix="isobench-tp-") as tmp:
        tmp = Path(tmp)
        shas = make_repo(tmp / "repo", args.commits)
        module = {sha: i for i, sha in enumerate(shas)}

        def answer(request):
            prompt = request["body"]["messages"][-1]["content"]
            i = next(module[s] for s in module if s in prompt)
            return reply(f"```python\n{TEST.format(i=i)}```", delay=args.latency)

        fake = FakeLLM().start()
        fake.default = answer
        try:
            wf = workflow(tmp, tmp / "repo", shas, fake, args.snakemake_args)
            (tmp / "loop").mkdir()
            loop = sequential(tmp / "loop", tmp / "repo", shas, fake)
        finally:
            fake.stop()
    bound = wf["measure_sum"] + wf["generation"]
    print(f"{args.commits} commits, LLM latency {args.latency:g} s, --cores 8 --resources gpu=1 llm=8 "
          f"{' '.join(args.snakemake_args)}")
    print(f"workflow wall time:             {wf['wall']:7.1f} s")
    print(f"sum of measure jobs:            {wf['measure_sum']:7.1f} s   one generation: {wf['generation']:.1f} s")
    print(f"wall / (measure sum + one gen): {wf['wall'] / bound:7.2f}     (goal <= 1.2)")
    print(f"sequential loop:                {loop:7.1f} s   speed-up {loop / wf['wall']:.1f}x (goal >= 3x)")


if __name__ == "__main__":
    main()
