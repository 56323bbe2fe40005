"""How trustworthy are isobench's verdicts? A/A false positives, detection of a 10% slowdown,
and the same figures for ISO-Bench's method, measured side by side in one run on the demo.

    python benchmarks/measurement_quality.py [--trials 20] [--rounds 10] [--repeat 10]

The workload is the demo's histogram test at the histogram commit (linear in its input).
- A/A: base and head are the same revision; any verdict other than no_change is a false positive.
- 10% slowdown: head is a copy of that revision whose histogram() also bins an extra 10% of the
  values (work linear in the input, result unchanged); a verdict of slower is a detection.
- ISO-Bench's method: one whole-process wall-clock run per revision (interpreter start and imports
  included), speedup = base time / head time; "changed" when it is off by more than the minimum effect.
Trials of the four kinds are interleaved so that drift of the machine hits all alike.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isobench import git  # noqa: E402
from isobench.demo import build_demo_repo  # noqa: E402
from isobench.measure import Revision, Settings, measure_commit  # noqa: E402
from isobench.stats import compare  # noqa: E402

SLOWDOWN = 0.10
PATCH_OLD = "    counts = [0] * (len(edges) + 1)\n"
PATCH_NEW = (
    "    counts = [0] * (len(edges) + 1)\n"
    "    extra = [0] * (len(edges) + 1)  # controlled slowdown: the same loop over 10% of the values\n"
    "    for value in values[: len(values) // 10]:\n"
    "        extra[bisect.bisect_right(edges, value)] += 1\n"
)
RUNNER = "import perf_test as t\nt.experiment(t.setup())\n"


def prepare(tmp: Path) -> tuple[Path, Path, Path]:
    repo = tmp / "demokit"
    shas = build_demo_repo(repo)
    mirror = git.ensure_mirror(str(repo), tmp / "mirror.git")
    fast = git.ensure_worktree(mirror, shas["histogram"], tmp / "fast")
    slow = tmp / "slow"
    shutil.copytree(fast, slow, ignore=shutil.ignore_patterns(".git"))
    target = slow / "demokit" / "binning.py"
    text = target.read_text()
    assert PATCH_OLD in text
    target.write_text(text.replace(PATCH_OLD, PATCH_NEW, 1))
    generator = ROOT / "demo" / "generators" / f"{shas['histogram'][:8]}_test_case_generator.py"
    return fast, slow, generator


def ours(generator: Path, base: Path, head: Path, settings: Settings, scratch: Path, analysis: dict) -> dict:
    revs = [Revision("base", "0" * 40, base), Revision("head", "1" * 40, head)]
    t = measure_commit(generator, revs, scratch, settings)
    assert all(x["status"] == "ok" for x in t.values()), {k: (v["category"], v["error"]) for k, v in t.items()}
    return compare(t["base"]["rounds_ms"], t["head"]["rounds_ms"], **analysis)


def whole_process(generator: Path, worktree: Path, scratch: Path) -> float:
    """ISO-Bench's measurement: wall-clock of one subprocess that imports and runs the test once."""
    scratch.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(generator, scratch / "perf_test.py")
    env = {"PYTHONPATH": f"{scratch}:{worktree}", "PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", RUNNER], cwd=scratch, env=env, check=True)
    return time.perf_counter() - start


def isobench_verdict(speedup: float, min_effect: float) -> str:
    if speedup >= 1 + min_effect:
        return "faster"
    if speedup <= 1 / (1 + min_effect):
        return "slower"
    return "no_change"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=20, help="trials of each kind")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--min-effect", type=float, default=0.05)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--interleave", choices=("rounds", "calls"), default="rounds")
    args = ap.parse_args()
    settings = Settings(rounds=args.rounds, warmup=args.warmup, warmup_ms=0, repeat=args.repeat, timeout_s=120,
                        interleave=args.interleave)
    analysis = {"min_effect": args.min_effect, "alpha": args.alpha, "n_boot": 2000, "seed": 0,
                "paired": args.interleave == "calls"}
    results = {"ours_aa": [], "ours_slow": [], "iso_aa": [], "iso_slow": []}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        fast, slow, generator = prepare(tmp)
        for i in range(args.trials):
            results["ours_aa"].append(ours(generator, fast, fast, settings, tmp / "s", analysis))
            results["ours_slow"].append(ours(generator, fast, slow, settings, tmp / "s", analysis))
            b, h = whole_process(generator, fast, tmp / "w"), whole_process(generator, fast, tmp / "w")
            results["iso_aa"].append(b / h)
            b, h = whole_process(generator, fast, tmp / "w"), whole_process(generator, slow, tmp / "w")
            results["iso_slow"].append(b / h)
            print(f"trial {i + 1}/{args.trials}: ours A/A {results['ours_aa'][-1]['speedup']:.4f} "
                  f"({results['ours_aa'][-1]['verdict']}), 10% slower {results['ours_slow'][-1]['speedup']:.4f} "
                  f"({results['ours_slow'][-1]['verdict']}); ISO-Bench A/A {results['iso_aa'][-1]:.4f}, "
                  f"10% slower {results['iso_slow'][-1]:.4f}", flush=True)
    n = args.trials
    ours_fp = sum(r["verdict"] != "no_change" for r in results["ours_aa"]) / n
    ours_noise = statistics.median(abs(r["speedup"] - 1) for r in results["ours_aa"])
    ours_det = sum(r["verdict"] == "slower" for r in results["ours_slow"]) / n
    ours_width = statistics.median(r["ci_high"] - r["ci_low"] for r in results["ours_aa"])
    iso_fp = sum(isobench_verdict(s, args.min_effect) != "no_change" for s in results["iso_aa"]) / n
    iso_noise = statistics.median(abs(s - 1) for s in results["iso_aa"])
    iso_det = sum(isobench_verdict(s, args.min_effect) == "slower" for s in results["iso_slow"]) / n
    print()
    print(f"settings: interleave={args.interleave} rounds={args.rounds} warmup={args.warmup} repeat={args.repeat} "
          f"min_effect={args.min_effect} "
          f"alpha={args.alpha}; {n} trials of each kind; {time.monotonic() - started:.0f} s")
    print(f"{'method':<28}{'A/A false positives':>22}{'median |A/A - 1|':>20}{'10% slowdown detected':>24}")
    print(f"{'isobench (rounds, stats)':<28}{ours_fp:>22.1%}{ours_noise:>20.4f}{ours_det:>24.1%}")
    print(f"{'ISO-Bench (whole process)':<28}{iso_fp:>22.1%}{iso_noise:>20.4f}{iso_det:>24.1%}")
    print(f"A/A noise ratio (ISO-Bench / isobench): {iso_noise / ours_noise if ours_noise else float('inf'):.1f}x; "
          f"median A/A 95% CI width: {ours_width:.4f}")
    print(f"10% slowdown, median measured speedup: isobench {statistics.median(r['speedup'] for r in results['ours_slow']):.4f}, "
          f"ISO-Bench {statistics.median(results['iso_slow']):.4f} (expected {1 / (1 + SLOWDOWN):.4f})")


if __name__ == "__main__":
    main()
