"""Planning at scale: dry-run time and peak memory of the workflow against a bare Snakefile of the same shape.

    python benchmarks/dag_scale.py [--sizes 100 1000 10000]

For each size N: a synthetic repository of N + 1 commits, a source with its N newest commits (given as a
`commits:` list, with a pre-generated script each), and `snakemake -n` of
- isobench's workflow (config checks, the mirror fetched, every SHA resolved, input functions), and
- a bare Snakefile with the same rules, wildcards, files and dependencies, whose inputs come from plain
  dictionaries and whose jobs would only touch files,
each run twice in the same process tree (the first builds the mirror; the second, timed, is what every
later run costs). Prints wall time and peak RSS of both and their ratio.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from synthetic import make_repo  # noqa: E402
from workflow_copy import copy_workflow  # noqa: E402

BARE = """
import json
PLAN = json.load(open("plan.json"))
HEADS, PARENT, MAIN = PLAN["heads"], PLAN["parent"], PLAN["main"]
D = "results/s/{commit}"
W = "results/s/_worktrees/{sha}.json"
E = "results/s/_envs/{sha}.json"

def revs(wc):
    shas = {"base": PARENT[wc.commit], "head": wc.commit, "main": MAIN}
    out = {f"worktree_{k}": W.format(sha=v) for k, v in shas.items()}
    out.update({f"env_{k}": E.format(sha=v) for k, v in shas.items()})
    return out

rule all:
    input:
        "results/dataset.jsonl",
        "results/llm_summary.json",
        expand(D + "/{name}", commit=HEADS, name=["extraction.json", "prompt.txt", "generator.py",
               "llm_transcript.json", "record.json", "timing_base.json", "timing_head.json", "timing_main.json"]),

rule worktree:
    output: W
    shell: "touch {output}"

rule env:
    input: W
    output: E
    shell: "touch {output}"

rule extraction:
    output: D + "/extraction.json"
    shell: "touch {output}"

rule prompt:
    input: extraction=D + "/extraction.json", template="prompt.md"
    output: D + "/prompt.txt", D + "/prompt.json"
    shell: "touch {output}"

rule generator:
    input: lambda wc: f"generators/{wc.commit[:8]}_test_case_generator.py"
    output: D + "/generator.py", D + "/generator.json", D + "/llm_transcript.json"
    shell: "touch {output}"

rule measure:
    input: unpack(revs), generator=D + "/generator.py", meta=D + "/generator.json", extraction=D + "/extraction.json"
    output: D + "/timing_base.json", D + "/timing_head.json", D + "/timing_main.json"
    shell: "touch {output}"

rule record:
    input: D + "/extraction.json", D + "/prompt.txt", D + "/prompt.json", D + "/generator.py",
           D + "/generator.json", D + "/llm_transcript.json", D + "/timing_base.json", D + "/timing_head.json",
           D + "/timing_main.json"
    output: D + "/record.json"
    shell: "touch {output}"

rule dataset:
    input: expand(D + "/record.json", commit=HEADS)
    output: "results/dataset.jsonl"
    shell: "touch {output}"

rule llm_summary:
    input: expand(D + "/generator.json", commit=HEADS)
    output: "results/llm_summary.json"
    shell: "touch {output}"
"""

# Runs one command and prints its children's peak RSS (KiB), so that each measurement has its own process.
PEAK = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stderr.write(r.stderr[-2000:] if r.returncode else ''); "
    "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)


def dry_run(workdir: Path, snakefile: Path | None = None) -> tuple[float, float]:
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "all", "--cores", "8"]
    cmd += ["--snakefile", str(snakefile)] if snakefile else []
    started = time.monotonic()
    out = subprocess.run([sys.executable, "-c", PEAK, *cmd], cwd=workdir, capture_output=True, text=True)
    wall = time.monotonic() - started
    code, kib = out.stdout.split()
    if code != "0":
        raise SystemExit(f"dry run failed in {workdir}: {out.stderr[-2000:]}")
    return wall, int(kib) / 1024


def source_workflow(tmp: Path, n: int, folder: str = "ours") -> tuple[Path, list[str]]:
    """A synthetic repository of ``n`` + 1 commits and a copy of the workflow whose one source is its ``n`` newest
    commits, a (blank) pre-generated script each: (the workflow folder, the repository's SHAs, oldest first)."""
    history = make_repo(tmp / "repo", n + 1, files=50, file_bytes=400)
    heads = history[1:]
    ours = copy_workflow(tmp / folder)
    gens = ours / "generators"
    gens.mkdir()
    for sha in heads:
        (gens / f"{sha[:8]}_test_case_generator.py").write_text("")
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    config["sources"] = {"s": {"repo": str(tmp / "repo"), "commits": heads, "generators": "generators"}}
    (ours / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return ours, history


def setup(tmp: Path, n: int) -> tuple[Path, Path]:
    ours, history = source_workflow(tmp, n)
    heads = history[1:]
    gens = ours / "generators"
    bare = tmp / "bare"
    bare.mkdir()
    shutil.copytree(gens, bare / "generators")
    (bare / "prompt.md").write_text("x")
    (bare / "Snakefile").write_text(BARE)
    import json

    plan = {"heads": heads, "parent": {h: history[i] for i, h in enumerate(heads)}, "main": history[-1]}
    (bare / "plan.json").write_text(json.dumps(plan))
    return ours, bare


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    args = parser.parse_args(argv)
    print(
        f"{'commits':>8} {'jobs':>7} {'isobench s':>10} {'bare s':>7} {'ratio':>6} {'isobench MiB':>12} "
        f"{'bare MiB':>9} {'ratio':>6}  (first isobench run, mirror built: s)"
    )
    for n in args.sizes:
        with tempfile.TemporaryDirectory(prefix="isobench-dag-") as tmp:
            ours, bare = setup(Path(tmp), n)
            first, _ = dry_run(ours)
            dry_run(bare)
            t_ours, m_ours = dry_run(ours)
            t_bare, m_bare = dry_run(bare)
            jobs = 5 * n + 2 * (n + 1) + 3  # 5 per commit; worktree and env per SHA (N + 1); 3 targets
            print(
                f"{n:>8} {jobs:>7} {t_ours:>10.1f} {t_bare:>7.1f} {t_ours / t_bare:>6.2f} {m_ours:>12.0f} "
                f"{m_bare:>9.0f} {m_ours / m_bare:>6.2f}  ({first:.1f})",
                flush=True,
            )


if __name__ == "__main__":
    main()
