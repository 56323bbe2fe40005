"""Thin wrappers over the git command line: mirrors, commit facts, diffs, worktrees."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import IsobenchError

SHA_RE = re.compile(r"^[0-9a-f]{40}$")

# git must behave the same on every machine: no user or system config, no pager, no prompts.
GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}


def git(
    *args: str,
    cwd: str | Path | None = None,
    env: dict | None = None,
    check: bool = True,
    input: str | None = None,
    status: bool = False,
):
    """Run git and return its stdout (with ``status``: whether it succeeded); a failure raises
    IsobenchError with git's own message."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, input=input, capture_output=True, text=True, errors="replace"
    )
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise IsobenchError(f"git {args[0]} failed in {cwd or os.getcwd()}: {msg}")
    return proc.returncode == 0 if status else proc.stdout


@contextmanager
def locked(path: Path):
    """An exclusive advisory lock on ``path`` (created if missing), held for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def is_url(repo: str) -> bool:
    return "://" in repo or re.match(r"^[\w.-]+@[\w.-]+:", repo) is not None


def ensure_mirror(repo: str, mirror: Path, fetch: bool = True, identity: str | None = None) -> Path:
    """Create a bare mirror of ``repo`` at ``mirror`` or fetch it (once per run, by the caller).

    A mirror knows its origin: ``identity`` (the source's ``repo:`` as configured; default ``repo``) is kept in
    its git config. When it changes, the old mirror is dropped and ``repo`` mirrored afresh (with a warning), so
    commits never silently come from the repository the source named before. A local path that moved with the
    project (same identity) only updates the remote's URL."""
    mirror = Path(mirror)
    identity = identity or repo
    if not is_url(repo) and not Path(repo).exists():
        raise IsobenchError(f"source repo {repo}: no such path or URL")
    src = repo if is_url(repo) else str(Path(repo).resolve())
    with locked(mirror.with_name(mirror.name + ".lock")):
        if (mirror / "HEAD").exists():
            known = git("config", "--get", "isobench.origin", cwd=mirror, check=False).strip()
            if known and known != identity:
                sys.stderr.write(
                    f"isobench: warning: {mirror}: mirrors {known}, the source now names {identity}: "
                    "mirroring it afresh\n"
                )
                shutil.rmtree(mirror)
            elif git("config", "--get", "remote.origin.url", cwd=mirror, check=False).strip() != src:
                git("remote", "set-url", "origin", src, cwd=mirror)
        if not (mirror / "HEAD").exists():
            if mirror.exists():
                shutil.rmtree(mirror)
            mirror.parent.mkdir(parents=True, exist_ok=True)
            git("clone", "--quiet", "--mirror", src, str(mirror))
        elif fetch:
            git("remote", "update", "--prune", cwd=mirror)
        git("config", "isobench.origin", identity, cwd=mirror)
    return mirror


def resolve(mirror: Path, ref: str) -> str | None:
    """The full SHA of a commit ``ref`` (a name or an abbreviated hash), or None."""
    out = git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=mirror, check=False).strip()
    return out if SHA_RE.match(out) else None


def resolve_many(mirror: Path, refs: list[str]) -> dict[str, str | None]:
    """Resolve many commit refs in one git process (``cat-file --batch-check``)."""
    if not refs:
        return {}
    out = git(
        "cat-file",
        "--batch-check=%(objectname) %(objecttype)",
        cwd=mirror,
        input="".join(f"{r}^{{commit}}\n" for r in refs),
    )
    result: dict[str, str | None] = {}
    for ref, line in zip(refs, out.splitlines()):
        parts = line.split()
        result[ref] = (
            parts[0] if len(parts) == 2 and parts[1] == "commit" and SHA_RE.match(parts[0]) else None
        )
    return result


def first_parents(mirror: Path, shas: list[str]) -> dict[str, str | None]:
    """The first parent of each commit (None for a root commit), in one git process."""
    if not shas:
        return {}
    out = git(
        "rev-list", "--no-walk=unsorted", "--parents", "--stdin", cwd=mirror, input="\n".join(shas) + "\n"
    )
    parents: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts:
            parents[parts[0]] = parts[1] if len(parts) > 1 else None
    return parents


def commit_info(mirror: Path, sha: str) -> dict:
    """Subject, message, author and dates of one commit."""
    sep = "\x1f"
    fmt = sep.join(["%H", "%an <%ae>", "%aI", "%cI", "%ai", "%s", "%B"])
    out = git("show", "-s", f"--format={fmt}", sha, cwd=mirror)
    h, author, adate, cdate, adate_git, subject, body = out.split(sep, 6)
    return {
        "sha": h,
        "author": author,
        "authored_at": adate,
        "committed_at": cdate,
        "date_git": adate_git,
        "subject": subject,
        "message": body.rstrip("\n"),
    }


_MERGE_PR = re.compile(r"^Merge pull request #(\d+)\b")


def merged_pr(mirror: Path, head: str, main: str) -> int | None:
    """The pull request that brought ``head`` into ``main``: the first "Merge pull request #n" merge commit
    on the ancestry path from ``head`` to ``main`` (None when there is none, e.g. squash or rebase merges)."""
    out = git(
        "log",
        "--ancestry-path",
        "--merges",
        "--reverse",
        "--format=%s",
        f"{head}..{main}",
        cwd=mirror,
        check=False,
    )
    for subject in out.splitlines():
        m = _MERGE_PR.match(subject)
        if m:
            return int(m.group(1))
    return None


