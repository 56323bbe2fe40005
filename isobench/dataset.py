"""dataset.jsonl: every record, validated, in a deterministic order, one object per line."""

from __future__ import annotations

from pathlib import Path

from .errors import IsobenchError
from .jsonio import dumps, load_json, validate, write_text_atomic


def sort_key(record: dict) -> tuple:
    return (record["repo"], record["created_at"], record["head_commit"])


def merge(records: list[dict]) -> list[dict]:
    """One record per (repo, head_commit), the later one winning; sorted."""
    by_key = {}
    for record in records:
        by_key[(record["repo"], record["head_commit"])] = record
    return sorted(by_key.values(), key=sort_key)


def write_dataset(record_paths: list[str | Path], out: str | Path) -> int:
    records = []
    for path in record_paths:
        record = load_json(path)
        validate(record, "record", str(path))
        records.append(record)
    merged = merge(records)
    write_text_atomic(out, "".join(dumps(r, indent=None, sort_keys=False) + "\n" for r in merged))
    return len(merged)


def read_dataset(path: str | Path) -> list[dict]:
    import json

    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise IsobenchError(f"{path}: line {lineno}: invalid JSON: {exc.msg}") from None
                    if not isinstance(rows[-1], dict):
                        raise IsobenchError(f"{path}: line {lineno}: not a JSON object")
    except UnicodeDecodeError as exc:
        raise IsobenchError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return rows


def read_records(path: str | Path) -> list[dict]:
    """The dataset's lines, each validated as a record (a one-line error names the line and field)."""
    rows = read_dataset(path)
    for lineno, row in enumerate(rows, 1):
        validate(row, "record", f"{path}: line {lineno}")
    return rows
