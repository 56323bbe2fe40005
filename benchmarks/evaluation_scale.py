"""Planning an evaluation at scale, beside the dataset DAG of the same size, in one run.

    python benchmarks/evaluation_scale.py [--instances 100] [--models 3] [--attempts 5]

A synthetic repository of N + 1 commits, the workflow with a source of its N newest commits (a pre-generated script
each, as benchmarks/dag_scale.py), a dataset file of N records and a predictions file of N x models x attempts lines
(one attempt in five repeats an earlier one: the same patch, written with CRLF line ends). Each `snakemake -n` runs
twice (the first builds the mirror and writes the evaluation's spec files; the second, timed, is what every later run
costs):
- `snakemake -n all`: the dataset DAG of N commits;
- `snakemake -n evaluate`: the same workflow planning the evaluation of every prediction against that dataset.
Prints wall time and peak RSS of both, their ratio, the jobs planned, and what deduplication saved.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

from dag_scale import PEAK, source_workflow  # noqa: E402

TEST = "def setup():\n    return 1\n\ndef experiment(x):\n    return x\n"


def patch_for(i: int, model: int, attempt: int) -> str:
    body = f"+# instance {i}, model {model}, attempt {attempt}\n"
    return f"diff --git a/pkg/mod_0.py b/pkg/mod_0.py\n--- a/pkg/mod_0.py\n+++ b/pkg/mod_0.py\n@@ -1 +1,2 @@\n{body}"


def setup(tmp: Path, n: int, models: int, attempts: int) -> tuple[Path, int]:
    work, history = source_workflow(tmp, n, "wf")
    heads = history[1:]
    records = [
        {
            "instance_id": f"bench__repo-{h[:7]}",
            "repo": str(tmp / "repo"),
            "base_commit": history[i],
            "head_commit": h,
            "main_commit": history[-1],
            "efficiency_test": [TEST],
            "status": "ok",
            "test_patch": "",
        }
        for i, h in enumerate(heads)
    ]
    (tmp / "dataset.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    lines = []
    for rec_i, rec in enumerate(records):
        for m in range(models):
            for a in range(1, attempts + 1):
                same = a % 5 == 0  # every fifth attempt repeats the first, with CRLF line ends
                patch = patch_for(rec_i, m, 1).replace("\n", "\r\n") if same else patch_for(rec_i, m, a)
                lines.append(
                    {
                        "instance_id": rec["instance_id"],
                        "model_name_or_path": f"model-{m}",
                        "model_patch": patch,
                        "attempt": a,
                    }
                )
    (work / "preds.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (work / "eval.yaml").write_text(
        yaml.safe_dump(
            {"evaluations": {"bench": {"predictions": "preds.jsonl", "dataset": str(tmp / "dataset.jsonl")}}}
        )
    )
    return work, len(lines)


def dry_run(work: Path, target: str) -> tuple[float, float, str]:
    cmd = [sys.executable, "-m", "snakemake", "-n", target, "--cores", "8"]
    cmd += ["--configfile", "eval.yaml"] if target == "evaluate" else []
    started = time.monotonic()
    import subprocess

    out = subprocess.run([sys.executable, "-c", PEAK, *cmd], cwd=work, capture_output=True, text=True)
    wall = time.monotonic() - started
    code, kib = out.stdout.split()[-2:]
    if code != "0":
        raise SystemExit(f"dry run of {target} failed in {work}: {out.stderr[-2000:]}")
    return wall, int(kib) / 1024, out.stdout


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=100)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--attempts", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="isobench-eval-scale-") as tmp:
        work, predictions = setup(Path(tmp), args.instances, args.models, args.attempts)
        dry_run(work, "all")
        first, _, _ = dry_run(work, "evaluate")
        t_all, m_all, _ = dry_run(work, "all")
        t_eval, m_eval, _ = dry_run(work, "evaluate")
        planned = json.loads((work / "results/evaluations/bench/planned.json").read_text())
        jobs = len(planned["jobs"])
        print(
            f"instances {args.instances}, models {args.models}, attempts {args.attempts}: {predictions} predictions"
        )
        print(f"{'dry run':<22} {'wall s':>7} {'peak MiB':>9}")
        print(f"{'dataset DAG (all)':<22} {t_all:>7.2f} {m_all:>9.0f}")
        print(
            f"{'evaluate':<22} {t_eval:>7.2f} {m_eval:>9.0f}   (first run, spec files written: {first:.2f} s)"
        )
        print(f"ratio evaluate / all: wall {t_eval / t_all:.2f}, memory {m_eval / m_all:.2f}")
        print(
            f"jobs: {jobs} (model jobs {jobs - args.instances}, calibration {args.instances}); identical patches "
            f"measured once: {planned['deduplicated']} of {predictions} candidates saved "
            f"({planned['deduplicated'] / predictions:.0%})"
        )


if __name__ == "__main__":
    main()
