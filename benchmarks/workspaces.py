"""Workspaces: one bare mirror plus a worktree per SHA (isobench) against a clone per commit (ISO-Bench).

    python benchmarks/workspaces.py [--commits 5000] [--targets 50]

A synthetic repository of --commits commits is served over file:// (so both sides copy objects, as a
clone from GitHub would; no hard links). For --targets commits spread over its history:
- isobench: `isobench.git.ensure_mirror` once, then `ensure_worktree` for every SHA needed (base and head
  of each target, main once), each shared by the commits that need it;
- per-commit clones: for each target, a full clone checked out at head (base checked out in the same clone
  when measured, as ISO-Bench did).
Prints time and disk of both, measured in this one run, and the ratios.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthetic import du, make_repo  # noqa: E402

from isobench import git  # noqa: E402


def ours(url: str, shas: list[str], work: Path) -> tuple[float, int]:
    started = time.monotonic()
    mirror = git.ensure_mirror(url, work / "_git" / "mirror.git")
    for sha in shas:
        git.ensure_worktree(mirror, sha, work / "_worktrees" / sha)
    return time.monotonic() - started, du(work)


def clones(url: str, targets: list[tuple[str, str]], work: Path) -> tuple[float, int]:
    started = time.monotonic()
    for i, (base, head) in enumerate(targets):
        dest = work / f"clone{i}"
        subprocess.run(["git", "clone", "--quiet", "--no-local", url, str(dest)], check=True)
        subprocess.run(["git", "checkout", "--quiet", base], cwd=dest, check=True)
        subprocess.run(["git", "checkout", "--quiet", head], cwd=dest, check=True)
    return time.monotonic() - started, du(work)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--targets", type=int, default=50)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="isobench-ws-") as tmp:
        tmp = Path(tmp)
        t0 = time.monotonic()
        history = make_repo(tmp / "repo", args.commits)
        step = (len(history) - 2) // args.targets
        picked = [history[1 + i * step] for i in range(args.targets)]
        parents = {h: history[history.index(h) - 1] for h in picked}
        targets = [(parents[h], h) for h in picked]
        needed = sorted({s for pair in targets for s in pair} | {history[-1]})
        url = (tmp / "repo").resolve().as_uri()
        print(
            f"repository: {len(history)} commits, {du(tmp / 'repo' / '.git') / 1e6:.1f} MB of history, "
            f"made in {time.monotonic() - t0:.1f} s; {len(targets)} target commits, {len(needed)} SHAs needed"
        )
        t_ours, d_ours = ours(url, needed, tmp / "ours")
        t_clone, d_clone = clones(url, targets, tmp / "clones")
        print(f"isobench mirror + {len(needed)} worktrees: {t_ours:7.1f} s  {d_ours / 1e6:8.1f} MB")
        print(f"a clone per commit ({len(targets)} clones):    {t_clone:7.1f} s  {d_clone / 1e6:8.1f} MB")
        print(
            f"ratio (clones / isobench): time {t_clone / t_ours:.1f}x, disk {d_clone / d_ours:.1f}x "
            f"(goal: >= 10x for both)"
        )
        shutil.rmtree(tmp / "clones", ignore_errors=True)


if __name__ == "__main__":
    main()