def changed_files(mirror: Path, base: str, head: str) -> list[dict]:
    """Files changed from ``base`` to ``head`` with change type and line counts."""
    status = git("diff", "--name-status", "--no-renames", base, head, cwd=mirror)
    numstat = git("diff", "--numstat", "--no-renames", base, head, cwd=mirror)
    counts = {}
    for line in numstat.splitlines():
        added, removed, path = line.split("\t", 2)
        counts[path] = (int(added) if added != "-" else 0, int(removed) if removed != "-" else 0)
    kinds = {"A": "added", "D": "deleted", "M": "modified", "T": "modified"}
    files = []
    for line in status.splitlines():
        code, path = line.split("\t", 1)
        added, removed = counts.get(path, (0, 0))
        files.append(
            {
                "file_path": path,
                "change_type": kinds.get(code[0], "modified"),
                "lines_added": added,
                "lines_removed": removed,
            }
        )
    return files


def diff(mirror: Path, base: str, head: str, paths: list[str] | None = None) -> str:
    """The unified diff from ``base`` to ``head`` (binary files as a marker line)."""
    args = ["diff", "--no-color", "--no-renames", "--no-ext-diff", base, head]
    if paths is not None:
        if not paths:
            return ""
        args += ["--", *paths]
    return git(*args, cwd=mirror)


def show_file(mirror: Path, sha: str, path: str) -> str | None:
    out = subprocess.run(
        ["git", "show", f"{sha}:{path}"], cwd=mirror, env={**os.environ, **GIT_ENV}, capture_output=True
    )
    return out.stdout.decode("utf-8", "replace") if out.returncode == 0 else None


# Worktrees of many SHAs of one repository share most of their files: each file's content is stored
# once (read-only) beside the mirror and hard-linked into every worktree that has it.
_LINKED_MODES = {"100644": 0o444, "100755": 0o555, "120000": 0o444}


def _tree(mirror: Path, sha: str) -> list[tuple[str, str, str, str]]:
    """(mode, type, object, path) of every entry of ``sha``'s tree."""
    out = git("ls-tree", "-r", "-z", "--full-tree", sha, cwd=mirror)
    entries = []
    for item in out.split("\0"):
        if item:
            meta, rel = item.split("\t", 1)
            mode, kind, obj = meta.split()
            entries.append((mode, kind, obj, rel))
    return entries


def _stored(store: Path | str, obj: str, mode: str) -> str:
    return f"{store}/{obj[:2]}/{obj}.{mode}"


def _store_blobs(mirror: Path, store: Path, blobs: set[tuple[str, str]]) -> None:
    """Write the missing blobs into the store with one ``git cat-file --batch``."""
    missing = sorted(b for b in blobs if not os.path.exists(_stored(store, *b)))
    if not missing:
        return
    request = "".join(f"{obj}\n" for obj, _ in missing).encode()
    proc = subprocess.run(
        ["git", "cat-file", "--batch"],
        cwd=mirror,
        env={**os.environ, **GIT_ENV},
        input=request,
        capture_output=True,
        check=True,
    )
    data, pos = proc.stdout, 0
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


def _register_worktree(mirror: Path, sha: str, path: Path) -> None:
    """What ``git worktree add --detach --no-checkout`` writes (gitrepository-layout(5): ``worktrees/<id>``
    with HEAD, commondir, gitdir; the worktree's ``.git`` file pointing back), written directly: one git
    process less per worktree (~12 ms, a third of a worktree's cost). Run under the mirror's worktree lock."""
    path = Path(os.path.abspath(path))
    admins = mirror.resolve() / "worktrees"
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


def _linked_checkout(mirror: Path, sha: str, path: Path, store: Path) -> None:
    entries = _tree(mirror, sha)
    _store_blobs(mirror, store, {(obj, mode) for mode, kind, obj, _ in entries if kind == "blob"})
    _register_worktree(mirror, sha, path)
    root, made = str(path), set()
    for mode, kind, obj, rel in entries:  # plain strings and one mkdir per folder: 10,000s of files
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
    git("reset", "--quiet", cwd=path)  # the index from HEAD, with the files' stat data: a clean status


def _drop_modified(mirror: Path, sha: str, path: Path, store: Path) -> None:
    """Files changed in place in a linked worktree changed the store too: drop those store entries."""
    changed = set(git("diff", "--name-only", "-z", cwd=path, check=False).split("\0")) - {""}
    for mode, kind, obj, rel in _tree(mirror, sha):
        if rel in changed and kind == "blob" and os.path.exists(_stored(store, obj, mode)):
            os.unlink(_stored(store, obj, mode))


def ensure_worktree(mirror: Path, sha: str, path: Path) -> Path:
    """A clean detached worktree of ``sha`` at ``path``, shared by every commit that needs it.

    Files are hard links into a per-mirror content store (``<mirror>.blobs``): a hundred worktrees of
    one repository take little more disk than one. Tests cannot write there (sandbox); a file changed
    in place anyway is found by ``git status`` on the next use, and its store entry is rewritten."""
    path, mirror = Path(path), Path(mirror)
    store = mirror.with_name(mirror.name + ".blobs")
    with locked(mirror.with_name(mirror.name + ".worktree.lock")):
        if path.exists():
            head = git("rev-parse", "HEAD", cwd=path, check=False).strip()
            if (
                head == sha
                and not git("status", "--porcelain", "--untracked-files=no", cwd=path, check=False).strip()
            ):
                return path
            if head == sha:
                _drop_modified(mirror, sha, path, store)
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        _linked_checkout(mirror, sha, path, store)
    return path
