"""Read ISO-Bench extraction files (two formats) and normalize them with git facts.

Formats:
- ``commit_extractions_with_apis``: ``commit_hash``, ``parent_hash``, ``message``,
  ``files_changed`` as objects with ``file_path``/``diff``/... and ``affected_apis``.
- ``pr_analysis``: no ``parent_hash`` (resolved from git), ``commit_subject``,
  ``commit_message``, ``diff_text``, ``files_changed`` as paths and ``apis``.

git is the authority for the diff, the message and the dates; the extraction
file contributes the commit identity, the parent (first format), the affected
APIs and extra context (perf command, models, PR URL).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from . import git
from .errors import IsobenchError
from .jsonio import load_json, sha256_file, validate

FORMATS = ("commit_extractions_with_apis", "pr_analysis")
_TEST_DIRS = {"test", "tests", "testing", "e2e", "unittests"}
_TEST_NAME = re.compile(r"^(test_.*|.*_tests?|conftest)\.py$")
# Keys of the PR-analysis format kept as context for the prompt and the record.
_PR_EXTRA = ("pr_url", "pr_date", "perf_command", "models", "lm_eval_commands", "test_details", "stats")


def is_test_file(path: str) -> bool:
    """True for files that belong in ``test_patch`` rather than ``patch``."""
    p = PurePosixPath(path)
    return bool(_TEST_DIRS & {part.lower() for part in p.parts[:-1]}) or bool(_TEST_NAME.match(p.name))


def detect_format(data) -> str:
    if not isinstance(data, dict):
        raise IsobenchError(f"expected a JSON object, got {type(data).__name__}")
    files = data.get("files_changed")
    if "parent_hash" in data or (isinstance(files, list) and files and isinstance(files[0], dict)):
        return "commit_extractions_with_apis"
    if any(k in data for k in ("commit_subject", "diff_text", "pr_url")):
        return "pr_analysis"
    if "commit_hash" in data and "message" in data:
        return "commit_extractions_with_apis"
    raise IsobenchError(
        "unsupported extraction format (expected commit_extractions_with_apis keys such as parent_hash "
        "or pr_analysis keys such as commit_subject)"
    )


def read_extraction(path: str | Path) -> tuple[str, dict]:
    """Load, detect and validate one extraction file: (format, data)."""
    data = load_json(path)
    try:
        fmt = detect_format(data)
    except IsobenchError as exc:
        raise IsobenchError(f"{path}: {exc}") from None
    validate(data, "extraction_commit" if fmt == FORMATS[0] else "extraction_pr", str(path))
    return fmt, data


def commit_id_of_file(path: Path) -> str | None:
    """The commit named by an extraction file's name (its last run of 7-40 hex digits)."""
    found = re.findall(r"(?<![0-9a-f])[0-9a-f]{7,40}(?![0-9a-f])", path.stem.lower())
    return found[-1] if found else None


def normalize(
    *,
    source: str,
    repo_name: str,
    mirror: Path,
    commit: str,
    extraction_file: str | Path | None,
) -> dict:
    """Build the per-commit ``extraction.json`` for ``commit`` of one source."""
    warnings: list[str] = []
    fmt, data = ("git", {}) if extraction_file is None else read_extraction(extraction_file)
    where = str(extraction_file) if extraction_file else f"source {source}"
    wanted = data.get("commit_hash", commit)
    if extraction_file is not None and not wanted.lower().startswith(commit.lower()) and not commit.lower().startswith(wanted.lower()):
        raise IsobenchError(f"{where}: field commit_hash: {wanted} does not match the commit {commit} named by the file")
    head = git.resolve(mirror, wanted)
    if head is None:
        field = "field commit_hash" if extraction_file else f"config: field sources.{source}.commits"
        where = str(extraction_file) if extraction_file else ""
        raise IsobenchError(f"{where + ': ' if where else ''}{field}: commit {wanted} not found in the repository of source {source}")
    parent_from = "git"
    base = None
    if data.get("parent_hash"):
        base = git.resolve(mirror, data["parent_hash"])
        if base is None:
            raise IsobenchError(f"{where}: field parent_hash: commit {data['parent_hash']} not found in the repository of source {source}")
        parent_from = "extraction"
        first = git.first_parents(mirror, [head]).get(head)
        if first != base:
            warnings.append(f"parent_hash {base[:12]} is not the first parent of {head[:12]} in git")
    else:
        base = git.first_parents(mirror, [head]).get(head)
        if base is None:
            raise IsobenchError(f"{where}: commit {head} has no parent: nothing to compare against")
    info = git.commit_info(mirror, head)
    files = git.changed_files(mirror, base, head)
    for f in files:
        f["is_test"] = is_test_file(f["file_path"])
    code_paths = [f["file_path"] for f in files if not f["is_test"]]
    test_paths = [f["file_path"] for f in files if f["is_test"]]
    if fmt == "commit_extractions_with_apis":
        apis = list(data.get("affected_apis") or [])
        extra = {k: data[k] for k in ("summary", "csv_metadata") if k in data}
        if data.get("message") and data["message"].strip() != info["message"].strip():
            warnings.append("the extraction's message differs from git's; git's is used")
    elif fmt == "pr_analysis":
        apis = list(data.get("apis") or [])
        extra = {k: data[k] for k in _PR_EXTRA if data.get(k) not in (None, "", [])}
    else:
        from .apis import affected_apis

        apis = affected_apis(mirror, base, head, code_paths)
        extra = {}
    return {
        "schema_version": 1,
        "source": source,
        "format": fmt,
        "repo": repo_name,
        "head_commit": head,
        "base_commit": base,
        "parent_from": parent_from,
        "subject": info["subject"],
        "message": info["message"],
        "author": info["author"],
        "created_at": info["authored_at"],
        "files_changed": files,
        "patch": git.diff(mirror, base, head, code_paths),
        "test_patch": git.diff(mirror, base, head, test_paths),
        "affected_apis": apis,
        "extraction_file": str(extraction_file) if extraction_file else None,
        "extraction_sha256": sha256_file(extraction_file) if extraction_file else None,
        "warnings": warnings,
        "extra": extra,
    }
