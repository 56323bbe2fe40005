"""Right numbers with the default settings on a noisy machine? isobench's defaults (adaptive rounds,
interleave: auto) against the defaults it had before (10 rounds, one process at a time), side by side in one run.

    python benchmarks/measurement_quality.py [--trials 20]

The workload is the demo's histogram test at the histogram commit (linear in its input), measured as a
real job does it: base, head and main, each in fresh processes, through the sandbox.
- A/A: base, head and main are the same revision; faster or slower is a false positive, no_change is right.
- 10% slowdown: head (and main) is a copy whose histogram() also bins an extra 10% of the values (work linear
  in the input, result unchanged); slower is a detection.
- 2x speedup: base is a copy whose histogram() bins every value twice; head is the original. The measured
  speedup should be within 10% of 2.
Trials of every kind and both settings are interleaved, so that the machine's swings hit all alike.
Prints one line per trial and a table (docs/measurement.md, "Statistics").
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isobench import git, worktrees  # noqa: E402
from isobench.demo import build_demo_repo  # noqa: E402
from isobench.measure import lockstep  # noqa: E402
from isobench.measure.job import Revision, Settings  # noqa: E402
from isobench.measure.rounds import measure_commit  # noqa: E402
from isobench.measure.stats import Analysis, compare  # noqa: E402

PATCH_OLD = "    counts = [0] * (len(edges) + 1)\n"


def extra_loop(share: str) -> str:
    """histogram() binning ``values[share]`` once more into a throwaway list: more work, the same result."""
    return (
        PATCH_OLD + "    extra = [0] * (len(edges) + 1)  # controlled extra work\n"
        f"    for value in values{share}:\n"
        "        extra[bisect.bisect_right(edges, value)] += 1\n"
    )


PATCHES = {"slow10": extra_loop("[: len(values) // 10]"), "slow2x": extra_loop("")}
DEFAULTS = Settings()  # what a source that sets nothing gets (the schema's defaults are the same)
BEFORE = Settings(
    rounds=10, max_rounds=10, interleave="sequential"
)  # the defaults before adaptive rounds and auto
ANALYSIS = Analysis()  # the schema's defaults


def prepare(tmp: Path) -> tuple[dict[str, Path], Path]:
    repo = tmp / "demokit"
    shas = build_demo_repo(repo)
    mirror = git.ensure_mirror(str(repo), tmp / "mirror.git")
    trees = {"fast": worktrees.ensure_worktree(mirror, shas["histogram"], tmp / "fast")}
    for name, patch in PATCHES.items():
        trees[name] = tmp / name
        shutil.copytree(trees["fast"], trees[name], ignore=shutil.ignore_patterns(".git"))
        target = trees[name] / "demokit" / "binning.py"
        text = target.read_text()
        assert PATCH_OLD in text
        target.write_text(text.replace(PATCH_OLD, patch, 1))
    generator = ROOT / "demo" / "generators" / f"{shas['histogram'][:8]}_test_case_generator.py"
    return trees, generator


KINDS = {"aa": ("fast", "fast"), "slow10": ("fast", "slow10"), "fast2x": ("slow2x", "fast")}


def trial(generator: Path, trees: dict, kind: str, settings: Settings, scratch: Path) -> dict:
    base, head = KINDS[kind]
    revs = [
        Revision("base", "0" * 40, trees[base]),
        Revision("head", "1" * 40, trees[head]),
        Revision("main", "2" * 40, trees[head]),
    ]
    started = time.monotonic()
    t = measure_commit(generator, revs, scratch, settings, analysis=ANALYSIS)
    wall = time.monotonic() - started
    assert all(x["status"] == "ok" for x in t.values()), {
        k: (v["category"], v["error"]) for k, v in t.items()
    }
    paired = lockstep.paired(t["base"], t["head"])
    cmp = compare(
        t["base"]["rounds_ms"],
        t["head"]["rounds_ms"],
        analysis=ANALYSIS,
        paired=paired,
    )
    noisy = any(w.startswith("noisy machine") for x in t.values() for w in x["warnings"])
    return {
        "speedup": cmp["speedup"],
        "verdict": cmp["verdict"],
        "wall_s": wall,
        "rounds": len(t["base"]["rounds_ms"]),
        "interleave": t["base"]["interleave"],
        "stop": t["base"]["rounds_stop"]["reason"],
        "noisy": noisy,
    }


def share(rows: list[dict], test) -> float:
    return sum(1 for r in rows if test(r)) / len(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--trials", type=int, default=20, help="trials of each kind, for each of the two settings"
    )
    args = ap.parse_args()
    methods = {"defaults now": DEFAULTS, "defaults before": BEFORE}
    results = {(m, k): [] for m in methods for k in KINDS}
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        trees, generator = prepare(tmp)
        for i in range(args.trials):
            for kind in KINDS:
                for method, settings in methods.items():
                    r = trial(generator, trees, kind, settings, tmp / "scratch")
                    results[(method, kind)].append(r)
                    print(
                        f"trial {i + 1}/{args.trials} {kind:<6} {method:<15}: {r['speedup']:.4f} {r['verdict']:<12} "
                        f"{r['rounds']:>2} rounds ({r['interleave']}, {r['stop']}){' noisy' if r['noisy'] else ''}, "
                        f"{r['wall_s']:.1f} s",
                        flush=True,
                    )
    print()
    print(
        f"{args.trials} trials of each kind and setting, {time.monotonic() - started:.0f} s in all; "
        f"min_effect {ANALYSIS.min_effect}, alpha {ANALYSIS.alpha}"
    )
    header = (
        f"{'settings':<17}{'A/A faster|slower':>18}{'A/A no_change':>15}{'10% slower found':>18}"
        f"{'2x measured (median)':>22}{'2x within 10%':>15}{'wall s/commit':>15}{'rounds':>8}"
    )
    print(header)
    for method in methods:
        aa, slow, fast = (results[(method, k)] for k in KINDS)
        every = aa + slow + fast
        print(
            f"{method:<17}{share(aa, lambda r: r['verdict'] in ('faster', 'slower')):>18.0%}"
            f"{share(aa, lambda r: r['verdict'] == 'no_change'):>15.0%}"
            f"{share(slow, lambda r: r['verdict'] == 'slower'):>18.0%}"
            f"{statistics.median(r['speedup'] for r in fast):>22.3f}"
            f"{share(fast, lambda r: abs(r['speedup'] / 2 - 1) <= 0.10):>15.0%}"
            f"{statistics.median(r['wall_s'] for r in every):>15.1f}"
            f"{statistics.median(r['rounds'] for r in every):>8.0f}"
        )
    now = statistics.median(r["wall_s"] for k in KINDS for r in results[("defaults now", k)])
    before = statistics.median(r["wall_s"] for k in KINDS for r in results[("defaults before", k)])
    print(f"median wall time per commit: {now:.1f} s now, {before:.1f} s before ({now / before:.2f}x)")
    print(
        "goals (issue 15): A/A faster|slower <= 5%, A/A no_change >= 80%, 10% slower found >= 90%, 2x within 10%"
    )


if __name__ == "__main__":
    main()
