"""Read ISO-Bench extraction files (one file each, a JSON Lines bundle, or a commit collection) and normalize
them with git facts. Each format is a module of isobench/formats/ (how it is recognized, its schema, what it
contributes); ``isobench.extraction_writer`` beside it writes the first format (``isobench extract``).

git is the authority for the diff, the message and the dates; the extraction
file contributes the commit identity, the parent (first format), the affected
APIs and extra context (perf command, models, PR URL).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from . import formats, git
from .apis import api_names, is_test_file, qualified_names, touched
from .errors import CommitFailure, IsobenchError
from .jsonio import parse_json, sha256_bytes, validate
from .untrusted import MAX_BUNDLE_BYTES, read_input, shown

__all__ = [
    "is_test_file",
    "detect_format",
    "is_extraction",
    "read_extraction",
    "bundle_lines",
    "commit_id_of_file",
    "normalize",
    "failed_extraction",
]

_PR_URL = re.compile(r"/pull/(\d{1,9})\b")
_PR_SUBJECT = re.compile(r"\(#(\d{1,9})\)\s*$")  # a squash-merged subject: "Speed up X (#21079)"


def detect_format(data) -> str:
    """The name of the format of a parsed extraction (isobench/formats/); IsobenchError when none claims it."""
    return formats.detect(data).name


def is_extraction(data) -> bool:
    """An extraction of some format names its commit at the top level; a summary or an index does not."""
    return isinstance(data, dict) and "commit_hash" in data


def read_extraction(path: str | Path, origin: str | None = None) -> tuple[str, dict]:
    """Load, detect and validate one extraction file: (format, data). ``origin`` names it in errors (a line of
    a JSON Lines bundle: ``bundle.jsonl:7``)."""
    fmt, data, _ = _load_extraction(path, origin)
    return fmt, data


def _load_extraction(path: str | Path, origin: str | None) -> tuple[str, dict, bytes]:
    """(format, data, the bytes read): a regular file of bounded size only (isobench.untrusted.read_input)."""
    where = origin or str(path)
    try:
        raw = read_input(path)
    except IsobenchError as exc:
        raise IsobenchError(str(exc).replace(str(path), where, 1) if origin else str(exc)) from None
    data = parse_json(raw, where)
    try:
        fmt = detect_format(data)
    except IsobenchError as exc:
        raise IsobenchError(f"{where}: {exc}") from None
    validate(data, formats.FORMATS[fmt].schema, where)
    return fmt, data, raw


def bundle_lines(path: str | Path) -> tuple[list[tuple[int, str, str]], list[str]]:
    """The extractions of a JSON Lines bundle: ([(line number, commit id, line text)], warnings).

    A line that names no commit (not JSON, not an object, no ``commit_hash``) is left out with a
    warning naming the file and line; a line that names its commit but is broken is kept, so that its
    commit fails with an error naming the file and line."""
    entries, warnings = [], []
    raw = read_input(path, MAX_BUNDLE_BYTES, "a JSON Lines bundle")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise IsobenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        commit = None
        try:
            data = json.loads(line)
            if is_extraction(data) and isinstance(data["commit_hash"], str):
                commit = data["commit_hash"].lower()
        except (json.JSONDecodeError, RecursionError):
            commit = formats.commit_in_text(line)
        if commit is None:
            warnings.append(
                f"{path}:{number}: not an extraction of any known format (no commit_hash); skipped"
            )
            continue
        entries.append((number, commit, line))
    return entries, warnings


def commit_id_of_file(path: Path) -> str | None:
    """The commit named by an extraction file's name (its last run of 7-40 hex digits)."""
    found = re.findall(r"(?<![0-9a-f])[0-9a-f]{7,40}(?![0-9a-f])", path.stem.lower())
    return found[-1] if found else None


def _pr_from_data(data: dict) -> int | None:
    """The pull request a file names: ``pr_number``, ``pr``, its ``pr_url``, else a subject ending ``(#n)``."""
    for key in ("pr_number", "pr"):
        if isinstance(data.get(key), int) and not isinstance(data.get(key), bool) and data[key] > 0:
            return data[key]
    m = _PR_URL.search(str(data.get("pr_url") or "")) or _PR_SUBJECT.search(_subject(data))
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _message(data: dict) -> str:
    return _text(data.get("message")) or _text(data.get("commit_message"))


def _subject(data: dict) -> str:
    """The commit's subject as a file of any format gives it (its own field, else its message's first line)."""
    return _text(data.get("subject")) or _text(data.get("commit_subject")) or _message(data).split("\n")[0]


def known_facts(raw: bytes) -> dict:
    """What a file (its bytes) says of a commit that cannot be used (not in the repository, another repository's,
    a duplicate): its PR, APIs, date, subject and message, for the failed record. Nothing when it is unreadable."""
    try:
        data = json.loads(raw)
        fmt = formats.detect(data)
    except (IsobenchError, ValueError, RecursionError):
        return {}
    date = next((data[k] for k in ("date", "commit_date", "pr_date") if _text(data.get(k))), None)
    facts = {
        "pr_number": _pr_from_data(data),
        "subject": _subject(data),
        "message": _message(data) or _subject(data),
        "affected_apis": fmt.apis(data),
        "created_at": date,
    }
    return {k: v for k, v in facts.items() if v not in (None, "", [])}


