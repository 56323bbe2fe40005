"""Candidates' patches: normalized, told apart, and applied strictly to a fresh tree of the record's base.

``git apply --check`` then ``git apply`` (new, deleted, renamed and binary files, a missing final newline: git's
own rules); other methods only when the evaluation's config asks (``apply: 3way`` tries ``git apply --3way``,
``apply: fuzzy`` then ``patch --fuzz``, each in a fresh tree, never after a partial apply) and the row says which
one worked. A patch that does not apply is ``patch_failed`` with git's message and is never timed.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..git import GIT_ENV, locked

EMPTY_DIGEST = "empty"
TEST_PATH = re.compile(
    r"(^|/)(tests?|testing|benchmarks?)/|(^|/)test_[^/]*\.py$|_test\.py$|(^|/)conftest\.py$"
)
# files that build or install the package, or run code when any Python starts (a candidate's sitecustomize.py on
# the path runs before the harness)
BUILD_PATH = re.compile(
    r"(^|/)(setup\.py|setup\.cfg|pyproject\.toml|CMakeLists\.txt|Makefile|MANIFEST\.in|build\.py|"
    r"requirements[^/]*\.txt|sitecustomize\.py|usercustomize\.py)$|\.cmake$|\.pth$|(^|/)\.github/"
)
# sources a build compiles: a hunk in one changes nothing until the tree is built (isobench/evaluate/job.py)
COMPILED_PATH = re.compile(r"\.(c|cc|cpp|cxx|cu|cuh|h|hh|hpp|hxx|pyx|pxd|rs|f|f90)$")
METHODS = {"strict": ("git",), "3way": ("git", "3way"), "fuzzy": ("git", "3way", "fuzz")}
_DIFF_PATHS = re.compile(r"^diff --git a/(.+?) b/(.+)$", re.M)
_PLUS_MINUS = re.compile(r"^(?:\+\+\+|---) (?:[ab]/)?(.+?)(?:\t.*)?$", re.M)


def normalized(patch: str | None) -> str:
    """The patch as compared for identity: LF line ends, no ``index`` lines (blob ids depend on the tool that
    wrote them), no trailing blank lines. An empty or null patch is ``""``."""
    if not patch or not patch.strip():
        return ""
    lines = patch.replace("\r\n", "\n").split("\n")
    lines = [ln for ln in lines if not ln.startswith("index ")]
    return "\n".join(lines).rstrip("\n") + "\n"


def digest(patch: str | None) -> str:
    """sha256 of the normalized patch (``empty`` for no change)."""
    norm = normalized(patch)
    return hashlib.sha256(norm.encode("utf-8", "surrogatepass")).hexdigest() if norm else EMPTY_DIGEST


def touched_paths(patch: str) -> list[str]:
    """The files a patch names (both sides of a rename)."""
    paths = set()
    for a, b in _DIFF_PATHS.findall(patch):
        paths.update((a, b))
    for p in _PLUS_MINUS.findall(patch):
        if p != "/dev/null":
            paths.add(p)
    return sorted(paths)


def compiled_paths(patch: str) -> list[str]:
    """The compiled sources ``patch`` touches (C, C++, CUDA, Cython, Rust, Fortran)."""
    return sorted(p for p in touched_paths(patch) if COMPILED_PATH.search(p))


def flags_of(patch: str, test_files: set[str]) -> dict:
    """touches_tests: the record's test files, or any test or benchmark path; touches_build: build, install or
    interpreter start-up files. Both are measured and kept out of success counts."""
    paths = touched_paths(patch)
    tests = sorted(p for p in paths if p in test_files or TEST_PATH.search(p))
    build = sorted(p for p in paths if BUILD_PATH.search(p))
    return {
        "touches_tests": bool(tests),
        "touches_build": bool(build),
        "test_paths": tests,
        "build_paths": build,
    }


def test_files(record: dict) -> set[str]:
    """The files the record's own test patch touches."""
    return set(touched_paths(record.get("test_patch") or ""))


