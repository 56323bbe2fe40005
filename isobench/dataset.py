"""dataset.jsonl: every record, validated, in a deterministic order, one object per line; and what keeps records
and the dataset trustworthy across runs, kills and hand edits.

- Each record.json has a seal beside it (``record_seal.json``: its sha256 as the record step wrote it). At the
  start of a run (``protect_results``) a record that no longer matches its seal — damaged, or edited by hand —
  is set aside and rebuilt from its inputs in that same run: hand-edited numbers never reach the dataset.
- The dataset is written by the dataset step but is not a Snakemake output (Snakemake deletes a job's outputs
  before the job runs, and a killed or failed job would leave none): the rule's output is a copy of it,
  ``<dataset>.complete``, written last; ``<dataset>.sha256`` holds their digest. At the start of a run a
  dataset that is missing, truncated or edited is set aside and the last complete one restored from the copy
  (or, without one, rebuilt): the last complete dataset always exists.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

from .errors import IsobenchError
from .jsonio import dumps, load_json, sha256_bytes, sha256_file, validate, write_text_atomic

RECORD_SEAL = (
    "record_seal.json"  # beside each record.json: the sha256 of the record as the record step wrote it
)


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


def record_seal(record_path: str | Path) -> Path:
    return Path(record_path).with_name(RECORD_SEAL)


def write_record(path: str | Path, record: dict, seal: str | Path | None = None) -> None:
    """record.json, then its seal (``record_seal.json`` beside it unless ``seal`` names another file)."""
    text = dumps(record) + "\n"
    write_text_atomic(path, text)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    seal_doc = {"schema_version": 1, "written_at": stamp, "sha256": sha256_bytes(text.encode("utf-8"))}
    validate(seal_doc, "seal", str(seal or record_seal(path)))
    write_text_atomic(seal or record_seal(path), dumps(seal_doc) + "\n")


def record_problem(path: Path) -> tuple[str, str] | None:
    """(kind, why) of a record file that is not what the record step wrote: ``damaged`` (not JSON, failing its
    schema), ``edited`` (valid, but its sha256 differs from its seal) or ``unsealed`` (valid, without a seal);
    None when it is what the record step wrote. One sha256 per record: cheap for thousands."""
    try:
        sealed = load_json(record_seal(path)).get("sha256")
    except (IsobenchError, AttributeError):
        sealed = None
    if sealed and sha256_file(path) == sealed:
        return None
    try:
        check_record(path)
    except IsobenchError as exc:
        return "damaged", str(exc)
    if sealed is None:  # written by an older isobench, or its record job was interrupted
        return "unsealed", f"no valid {RECORD_SEAL} beside it: not known to be what the record step wrote"
    return "edited", f"its sha256 differs from {RECORD_SEAL}: changed after the record step wrote it"


def set_aside(
    path: str | Path,
    why: str,
    kind: str = "damaged",
    then: str = "",
    keep: bool = False,
    what: str = "record",
) -> Path:
    """Move (``keep``: copy) a damaged or edited file to ``<name>.<kind>-<time>``, never over an earlier one:
    nothing is deleted, nothing set aside is trusted again. One warning line, ``then`` saying what follows."""
    path = Path(path)
    stamp = int(time.time())
    aside, n = path.with_name(f"{path.name}.{kind}-{stamp}"), 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.name}.{kind}-{stamp}-{n}")
    if keep:
        shutil.copy2(path, aside)
    else:
        os.replace(path, aside)
    sys.stderr.write(
        f"isobench: warning: {path}: {kind} {what} ({why}); {'copied' if keep else 'moved'} to {aside.name}"
        f"{'; ' + then if then else ''}\n"
    )
    return aside


def damaged_records(record_paths: list[Path]) -> list[Path]:
    """Set aside every record that is not what the record step wrote (``record_problem``), so that this run
    rebuilds it from its inputs; returns where they went."""
    out = []
    for path in record_paths:
        try:
            problem = record_problem(path) if path.is_file() else None
            if problem:
                out.append(set_aside(path, problem[1], problem[0], "it is rebuilt from its inputs"))
        except OSError as exc:
            sys.stderr.write(f"isobench: warning: {path}: cannot check it ({exc.strerror})\n")
    return out


COMPLETE = ".complete"


def complete_copy(dataset: str | Path) -> str:
    """``<dataset>.complete``: the copy of the last complete dataset, and the dataset rule's output."""
    return f"{dataset}{COMPLETE}"


