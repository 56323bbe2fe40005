"""What "did the test run the change?" costs a measure job, and that it leaves the timings alone.

    python benchmarks/coverage_cost.py [--pairs 3] [--steps primes histogram]

Builds the demo repository, and for each demo commit measures its bundled generated test (demo/generators/)
at base, head and main with ``measure.coverage`` off and on, alternating the two job by job, with a fixed
number of rounds. Prints per commit: the median wall time of a job each way and the difference (the two traced
calls, base and head), the head median time of the test each way (the timed calls are never traced, so their
ratio is 1 within the machine's noise), and the coverage verdict.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isobench.demo import build_demo_repo  # noqa: E402
from isobench.measure.coverage import Change, combine  # noqa: E402
from isobench.measure.job import Revision, Settings  # noqa: E402
from isobench.measure.rounds import measure_commit  # noqa: E402


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=3, help="jobs each way per commit")
    parser.add_argument("--steps", nargs="+", default=["primes", "histogram", "regex"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="isobench-coverage-bench-"))
    repo = tmp / "demokit"
    shas = build_demo_repo(repo)
    main_sha = git(repo, "rev-parse", "HEAD").strip()
    settings = Settings(rounds=3, max_rounds=3, warmup=1, warmup_ms=20, repeat=10, timeout_s=120)
    print(
        f"{'commit':<10} {'job off s':>9} {'job on s':>9} {'extra s':>8} {'head ms off':>11} "
        f"{'head ms on':>10} {'ratio':>6}  coverage"
    )
    for step in args.steps:
        head = shas[step]
        base = git(repo, "rev-parse", f"{head}^").strip()
        revisions = []
        for name, sha in (("base", base), ("head", head), ("main", main_sha)):
            path = tmp / f"{step}-{name}"
            git(repo, "worktree", "add", "-q", "--detach", str(path), sha)
            revisions.append(Revision(name, sha, path))
        patch = git(repo, "diff", base, head, "--", ".", ":(exclude)tests")
        change = Change.of({"patch": patch, "patch_functions": []})
        generator = ROOT / "demo" / "generators" / f"{head[:8]}_test_case_generator.py"
        walls: dict[bool, list[float]] = {False: [], True: []}
        medians: dict[bool, list[float]] = {False: [], True: []}
        verdict = None
        for i in range(args.pairs):
            for on in (False, True) if i % 2 == 0 else (True, False):
                start = time.perf_counter()
                timings = measure_commit(
                    generator, revisions, tmp / "scratch", replace(settings, coverage=on), change=change
                )
                walls[on].append(time.perf_counter() - start)
                if timings["head"]["stats"]:
                    medians[on].append(timings["head"]["stats"]["median"])
                if on:
                    verdict = combine(timings["base"]["coverage"], timings["head"]["coverage"])
        off_s, on_s = statistics.median(walls[False]), statistics.median(walls[True])
        off_ms = statistics.median(medians[False]) if medians[False] else float("nan")
        on_ms = statistics.median(medians[True]) if medians[True] else float("nan")
        covered = verdict["changed_lines_covered"] if verdict else None
        print(
            f"{step:<10} {off_s:>9.2f} {on_s:>9.2f} {on_s - off_s:>8.2f} {off_ms:>11.4g} {on_ms:>10.4g} "
            f"{on_ms / off_ms:>6.3f}  {verdict['status'] if verdict else '-'}"
            + (f", {covered:.0%} of changed lines" if covered is not None else "")
        )


if __name__ == "__main__":
    main()
