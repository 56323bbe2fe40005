"""What the sandbox costs one run of a test: start to end of a trivial test process, bare and in each sandbox.

    python benchmarks/sandbox_overhead.py [--runs 30]

Runs ``python -c pass`` (the revision's interpreter, as the harness is run) through isobench's own
``Sandbox.run`` with each local backend available here (bubblewrap, unshare) and bare, alternating the three
run by run, and prints the median wall time of each and the difference to the bare process. The sandbox is
paid once per round (a fresh process), never inside the timed calls.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isobench.measure import view  # noqa: E402
from isobench.measure.containers import Runner  # noqa: E402
from isobench.measure.job import Job, Revision, Settings  # noqa: E402
from isobench.measure.sandbox import Command, SandboxSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="isobench-sandbox-bench-"))
    (tmp / "tree").mkdir()
    generator = tmp / "generator.py"
    generator.write_text("def setup():\n    return 1\n\ndef experiment(x):\n    return x\n")
    backends = ["bubblewrap"] if view.bwrap_works() is None else []
    backends.append("unshare")
    jobs = {
        b: Job(
            generator,
            tmp / f"scratch-{b}",
            Settings(),
            sandbox=SandboxSettings(backend=b, require_isolation=False),
            runner=Runner(),
        )
        for b in backends
    }
    rev = Revision("head", "0" * 40, tmp / "tree")
    times: dict[str, list[float]] = {b: [] for b in ["bare", *backends]}
    for i in range(args.runs):
        for name in times:
            start = time.perf_counter()
            if name == "bare":
                subprocess.run([sys.executable, "-c", "pass"], check=True)
            else:
                job = jobs[name]
                command = Command(
                    [sys.executable, "-c", "pass"], job.data / f"r{i}", {}, [rev.worktree], sys.executable
                )
                run = job.sandbox.run(command, 60)
                assert run.exit_code() == 0, (run.workdir / "stderr.txt").read_text()
            times[name].append(time.perf_counter() - start)
    bare = statistics.median(times["bare"])
    print(f"one run of `python -c pass`, median of {args.runs}, alternated in this one run:")
    for name, values in times.items():
        med = statistics.median(values)
        extra = "" if name == "bare" else f"  (+{(med - bare) * 1000:.0f} ms over bare)"
        print(f"  {name:10s} {med * 1000:7.1f} ms{extra}")


if __name__ == "__main__":
    main()
