"""Throughput: 40 commits through the workflow against the same 40 through a sequential loop.

    python benchmarks/throughput.py [--commits 40] [--latency 2]                        # CPU-bound
    python benchmarks/throughput.py --gpus 4 [--device-ms 1000] [--commits 40]          # GPU-bound, simulated

A synthetic repository holds one small pure-Python module per commit, each later commit rewriting one of
them faster. No commit has a pre-generated script: a local OpenAI-compatible server (the tests' server,
through the real SDK) answers every generation request after --latency seconds with that commit's test.
- CPU-bound: the test times the module's pure-Python work, `snakemake --cores 8 --resources gpu=1 llm=8`.
- GPU-bound (--gpus N): N simulated GPUs. Each call of the test waits on its device (its
  CUDA_VISIBLE_DEVICES, as the job's GPU slot set it): it takes the device's lock (one process at a time,
  as on a real GPU) and sleeps --device-ms at base, half that at head and main, using no CPU. The workflow
  runs with `--resources gpu=N llm=8` and `gpu.devices` naming the N devices; measure jobs and smoke runs
  hold a slot each. A measurement that shared a device with another would show it in its samples (they
  would grow): the share of samples over 1.5 x their device time is printed.
Both modes: `measure.exclusive: false` (generation overlaps measurement, as on a GPU box). The workflow's
wall time, the sum of the measure jobs' times (Snakemake's `benchmark:` files, less the time a job waited
for a GPU) and one generation's time are printed; the sequential loop does the same work one commit after
another (clone, generate with its smoke run, measure base, head and main with the same settings, on one
GPU). Both run in this one process, against the same server; the goals are wall <= 1.2 x (measure sum / N
+ one generation) and >= 3x faster than the loop.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llm_server import FakeLLM, reply  # noqa: E402
from workflow_copy import copy_workflow  # noqa: E402

from isobench import git, llm  # noqa: E402
from isobench.generate import Cache, Generator, Policy  # noqa: E402
from isobench.measure.job import Revision, Settings  # noqa: E402
from isobench.measure.rounds import measure_commit, smoke_run  # noqa: E402
from isobench.measure.sandbox import SandboxSettings  # noqa: E402

MEASURE = {
    "rounds": 2,
    "max_rounds": 2,
    "warmup": 1,
    "warmup_ms": 0,
    "repeat": 3,
    "timeout_s": 120,
    "interleave": "sequential",
    "exclusive": False,
}
SLOW = (
    "DEVICE_MS = {ms}\n\n\ndef work(n):\n    total = 0\n    for i in range(n):\n        total += i * {k}\n"
    "    return total\n"
)
FAST = "DEVICE_MS = {ms}\n\n\ndef work(n):\n    return {k} * n * (n - 1) // 2\n"
SIMGPU = "ISOBENCH_SIMGPU"  # the folder of the simulated devices' lock files (passed by sandbox.env_allow)
TEST = """import fcntl
import json
import os
import time

from pkg import mod_{i} as m


def setup():
    return {n}


def experiment(n):
    if {gpu}:  # the simulated GPU of this job's slot: one process at a time; the call waits, using no CPU
        with open(os.path.join(os.environ["{simgpu}"], "gpu" + os.environ["CUDA_VISIBLE_DEVICES"])) as device:
            fcntl.flock(device, fcntl.LOCK_EX)
            time.sleep(m.DEVICE_MS / 1000)
    return m.work(n)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert reference == current, (reference, current)
