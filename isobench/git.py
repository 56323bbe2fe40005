"""Git access: GitPython for the mirror (cloning, fetching) and the repository's objects (commits and their
facts, diffs as Diff objects, blobs); the git command line, run through GitPython, only where GitPython
has no API or a much slower one: many revisions (``cat-file --batch-check``) and first parents
(``rev-list``) in one process each, worktree contents (``ls-tree``, ``cat-file --batch``), the text of a
diff, config values (git's quoting), registering a worktree (``worktree add``), its index and status."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import git as gitpython  # GitPython: absolute import, not this module (isobench.git)

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
    IsobenchError with git's own message. For callers outside this module (and tests)."""
    full_env = {**os.environ, **GIT_ENV, **(env or {})}
    proc = subprocess.run(
        ["git", *args], cwd=cwd, env=full_env, input=input, capture_output=True, text=True, errors="replace"
    )
    if check and proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise IsobenchError(f"git {args[0]} failed in {cwd or os.getcwd()}: {msg}")
    return proc.returncode == 0 if status else proc.stdout


@contextmanager
def _errors(where: str | Path):
    """GitPython's exceptions as IsobenchError with a one-line message (git's last line of stderr)."""
    try:
        yield
    except gitpython.GitCommandError as exc:
        text = str(exc.stderr).strip().removeprefix("stderr: '").removesuffix("'")  # GitPython's framing
        lines = [line.strip() for line in text.splitlines() if line.strip()] or ["(no message)"]
        lines = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines
        cmd = exc.command[1] if isinstance(exc.command, (list, tuple)) and len(exc.command) > 1 else "command"
        raise IsobenchError(f"git {cmd} failed in {where}: {lines[-1]}") from None
    except (gitpython.InvalidGitRepositoryError, gitpython.NoSuchPathError):
        raise IsobenchError(f"{where}: not a git repository") from None
    except (gitpython.GitError, gitpython.exc.ODBError, ValueError, KeyError, IndexError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise IsobenchError(f"git: {where}: {first}") from None


@contextmanager
def open_repo(path: str | Path):
    """The repository at ``path`` (bare mirror or worktree), its git processes under GIT_ENV and ended
    (GitPython keeps ``cat-file`` ones running) when the block ends."""
    with _errors(path):
        repo = gitpython.Repo(path)
        repo.git.update_environment(**GIT_ENV)
        try:
            yield repo
        finally:
            repo.close()


@contextmanager
def stdin_lines(lines):
    """A file of ``lines`` for a git command's standard input (GitPython's ``istream``)."""
    with tempfile.TemporaryFile() as fh:
        fh.write("".join(f"{line}\n" for line in lines).encode())
        fh.seek(0)
        yield fh


def _config(repo: gitpython.Repo, key: str) -> str:
    """A config value as git reads it (GitPython's parser keeps git's quoting of ``"`` and ``\\``)."""
    return repo.git.config("--get", key, with_exceptions=False).strip()


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
        known = ""
        if (mirror / "HEAD").exists():
            with open_repo(mirror) as existing:
                known = _config(existing, "isobench.origin")
            if known and known != identity:
                sys.stderr.write(
                    f"isobench: warning: {mirror}: mirrors {known}, the source now names {identity}: "
                    "mirroring it afresh\n"
                )
                shutil.rmtree(mirror)
        if not (mirror / "HEAD").exists():
            if mirror.exists():
                shutil.rmtree(mirror)
            mirror.parent.mkdir(parents=True, exist_ok=True)
            with _errors(src):
                gitpython.Repo.clone_from(src, str(mirror), mirror=True, env=GIT_ENV).close()
            known, fetch = "", False
        with open_repo(mirror) as repo:
            origin = repo.remote("origin")
            if _config(repo, "remote.origin.url") != src:  # also undoes GitPython's rewrite after a clone
                origin.set_url(src)
            if fetch:
                origin.fetch(prune=True, verbose=False)
            if known != identity:
                repo.git.config("isobench.origin", identity)
    return mirror


def _commit_shas(repo: gitpython.Repo, refs: list[str]) -> dict[str, str | None]:
    """git's own revision parser for all ``refs`` in one ``cat-file --batch-check`` request (GitPython's
    ``rev_parse``, ``get_object_header`` take one ref at a time: a round trip each, 4 to 8 times as slow)."""
    asked = [ref for ref in refs if "\n" not in ref]  # one request is one line
    with stdin_lines(f"{ref}^{{commit}}" for ref in asked) as request:
        out = repo.git.cat_file("--batch-check=%(objectname) %(objecttype)", istream=request) if asked else ""
    found = {}
    for ref, line in zip(asked, out.split("\n")):
        parts = line.split()
        found[ref] = parts[0] if len(parts) == 2 and parts[1] == "commit" and SHA_RE.match(parts[0]) else None
    return {ref: found.get(ref) for ref in refs}


def _commits(repo: gitpython.Repo, *refs: str) -> list[gitpython.Commit]:
    shas = _commit_shas(repo, list(refs))
    for ref in refs:
        if shas[ref] is None:
            raise IsobenchError(f"git: {repo.git_dir}: no commit {ref}")
    return [gitpython.Commit(repo, bytes.fromhex(shas[ref])) for ref in refs]


def resolve(mirror: Path, ref: str) -> str | None:
    """The full SHA of a commit ``ref`` (a name or an abbreviated hash), or None."""
    with open_repo(mirror) as repo:
        return _commit_shas(repo, [ref])[ref]


def resolve_many(mirror: Path, refs: list[str]) -> dict[str, str | None]:
    """Resolve many commit refs in one git process."""
    if not refs:
        return {}
    with open_repo(mirror) as repo:
        return _commit_shas(repo, refs)


def first_parents(mirror: Path, shas: list[str]) -> dict[str, str | None]:
    """The first parent of each commit (None for a root commit), in one git process: ``rev-list`` (reading
    each commit through GitPython takes 20 times as long for thousands of them)."""
    if not shas:
        return {}
    with open_repo(mirror) as repo, stdin_lines(shas) as request:
        out = repo.git.rev_list("--no-walk=unsorted", "--parents", "--stdin", istream=request)
    parents: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts:
            parents[parts[0]] = parts[1] if len(parts) > 1 else None
    return parents


def _subject(message: str) -> str:
    """git's ``%s``: the message's first paragraph, its lines joined by spaces."""
    lines: list[str] = []
    for line in message.split("\n"):
        line = line.rstrip(" \t\r")
        if not line and lines:
            break
        if line:
            lines.append(line)
    return " ".join(lines)


def commit_info(mirror: Path, sha: str) -> dict:
    """Subject, message, author and dates of one commit."""
    with open_repo(mirror) as repo:
        (commit,) = _commits(repo, sha)
        authored, committed = commit.authored_datetime, commit.committed_datetime
        message = commit.message.replace("\r\n", "\n").replace("\r", "\n")  # as git's output read as text
        return {
            "sha": commit.hexsha,
            "author": f"{commit.author.name} <{commit.author.email or ''}>",
            "authored_at": authored.isoformat(),
            "committed_at": committed.isoformat(),
            "date_git": authored.strftime("%Y-%m-%d %H:%M:%S %z"),
            "subject": _subject(message),
            "message": message.rstrip("\n"),
        }


_MERGE_PR = re.compile(r"^Merge pull request #(\d+)\b")


def merged_pr(mirror: Path, head: str, main: str) -> int | None:
    """The pull request that brought ``head`` into ``main``: the first "Merge pull request #n" merge commit
    on the ancestry path from ``head`` to ``main`` (None when there is none, e.g. squash or rebase merges)."""
    try:
        with open_repo(mirror) as repo:
            merges = repo.iter_commits(f"{head}..{main}", ancestry_path=True, merges=True, reverse=True)
            for commit in merges:
                m = _MERGE_PR.match(_subject(commit.message))
                if m:
                    return int(m.group(1))
    except IsobenchError:
        pass
    return None


def changed_files(mirror: Path, base: str, head: str) -> list[dict]:
    """Files changed from ``base`` to ``head`` with change type and line counts (binary files: none)."""
    files: dict[str, dict] = {}
    with open_repo(mirror) as repo:
        old, new = _commits(repo, base, head)
        for patch in old.diff(new, create_patch=True, no_renames=True):
            path = patch.b_path or patch.a_path
            kind = "added" if patch.new_file else "deleted" if patch.deleted_file else "modified"
            if path in files:  # a type change (file to symlink...): deleted, then added
                kind = files[path]["change_type"] = "modified"
            entry = files.setdefault(
                path, dict(file_path=path, change_type=kind, lines_added=0, lines_removed=0)
            )
            for line in patch.diff.split(b"\n"):  # the hunks: header lines are not part of it
                if line.startswith(b"+"):
                    entry["lines_added"] += 1
                elif line.startswith(b"-"):
                    entry["lines_removed"] += 1
    return list(files.values())


def diff(mirror: Path, base: str, head: str, paths: list[str] | None = None) -> str:
    """The unified diff from ``base`` to ``head`` (binary files as a marker line): git's own text, which
    GitPython's Diff objects do not give back whole."""
    args = ["--no-color", "--no-renames", "--no-ext-diff", base, head]
    if paths is not None:
        if not paths:
            return ""
        args += ["--", *paths]
    with open_repo(mirror) as repo:
        out = repo.git.diff(*args, stdout_as_string=False, strip_newline_in_stdout=False)
    return out.decode("utf-8", "replace")


def show_file(mirror: Path, sha: str, path: str) -> str | None:
    try:
        with open_repo(mirror) as repo:
            blob = _commits(repo, sha)[0].tree / path
            if blob.type != "blob":
                return None
            return blob.data_stream.read().decode("utf-8", "replace")
    except IsobenchError:
        return None