def _format_facts(fmt: str, data: dict, info: dict, warnings: list[str]) -> tuple[list[str], dict]:
    """(affected APIs, extra context) contributed by the extraction file."""
    form = formats.FORMATS[fmt]
    message = form.message(data)
    if message and message.strip() != info["message"].strip():
        warnings.append("the extraction's message differs from git's; git's is used")
    return form.apis(data), form.extra(data)


def normalize(
    *,
    source: str,
    repo_name: str,
    mirror: Path,
    commit: str,
    extraction_file: str | Path | None,
    origin: str | None = None,
) -> dict:
    """Build the per-commit ``extraction.json`` for ``commit`` of one source (``origin``: where the file's
    content came from, when not the file itself, e.g. a bundle's line). The PR is the one the file names;
    a record falls back on the merge commit that brought the commit into main (isobench.git.merged_pr)."""
    warnings: list[str] = []
    try:
        fmt, data, raw = (
            ("git", {}, None) if extraction_file is None else _load_extraction(extraction_file, origin)
        )
    except IsobenchError as exc:
        raise CommitFailure("extraction_invalid", str(exc)) from None
    where = (origin or str(extraction_file)) if extraction_file else f"source {source}"
    wanted = data.get("commit_hash", commit)
    if (
        extraction_file is not None
        and not wanted.lower().startswith(commit.lower())
        and not commit.lower().startswith(wanted.lower())
    ):
        raise CommitFailure(
            "extraction_invalid",
            f"{where}: field commit_hash: {wanted} does not match the commit {commit} named by the file",
        )
    head = git.resolve(mirror, wanted)
    if head is None:
        field = "field commit_hash" if extraction_file else f"config: field sources.{source}.commits"
        prefix = f"{where}: " if extraction_file else ""
        raise CommitFailure(
            "commit_not_found",
            f"{prefix}{field}: commit {shown(wanted)} not found in the repository of source {source}",
        )
    parent_from = "git"
    base = None
    if data.get("parent_hash"):
        base = git.resolve(mirror, data["parent_hash"])
        if base is None:
            raise CommitFailure(
                "commit_not_found",
                f"{where}: field parent_hash: commit {data['parent_hash']} not found "
                f"in the repository of source {source}",
            )
        parent_from = "extraction"
        first = git.first_parents(mirror, [head]).get(head)
        if first != base:
            warnings.append(f"parent_hash {base[:12]} is not the first parent of {head[:12]} in git")
    else:
        base = git.first_parents(mirror, [head]).get(head)
        if base is None:
            raise CommitFailure(
                "no_parent", f"{where}: commit {head} has no parent: nothing to compare against"
            )
    info = git.commit_info(mirror, head)
    files = git.changed_files(mirror, base, head)
    for f in files:
        f["is_test"] = is_test_file(f["file_path"])
    code_paths = [f["file_path"] for f in files if not f["is_test"]]
    test_paths = [f["file_path"] for f in files if f["is_test"]]
    in_code = touched(mirror, base, head, code_paths)  # each file read once: APIs and patch_functions
    if fmt == "git":
        apis, extra = api_names(in_code), {}
    else:
        apis, extra = _format_facts(fmt, data, info, warnings)
    pr = _pr_from_data(data)
    return {
        "schema_version": 1,
        "status": "ok",
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
        "patch_functions": qualified_names(in_code),
        "test_functions": qualified_names(touched(mirror, base, head, test_paths)),
        "pr_number": pr,
        "extraction_file": (origin or str(extraction_file)) if extraction_file else None,
        "extraction_sha256": sha256_bytes(raw) if raw is not None else None,
        "warnings": warnings,
        "extra": extra,
    }


def failed_extraction(
    *,
    source: str,
    repo_name: str,
    commit: str,
    head: str | None,
    base: str | None,
    extraction_file: str | Path | None,
    origin: str | None,
    category: str,
    error: str,
) -> dict:
    """The ``extraction.json`` of a commit whose inputs are unusable: it still becomes a record (status failed),
    with what its file says (PR, APIs, date, subject, message) where the file can be read."""
    raw = None
    if extraction_file is not None:
        try:
            raw = read_input(extraction_file)
        except IsobenchError:  # a folder, a device, a FIFO, too large: its error says so
            pass
    return {
        **(known_facts(raw) if raw is not None else {}),  # what the file says survives the failure
        "schema_version": 1,
        "status": "failed",
        "category": category,
        "error": error,
        "source": source,
        "repo": repo_name,
        "commit": commit,
        "head_commit": head,
        "base_commit": base,
        "extraction_file": origin or (str(extraction_file) if extraction_file else None),
        "extraction_sha256": sha256_bytes(raw) if raw is not None else None,
    }