"""


def test_text(i: int, gpus: int) -> str:
    return TEST.format(i=i, n=2000 if gpus else 200000, gpu=bool(gpus), simgpu=SIMGPU)


def make_repo(path: Path, n: int, device_ms: float) -> list[str]:
    """Initial commit with n slow modules, then one commit per module making it fast; returns those SHAs."""
    path.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "b",
        "GIT_AUTHOR_EMAIL": "b@e",
        "GIT_COMMITTER_NAME": "b",
        "GIT_COMMITTER_EMAIL": "b@e",
    }

    def run(*args):
        return subprocess.run(
            ["git", *args], cwd=path, env=env, check=True, capture_output=True, text=True
        ).stdout

    run("init", "--quiet", "--initial-branch", "main")
    (path / "pkg").mkdir()
    (path / "pkg" / "__init__.py").write_text("")
    for i in range(n):
        (path / "pkg" / f"mod_{i}.py").write_text(SLOW.format(k=i + 1, ms=device_ms))
    run("add", "-A")
    run("commit", "-qm", "initial")
    shas = []
    for i in range(n):
        (path / "pkg" / f"mod_{i}.py").write_text(FAST.format(k=i + 1, ms=device_ms / 2))
        run("commit", "-qam", f"[Perf] closed form for mod_{i}")
        shas.append(run("rev-parse", "HEAD").strip())
    return shas


def workflow(tmp: Path, repo: Path, shas: list[str], fake: FakeLLM, extra: list[str], gpus: int) -> dict:
    work = tmp / "wf"
    work.mkdir()
    copy_workflow(work)
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["sources"] = {"t": {"repo": str(repo), "commits": shas, "measure": MEASURE}}
    if gpus:
        config["sources"]["t"]["sandbox"] = {"env_allow": [SIMGPU]}
        config["gpu"] = {"devices": [str(d) for d in range(gpus)], "lock_dir": str(tmp / "gpu-locks")}
    config["llm"] = {
        "provider": "openai",
        "model": "bench",
        "base_url": fake.base_url("openai"),
        "max_retries": 0,
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "8",
            "--resources",
            f"gpu={max(gpus, 1)}",
            "llm=8",
            *extra,
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
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
    timings = [
        json.loads(p.read_text())
        for rev in ("base", "head", "main")
        for p in (work / "results" / "t").glob(f"*/timing_{rev}.json")
    ]
    waited = sum(t["gpu_slot"]["waited_s"] for t in timings if t["revision"] == "base" and t.get("gpu_slot"))
    return {
        "wall": wall,
        "measure_sum": sum(seconds("measure")) - waited,
        "waited": waited,
        "generation": gens[len(gens) // 2],
        "timings": timings,
    }


def sequential(tmp: Path, repo: Path, shas: list[str], fake: FakeLLM, gpus: int) -> float:
    """The same work, one commit after another: clone, generate (ask, check, smoke-run), measure."""
    settings = llm.LLMSettings(model="bench", base_url=fake.base_url("openai"), max_retries=0)
    system, repair = (
        (ROOT / "prompts" / "system.md").read_text(),
        (ROOT / "prompts" / "repair.md").read_text(),
    )
    sandbox = SandboxSettings(env_allow=(SIMGPU,))
    device = {"CUDA_VISIBLE_DEVICES": "0"} if gpus else {}  # one GPU, held throughout
    started = time.monotonic()
    for n, sha in enumerate(shas):
        clone = tmp / f"clone{n}"
        subprocess.run(
            ["git", "clone", "--quiet", "--no-local", repo.resolve().as_uri(), str(clone)], check=True
        )
        revs = {"base": f"{sha}^", "head": sha, "main": "main"}
        paths = {}
        for name, ref in revs.items():
            paths[name] = clone.parent / f"clone{n}-{name}"
            subprocess.run(
                ["git", "worktree", "add", "--quiet", "--detach", str(paths[name]), ref],
                cwd=clone,
                check=True,
            )
        revisions = [Revision(name, git.resolve(clone, ref), paths[name]) for name, ref in revs.items()]
        candidate = tmp / f"candidate{n}.py"

        def smoke(text: str, candidate=candidate, head=revisions[1], scratch=tmp / f"smoke{n}") -> str | None:
            candidate.write_text(text)
            return smoke_run(candidate, head, scratch, 120, sandbox=sandbox, device_env=device)

        gen = Generator(
            settings, Policy(cache=False), Cache(tmp / f"cache{n}", read=False), system, repair, smoke
        )
        script = tmp / f"test{n}.py"
        script.write_text(gen.generate(f"Commit: {sha}").script)
        measure_commit(
            script,
            revisions,
            tmp / f"scratch{n}",
            Settings.from_config(MEASURE),
            sandbox=sandbox,
            device_env=device,
        )
    return time.monotonic() - started


def oversized(timings: list[dict], device_ms: float) -> tuple[int, int]:
    """(samples over 1.5 x their simulated device time, samples): a device shared by two jobs shows here."""
    over = total = 0
    for t in timings:
        expected = device_ms if t["revision"] == "base" else device_ms / 2
        total += len(t["samples_ms"])
        over += sum(1 for s in t["samples_ms"] if s > 1.5 * expected)
    return over, total


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--gpus", type=int, default=0, help="GPU-bound mode with this many simulated GPUs")
    parser.add_argument(
        "--device-ms", type=float, default=1000.0, help="simulated device time of a call at base"
    )
    parser.add_argument(
        "--snakemake-args", nargs="*", default=[], help="more arguments of the workflow's run"
    )
    parser.add_argument(
        "--keep", metavar="DIR", help="work in DIR (must not exist) and keep it, logs included"
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-key")
    with (
        contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory(prefix="isobench-tp-")
    ) as tmp:
        tmp = Path(tmp)
        tmp.mkdir(parents=True, exist_ok=True)
        shas = make_repo(tmp / "repo", args.commits, args.device_ms)
        module = {sha: i for i, sha in enumerate(shas)}
        devices = tmp / "simgpu"
        devices.mkdir()
        for d in range(max(args.gpus, 1)):
            (devices / f"gpu{d}").touch()
        os.environ[SIMGPU] = str(devices)

        def answer(request):
            prompt = request["body"]["messages"][-1]["content"]
            i = max(
                module[s] for s in module if s in prompt
            )  # the commit's own SHA (its parent's may be there too)
            return reply(f"```python\n{test_text(i, args.gpus)}```", delay=args.latency)

        fake = FakeLLM().start()
        fake.default = answer
        try:
            wf = workflow(tmp, tmp / "repo", shas, fake, args.snakemake_args, args.gpus)
            (tmp / "loop").mkdir()
            loop = sequential(tmp / "loop", tmp / "repo", shas, fake, args.gpus)
        finally:
            fake.stop()
    n = max(args.gpus, 1)
    bound = wf["measure_sum"] / n + wf["generation"]
    mode = (
        f"GPU-bound, {n} simulated GPUs, {args.device_ms:g} ms a call at base" if args.gpus else "CPU-bound"
    )
    print(
        f"{args.commits} commits, {mode}, LLM latency {args.latency:g} s, --cores 8 --resources gpu={n} llm=8 "
        f"{' '.join(args.snakemake_args)}"
    )
    print(f"workflow wall time:                 {wf['wall']:7.1f} s")
    print(
        f"sum of measure jobs:                {wf['measure_sum']:7.1f} s   (less {wf['waited']:.1f} s waiting for a "
        f"GPU)   one generation: {wf['generation']:.1f} s"
    )
    print(f"wall / (measure sum / {n} + one gen): {wf['wall'] / bound:7.2f}     (goal <= 1.2)")
    print(
        f"sequential loop:                    {loop:7.1f} s   speed-up {loop / wf['wall']:.1f}x (goal >= 3x)"
    )
    if args.gpus:
        over, total = oversized(wf["timings"], args.device_ms)
        slots = sorted({t["gpu_slot"]["device"] for t in wf["timings"] if t.get("gpu_slot")})
        print(
            f"devices held by measure jobs: {', '.join(slots)}; samples over 1.5 x their device time: "
            f"{over} of {total}"
        )


if __name__ == "__main__":
    main()