def dataset_of(copy: str | Path) -> str:
    """The dataset whose copy ``copy`` is (``complete_copy``'s inverse)."""
    return str(copy)[: -len(COMPLETE)]


def dataset_digest(dataset: str | Path) -> Path:
    """``<dataset>.sha256``: the sha256 of the last complete dataset, as ``sha256sum -c`` reads it."""
    return Path(f"{dataset}.sha256")


def write_dataset(record_paths: list[str | Path], out: str | Path, complete: str | Path | None = None) -> int:
    """Write the dataset from every record, atomically, then its digest and (``complete``) its copy. A damaged
    record is set aside (rebuilt by the next run, never propagated) and the dataset is left as it was: a one-line
    error."""
    records, damaged = [], []
    for path in record_paths:
        try:
            records.append(check_record(path))
        except IsobenchError as exc:
            damaged.append(set_aside(path, str(exc), then="the next run rebuilds it"))
    if damaged:
        raise IsobenchError(
            f"{damaged[0].parent / 'record.json'}: damaged record (set aside as {damaged[0].name}); the dataset "
            f"{out} is left as it was: run again to rebuild the record"
        )
    merged = merge(records)
    text = "".join(dumps(r, indent=None, sort_keys=False) + "\n" for r in merged)
    write_text_atomic(out, text)
    write_text_atomic(dataset_digest(out), f"{sha256_bytes(text.encode('utf-8'))}  {Path(out).name}\n")
    if complete:
        write_text_atomic(complete, text)  # last: its presence says the job finished
    return len(merged)


def _sealed_digest(dataset: Path) -> str | None:
    try:
        text = dataset_digest(dataset).read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0] if text and len(text[0]) == 64 else None


def _parses(path: Path) -> str | None:
    """None when every line of ``path`` is a JSON object, else why not."""
    try:
        read_dataset(path)
    except IsobenchError as exc:
        return str(exc)
    return None


def _restore(copy: Path, dataset: Path) -> None:
    tmp = dataset.with_name(f".{dataset.name}.restoring")
    shutil.copyfile(copy, tmp)
    os.replace(tmp, dataset)


def protect_dataset(dataset: Path) -> str | None:
    """Before the DAG is built: make sure ``dataset`` holds the last complete dataset, or that this run rebuilds
    it. A dataset that is missing, or not the one its digest names, is set aside (a parsable one copied, a
    damaged one moved) and the last complete copy restored when it is intact; without an intact copy, the copy
    is removed so that the dataset rule runs. Returns what was done (None: nothing)."""
    copy, sealed = Path(complete_copy(dataset)), _sealed_digest(dataset)
    copy_ok = copy.is_file() and sealed is not None and sha256_file(copy) == sealed
    if dataset.is_file():
        if sealed is not None and sha256_file(dataset) == sealed:
            if copy_ok or not copy.exists():
                return None
            copy.unlink()  # a damaged copy: the rule runs again and writes an intact one
            return "rebuild"
        why = _parses(dataset)
        if sealed is None:  # no digest (results of an older version): only a damaged dataset is set aside
            if why:
                set_aside(dataset, why, then="it is rebuilt in this run", what="dataset")
            elif not copy.exists():
                return None
            copy.unlink(missing_ok=True)
            return "rebuild"
        kind, keep = ("damaged", False) if why else ("edited", not copy_ok)
        why = (
            why
            or f"its sha256 differs from {dataset_digest(dataset).name}: changed after the dataset step wrote it"
        )
        then = (
            f"the last complete dataset is restored from {copy.name}"
            if copy_ok
            else "it is rebuilt from the records in this run"
        )
        set_aside(dataset, why, kind, then, keep=keep, what="dataset")
    elif copy_ok:
        sys.stderr.write(
            f"isobench: warning: {dataset}: missing; the last complete dataset is restored from {copy.name}\n"
        )
    if copy_ok:
        _restore(copy, dataset)
        return "restored"
    copy.unlink(missing_ok=True)
    return "rebuild"


def protect_results(record_paths: list[Path], dataset: Path) -> None:
    """At the start of a run (the main process, before the DAG is built): records that are not what the record
    step wrote are set aside and rebuilt; the dataset is the last complete one, or is rebuilt."""
    damaged_records(record_paths)
    try:
        protect_dataset(dataset)
    except OSError as exc:
        raise IsobenchError(
            f"{exc.filename or dataset}: cannot check the dataset ({exc.strerror}); check the folder's permissions"
        ) from None


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
