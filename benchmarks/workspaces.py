"""Workspaces: one bare mirror plus a worktree per SHA (isobench) against a clone per commit (ISO-Bench).

    python benchmarks/workspaces.py [--commits 5000] [--targets 50] [--rounds 2]

A synthetic repository of --commits commits is served over file:// (so both sides copy objects, as a
clone from GitHub would; no hard links). For --targets commits spread over its history:
- isobench: `isobench.git.ensure_mirror` once, then `isobench.worktrees.ensure_worktree` for every SHA needed
  (base and head of each target, main once), each shared by the commits that need it;
- per-commit clones: for each target, a full clone checked out at head (base checked out in the same clone
  when measured, as ISO-Bench did).
Prints time and disk of both, measured in this one run, and the ratios.

isobench's worktrees are registered by git (`git worktree add --no-checkout`), then filled with hard links
from the content store. They are measured side by side with isobench's former way, writing the files git
writes directly (`hand_written`, a copy kept here): each SHA's worktree is made both ways, in alternating
order, mean of --rounds rounds. git's way is kept unless writing directly is faster by more than 20%.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from synthetic import du, make_repo  # noqa: E402

from isobench import git, worktrees  # noqa: E402


def hand_written(repo, sha: str, path: Path) -> None:
    """isobench's former registration, kept here to be measured: what `git worktree add --detach
    --no-checkout` writes (gitrepository-layout(5): `worktrees/<id>` with HEAD, commondir, gitdir; the
    worktree's `.git` file pointing back), written directly."""
    path = Path(os.path.abspath(path))
    admins = Path(repo.git_dir).resolve() / "worktrees"
    admin, n = admins / path.name, 1
    while admin.exists():  # this folder's old registration is reused; another folder's is left alone
        gitdir = admin / "gitdir"
        if not gitdir.exists() or gitdir.read_text().strip() in (f"{path}/.git", ""):
            break
        admin, n = admins / f"{path.name}{n}", n + 1
    admin.mkdir(parents=True, exist_ok=True)
    for name, text in (("HEAD", sha), ("commondir", "../.."), ("gitdir", f"{path}/.git")):
        (admin / name).write_text(text + "\n")
    (admin / "index").unlink(missing_ok=True)
    path.mkdir(parents=True, exist_ok=True)
    (path / ".git").write_text(f"gitdir: {admin}\n")


WAYS = {"git": worktrees._register_worktree, "direct": hand_written}


def ours(url: str, shas: list[str], work: Path) -> dict[str, tuple[float, float]]:
    """Both registrations side by side, each with a mirror (and content store) of its own: the worktree of
    each SHA made one way then the other, the order alternating, so that both meet the disk in the same
    state. Per way: seconds for the mirror and for the worktrees."""
    mirrors, spent = {}, {}
    for way in WAYS:
        started = time.monotonic()
        mirrors[way] = git.ensure_mirror(url, work / way / "_git" / "mirror.git")
        spent[way] = [time.monotonic() - started, 0.0]
    try:
        for i, sha in enumerate(shas):
            for way in list(WAYS) if i % 2 == 0 else list(WAYS)[::-1]:
                worktrees._register_worktree = WAYS[way]
                started = time.monotonic()
                worktrees.ensure_worktree(mirrors[way], sha, work / way / "_worktrees" / sha)
                spent[way][1] += time.monotonic() - started
    finally:
        worktrees._register_worktree = WAYS["git"]
    for way in WAYS:
        listed = git.git("worktree", "list", "--porcelain", cwd=mirrors[way]).count("\ndetached")
        assert listed == len(shas), f"{way}: git lists {listed} worktrees, not {len(shas)}"
    return {way: (mirror, trees) for way, (mirror, trees) in spent.items()}


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
    parser.add_argument("--rounds", type=int, default=2, help="runs of both registrations (mean printed)")
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
        totals = {way: [0.0, 0.0] for way in WAYS}
        for r in range(args.rounds):
            work = tmp / f"ours{r}"
            for way, times in ours(url, needed, work).items():
                totals[way] = [t + u / args.rounds for t, u in zip(totals[way], times)]
            d_ours = du(work / "git")
            shutil.rmtree(work)
        for way, label in (
            ("git", "registered by git (`git worktree add --no-checkout`, isobench's way):"),
            ("direct", "written directly (isobench's former way, a copy in this script): "),
        ):
            mirror, trees = totals[way]
            print(
                f"{label} mirror {mirror:.2f} s + the {len(needed)} worktrees {trees:.2f} s "
                f"({1000 * trees / len(needed):.1f} ms each)"
            )
        w_git, w_direct = totals["git"][1], totals["direct"][1]
        t_ours, t_direct = sum(totals["git"]), sum(totals["direct"])
        faster = w_git / w_direct - 1  # 20% faster: git's way takes 1.2 times as long
        print(
            f"direct / git: worktrees {w_direct / w_git:.2f}x, mirror + worktrees {t_direct / t_ours:.2f}x: "
            f"writing directly makes worktrees {100 * faster:.0f}% faster ({100 * (1 - w_direct / w_git):.0f}% "
            f"less time), {'more' if faster > 0.2 else 'not more'} than 20% (mean of {args.rounds} rounds)"
        )
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
