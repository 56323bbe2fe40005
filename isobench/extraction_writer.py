"""Write ISO-Bench extraction files (``commit_extractions_with_apis``) from git: the ``isobench extract``
command. ``isobench.extraction`` beside it reads them (and ISO-Bench's other formats) back."""

from __future__ import annotations

from pathlib import Path

from . import git
from .apis import affected_apis, is_test_file
from .errors import IsobenchError
from .jsonio import write_json


def extraction_for(repo: Path, commit: str, with_old_content: bool = False) -> dict:
    """One commit in ISO-Bench's ``commit_extractions_with_apis`` format."""
    head = git.resolve(repo, commit)
    if head is None:
        raise IsobenchError(f"{repo}: commit {commit} not found")
    base = git.first_parents(repo, [head]).get(head)
    if base is None:
        raise IsobenchError(f"{repo}: commit {head} is a root commit: no parent to compare against")
    info = git.commit_info(repo, head)
    files = []
    for f in git.changed_files(repo, base, head):
        entry = {"file_path": f["file_path"]}
        if with_old_content:
            entry["old_content"] = (
                git.show_file(repo, base, f["file_path"]) if f["change_type"] != "added" else None
            )
        entry.update(
            diff=git.diff(repo, base, head, [f["file_path"]]),
            **{k: f[k] for k in ("change_type", "lines_added", "lines_removed")},
        )
        files.append(entry)
    kinds = [f["change_type"] for f in files]
    return {
        "commit_hash": head,
        "parent_hash": base,
        "message": info["message"],
        "author": info["author"],
        "date": info["date_git"],
        "files_changed": files,
        "affected_apis": affected_apis(
            repo, base, head, [f["file_path"] for f in files if not is_test_file(f["file_path"])]
        ),
        "summary": {
            "total_files": len(files),
            "files_added": kinds.count("added"),
            "files_deleted": kinds.count("deleted"),
            "files_modified": kinds.count("modified"),
        },
    }


def commits_matching(repo: Path, pattern: str, ref: str = "HEAD") -> list[str]:
    """Commits reachable from ``ref`` whose message matches ``pattern`` (git log --grep), oldest first."""
    out = git.git("log", "--reverse", "--format=%H", f"--grep={pattern}", "-E", ref, cwd=repo)
    return out.split()


def write_extractions(
    repo: Path, commits: list[str], out_dir: Path, with_old_content: bool = False
) -> list[Path]:
    """Write ``<sha>.json`` per commit into ``out_dir``; return the paths written."""
    written = []
    for commit in commits:
        data = extraction_for(repo, commit, with_old_content)
        path = Path(out_dir) / f"{data['commit_hash']}.json"
        write_json(path, data, sort_keys=False)  # ISO-Bench's key order: commit_hash, parent_hash first
        written.append(path)
    return written
