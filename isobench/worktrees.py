"""Worktrees: a clean detached checkout of each SHA a commit needs, shared by every commit that needs it.

Git registers each worktree (``git worktree add --no-checkout``) in the source's bare mirror; its files are
hard links into a per-mirror content store (``<mirror>.blobs``, one read-only file per blob), so a hundred
worktrees of one repository take little more disk than one (benchmarks/workspaces.py)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import git as gitpython  # GitPython

from .errors import IsobenchError
from .git import locked, open_repo, stdin_lines

# Worktrees of many SHAs of one repository share most of their files: each file's content is stored
# once (read-only) beside the mirror and hard-linked into every worktree that has it.
_LINKED_MODES = {"100644": 0o444, "100755": 0o555, "120000": 0o444}


def _tree(repo: gitpython.Repo, sha: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, object, path) of every entry of ``sha``'s tree, from one ``ls-tree`` (GitPython reads
    trees and blobs one object at a time: about 4 ms, 15%, more per worktree)."""
    entries = []
    for item in repo.git.ls_tree("-r", "-z", "--full-tree", sha).split("\0"):
        if item:
            meta, rel = item.split("\t", 1)
            mode, kind, obj = meta.split()
            entries.append((mode, kind, obj, rel))
    return entries


def _stored(store: Path | str, obj: str, mode: str) -> str:
    return f"{store}/{obj[:2]}/{obj}.{mode}"


def _store_blobs(repo: gitpython.Repo, store: Path, blobs: set[tuple[str, str]]) -> None:
    """Write the missing blobs into the store with one ``git cat-file --batch`` request for them all
    (GitPython's ``odb.stream`` asks for one object at a time: a round trip each)."""
    missing = sorted(b for b in blobs if not os.path.exists(_stored(store, *b)))
    if not missing:
        return
    with stdin_lines(obj for obj, _ in missing) as request:
        data = repo.git.cat_file(
            "--batch", istream=request, stdout_as_string=False, strip_newline_in_stdout=False
        )
    pos = 0
    for obj, mode in missing:
        end = data.index(b"\n", pos)
        size = int(data[pos:end].split()[2])
        content, pos = data[end + 1 : end + 1 + size], end + 2 + size
        target = _stored(store, obj, mode)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = f"{target}.{os.getpid()}.tmp"
        if os.path.lexists(tmp):  # left by a killed run of this pid number: read-only, so replace it
            os.unlink(tmp)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _LINKED_MODES[mode])
        with open(fd, "wb") as handle:
            handle.write(content)
            os.fchmod(fd, _LINKED_MODES[mode])  # exactly this mode, whatever the umask
        os.replace(tmp, target)


def _register_worktree(repo: gitpython.Repo, sha: str, path: Path) -> None:
    """git registers the worktree (``worktrees/<id>`` in the mirror, the folder's ``.git``), files left out:
    they are linked from the store. ``--force`` twice takes over the registration of a folder deleted by
    hand, even one left locked by a ``worktree add`` killed half-way. Writing those files directly made
    worktrees 15 to 23% faster (19% on average): not measurably more than the 20% that would justify it
    (benchmarks/workspaces.py measures both)."""
    target = os.path.abspath(path)
    repo.git.worktree("add", "--no-checkout", "--detach", "--force", "--force", "--quiet", target, sha)


def _safe_path(rel: str) -> bool:
    """A tree entry's path that stays inside the worktree: relative, no empty, ``.``, ``..`` or ``.git`` part."""
    parts = rel.split("/")
    return not rel.startswith("/") and all(p not in ("", ".", "..") and p.lower() != ".git" for p in parts)


def _linked_checkout(repo: gitpython.Repo, sha: str, path: Path, store: Path) -> None:
    entries = _tree(repo, sha)
    _store_blobs(repo, store, {(obj, mode) for mode, kind, obj, _ in entries if kind == "blob"})
    _register_worktree(repo, sha, path)
    root, made = str(path), set()
    for mode, kind, obj, rel in entries:  # plain strings and one mkdir per folder: 10,000s of files
        if not _safe_path(rel):  # a crafted tree must not write outside its worktree (git refuses these too)
            raise IsobenchError(f"commit {sha}: tree entry {rel!r} is not a safe path; not checked out")
        dest = f"{root}/{rel}"
        folder = os.path.dirname(dest)
        if folder not in made:
            os.makedirs(folder, exist_ok=True)
            made.add(folder)
        if kind == "commit":  # a submodule: an empty folder, as git leaves it
            os.makedirs(dest, exist_ok=True)
        elif mode == "120000":
            with open(_stored(store, obj, mode), "rb") as handle:
                os.symlink(handle.read().decode(), dest)
        elif mode in _LINKED_MODES:
            os.link(_stored(store, obj, mode), dest)
    with open_repo(path) as worktree:  # the index from HEAD, with the files' stat data: a clean status
        worktree.git.reset("--quiet")


def _worktree_state(path: Path) -> tuple[str | None, set[str] | None]:
    """HEAD of the worktree at ``path`` (None when it is none) and, when it is not clean, its files changed
    in place (None when clean). Cleanness by ``git status``: GitPython's ``is_dirty`` takes two processes
    and leaves the index's stat data stale (every hard link made since changed the files' ctime)."""
    try:
        with open_repo(path) as worktree:
            head = gitpython.SymbolicReference.dereference_recursive(worktree, "HEAD")  # no git process
            if not worktree.git.status("--porcelain", "--untracked-files=no").strip():
                return head, None
            return head, {change.a_path for change in worktree.index.diff(None)}
    except IsobenchError:
        return None, set()


def _drop_modified(repo: gitpython.Repo, sha: str, changed: set[str], store: Path) -> None:
    """Files changed in place in a linked worktree changed the store too: drop those store entries."""
    for mode, kind, obj, rel in _tree(repo, sha):
        if rel in changed and kind == "blob" and os.path.exists(_stored(store, obj, mode)):
            os.unlink(_stored(store, obj, mode))


def folder_of(marker: str | Path) -> Path:
    """The worktree of the marker ``results/<source>/_worktrees/<sha>.json``: ``results/<source>/_worktrees/<sha>``,
    found by the marker's place, never by its contents (a folder named in a file would be removed and
    replaced by ``ensure_worktree``)."""
    return Path(marker).with_suffix("")


def ensure_worktree(mirror: Path, sha: str, path: Path) -> Path:
    """A clean detached worktree of ``sha`` at ``path``, shared by every commit that needs it.

    Files are hard links into a per-mirror content store (``<mirror>.blobs``): a hundred worktrees of
    one repository take little more disk than one. Tests cannot write there (sandbox); a file changed
    in place anyway is found by ``git status`` on the next use, and its store entry is rewritten."""
    path, mirror = Path(path), Path(mirror)
    store = mirror.with_name(mirror.name + ".blobs")
    with locked(mirror.with_name(mirror.name + ".worktree.lock")), open_repo(mirror) as repo:
        if path.exists():
            head, changed = _worktree_state(path)
            if head == sha and changed is None:
                return path
            if head == sha and changed:
                _drop_modified(repo, sha, changed, store)
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _linked_checkout(repo, sha, path, store)
    return path
