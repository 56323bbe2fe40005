"""``commit_collection``: the output of ISO-Bench's commit-collection step: ``commit_hash``, ``subject``,
``message``, ``date``, ``files_changed`` as paths, ``apis``, ``diff_text``, ``stats``. ISO-Bench writes them one
file per commit, or all of a repository's in one file ``{"repo_name", "repo_url", "performance_commits": [...]}``
(``entries``), beside its ``extraction_summary.json``."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ..untrusted import MAX_BUNDLE_BYTES, read_input, shown
from .base import Format, register

LIST_KEY = "performance_commits"  # a whole collection in one file


@register
class CommitCollection(Format):
    name = "commit_collection"
    schema = "extraction_collection"
    markers = ("subject",)
    extra_keys = ("stats",)

    def rank(self, data: dict) -> int | None:
        return 2 if "subject" in data and "commit_hash" in data else None


def entries(path: str | Path) -> tuple[dict, list[tuple[int, str, str]], list[str]] | None:
    """The commits of a collection file ``{"repo_name", "repo_url", "performance_commits": [...]}``:
    ({repo_name, repo_url}, [(index, commit id, the entry as JSON text)], warnings), or None when the file is not
    one. An entry that names no commit is left out with a warning naming the file and its index."""
    raw = read_input(path, MAX_BUNDLE_BYTES, "a commit collection")
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get(LIST_KEY), list):
        return None
    found, warnings = [], []
    for index, item in enumerate(data[LIST_KEY]):
        commit = item.get("commit_hash") if isinstance(item, dict) else None
        if not isinstance(commit, str):
            warnings.append(f"{path}: {LIST_KEY}[{index}] names no commit (no commit_hash); skipped")
            continue
        found.append((index, commit.lower(), json.dumps(item, ensure_ascii=False)))
    repo = {k: data.get(k) if isinstance(data.get(k), str) else None for k in ("repo_name", "repo_url")}
    return repo, found, warnings


def may_be_collection(text: str) -> bool:
    """Whether a file's text (its first bytes) may hold a whole collection (``entries`` decides)."""
    return f'"{LIST_KEY}"' in text


def _repo_words(text: str | None) -> set[str]:
    """The names a repository goes by: ``owner/name`` and ``name`` (from a URL, a path or a name), lower case."""
    if not text:
        return set()
    tail = re.sub(r"(\.git)?/*$", "", text.strip()).lower()
    parts = [p for p in re.split(r"[/:]", tail) if p]
    return {"/".join(parts[-2:]), parts[-1]} if len(parts) >= 2 else set(parts)


def problem(path: str | Path, repo: dict, source: str, names: list[str | None]) -> str | None:
    """Why a collection file is not the source's (its repo_url or repo_name names another repository), or None.
    ``names``: what the source goes by (its repo, repo_name). A file that names no repository is not checked."""
    known = set().union(*(_repo_words(n) for n in names))
    for field in ("repo_url", "repo_name"):
        given = _repo_words(repo.get(field))
        if given and not given & known:
            return (
                f"{path}: field {field}: {shown(repo[field])} is not the repository of source {source} "
                f"({', '.join(shown(n) for n in names if n)})"
            )
    return None
