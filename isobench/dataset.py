"""dataset.jsonl: every record, validated, in a deterministic order, one object per line."""

from __future__ import annotations

import json
import os
import sys
import time
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


def check_record(path: str | Path) -> dict:
    """A record file, parsed and validated (a one-line IsobenchError when damaged)."""
    record = load_json(path)
    validate(record, "record", str(path))
    return record


def set_aside(path: str | Path, why: str) -> Path:
    """Move a damaged record out of the way (kept for inspection, never trusted): Snakemake then rebuilds it from
    its inputs."""
    path = Path(path)
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    os.replace(path, aside)
    sys.stderr.write(
        f"isobench: warning: {path}: damaged record ({why}); moved to {aside.name}, it is rebuilt from "
        "its inputs\n"
    )
    return aside


def write_dataset(record_paths: list[str | Path], out: str | Path) -> int | None:
    """Write the dataset from every record, atomically; None (the old dataset left as it was) when a record is
    damaged: it is set aside and rebuilt by the next run, never propagated."""
    records, damaged = [], []
    for path in record_paths:
        try:
            records.append(check_record(path))
        except IsobenchError as exc:
            damaged.append(path)
            set_aside(path, str(exc))
    if damaged:
        if not Path(out).exists():
            raise IsobenchError(f"{damaged[0]}: damaged record; run again to rebuild it (no dataset yet)")
        return None
    merged = merge(records)
    write_text_atomic(out, "".join(dumps(r, indent=None, sort_keys=False) + "\n" for r in merged))
    return len(merged)


def damaged_records(record_paths: list[Path], dataset: Path) -> list[Path]:
    """Set aside the records that are damaged, looking at those the dataset does not hold yet (newer than it):
    what the next dataset job would otherwise fail on."""
    since = dataset.stat().st_mtime if dataset.exists() else None
    out = []
    for path in record_paths:
        try:
            if not path.is_file() or (since is not None and path.stat().st_mtime <= since):
                continue
            check_record(path)
        except FileNotFoundError:
            continue
        except IsobenchError as exc:
            out.append(set_aside(path, str(exc)))
    return out


def read_dataset(path: str | Path) -> list[dict]:

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