@dataclass
class Applied:
    status: str  # applied or patch_failed
    method: str | None  # git, 3way or fuzz
    message: str  # git's (or patch's) own words
    files: list[str]


def _env() -> dict:
    return {**os.environ, **GIT_ENV}


def _run(argv: list[str], cwd: Path) -> tuple[bool, str]:
    """(succeeded, its stderr and stdout) of a git or patch command; never reads stdin."""
    proc = subprocess.run(argv, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, env=_env())
    out = (proc.stderr or b"").decode(errors="replace") + (proc.stdout or b"").decode(errors="replace")
    return proc.returncode == 0, out.strip()


def fresh_tree(mirror: Path, sha: str, path: Path) -> None:
    """A new checkout of ``sha`` at ``path`` (a git worktree of the mirror): whatever was there is removed first,
    so a candidate never starts from a used tree."""
    mirror = Path(mirror).resolve()
    drop_tree(mirror, path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(mirror.with_name(mirror.name + ".worktree.lock")):
        add = ["git", f"--git-dir={mirror}", "worktree", "add", "--detach", "--force", str(path), sha]
        ok, out = _run(add, path.parent)
    if not ok:
        raise RuntimeError(f"git worktree add {sha[:12]} failed: {out.splitlines()[-1] if out else ''}")


def drop_tree(mirror: Path, path: Path) -> None:
    mirror = Path(mirror).resolve()
    if path.exists():
        shutil.rmtree(path, ignore_errors=True)
    with locked(mirror.with_name(mirror.name + ".worktree.lock")):
        _run(["git", f"--git-dir={mirror}", "worktree", "prune"], mirror)


def apply_patch(mirror: Path, sha: str, patch: str, tree: Path, method: str = "strict") -> Applied:
    """Apply ``patch`` to a fresh tree of ``sha`` at ``tree`` by the first method of ``method``'s list that
    checks clean; each try starts from a fresh tree."""
    patch_file = tree.with_name(tree.name + ".patch")
    patch_file.parent.mkdir(parents=True, exist_ok=True)
    text = patch.replace("\r\n", "\n")
    patch_file.write_text(
        text if text.endswith("\n") else text + "\n", encoding="utf-8", errors="surrogateescape"
    )
    messages = []
    for how in METHODS[method]:
        fresh_tree(mirror, sha, tree)
        if how == "git":
            ok, out = _run(["git", "apply", "--check", "--whitespace=nowarn", str(patch_file)], tree)
            if ok:
                ok, out = _run(["git", "apply", "--whitespace=nowarn", str(patch_file)], tree)
        elif how == "3way":
            ok, out = _run(["git", "apply", "--3way", "--whitespace=nowarn", str(patch_file)], tree)
            ok = ok and not _run(["git", "diff", "--name-only", "--diff-filter=U"], tree)[1]
        else:
            ok, out = _run(["patch", "--dry-run", "-p1", "--fuzz=3", "-i", str(patch_file)], tree)
            if ok:
                ok, out = _run(
                    ["patch", "-p1", "--fuzz=3", "--no-backup-if-mismatch", "-i", str(patch_file)], tree
                )
        if ok:
            return Applied("applied", how, out, changed_files(tree))
        messages.append(f"{how}: {out}" if len(METHODS[method]) > 1 else out)
    drop_tree(mirror, tree)
    return Applied("patch_failed", None, "\n".join(messages)[-4000:] or "the patch does not apply", [])


def changed_files(tree: Path) -> list[str]:
    ok, out = _run(["git", "status", "--porcelain", "--untracked-files=all"], tree)
    return sorted(line[3:] for line in out.splitlines() if len(line) > 3) if ok else []


def applied_diff(tree: Path) -> str:
    """What the tree now differs from its base by, as git sees it (binary files included)."""
    _run(["git", "add", "-A"], tree)
    proc = subprocess.run(
        ["git", "diff", "--cached", "--binary", "HEAD"], cwd=tree, capture_output=True, env=_env()
    )
    _run(["git", "reset", "-q"], tree)
    return proc.stdout.decode(errors="replace")
