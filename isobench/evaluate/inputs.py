"""Agents' predictions as agents already write them, one ``Prediction`` per line or run read.

Formats (``read_predictions``), told apart by what a path is:
- a ``.jsonl`` file: SWE-bench / GSO / SWE-Perf / SWE-fficiency predictions, one JSON object per line with
  ``instance_id``, ``model_name_or_path``, ``model_patch`` (optional ``attempt``, ``run_id``); a ``.json`` file
  holds the same objects as a list (or as an object keyed by instance id);
- GSO's K prediction files of one model: several such files; a line without ``attempt`` gets the next attempt
  number of its (instance, model) in the order the files are given, so file k holds attempt k;
- a folder of ``<instance_id>.diff`` / ``.patch`` files: one model, named after the folder;
- ISO-Bench agent runs: a folder holding ``<agent>/<model>/<timestamp>/<item>/journal.json`` beside
  ``model_patch.diff``: the model is ``<agent>/<model>``, the journal's ``commits.human`` and ``commits.pre`` name
  the record, runs of one (model, commit) are attempts in timestamp order.

A line or run that cannot be read is still a ``Prediction``, with its ``problem`` (``invalid_prediction``): every
line read becomes exactly one row of the evaluation.
"""

from __future__ import annotations

import glob
import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import IsobenchError
from ..untrusted import read_input, shown

MAX_PREDICTIONS_BYTES = 512 << 20  # one predictions file, read whole at planning
MAX_PATCH_BYTES = 32 << 20  # one patch
PATCH_SUFFIXES = (".diff", ".patch")


@dataclass(frozen=True)
class Prediction:
    """One prediction as read: where from, for which instance and model, the patch (None: none given)."""

    file: str
    line: int | None  # the line (JSON Lines), the item (a JSON list), None for a patch file or an agent run
    format: str  # predictions_jsonl, predictions_json, patch_folder, isobench_run
    instance_id: str | None
    model: str | None
    patch: str | None
    attempt: int | None = None
    run_id: str | None = None
    hints: dict = field(default_factory=dict)  # {head, base}: commits the input names besides the instance id
    problem: str | None = None  # why it cannot be used (invalid_prediction)

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line is not None else self.file


def expand(spec, base: Path) -> list[Path]:
    """The paths a config's ``predictions`` names (a path, a glob, or a list of them), in order, each once;
    relative to ``base``. A name that matches nothing is an error naming it."""
    items = [spec] if isinstance(spec, str) else list(spec)
    out: list[Path] = []
    for item in items:
        pattern = str(item if Path(item).is_absolute() else base / item)
        found = sorted(glob.glob(pattern), key=_natural) if glob.has_magic(pattern) else [pattern]
        found = [f for f in found if Path(f).exists()]
        if not found:
            raise IsobenchError(f"predictions: {item} matches no file or folder")
        out += [Path(f) for f in found if Path(f) not in out]
    return out


def _natural(text: str):
    """Natural order (file 2 before file 10), as GSO sorts its K prediction files."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(text))]


def read_predictions(paths: list[Path]) -> list[Prediction]:
    """Every prediction of ``paths`` (see the module's doc), attempts numbered, bad lines kept with their problem."""
    preds: list[Prediction] = []
    for path in paths:
        if path.is_dir():
            journals = sorted(path.rglob("journal.json"), key=lambda p: _natural(str(p)))
            preds += _agent_runs(path, journals) if journals else _patch_folder(path)
        else:
            preds += _predictions_file(path)
    return numbered(preds)


def numbered(preds: list[Prediction]) -> list[Prediction]:
    """Attempt numbers: a given one is kept (a second line with the same one is invalid); else the next of its
    (instance, model), in reading order."""
    taken: dict[tuple, set[int]] = {}
    out = []
    for p in preds:
        if p.problem:
            out.append(p)
            continue
        used = taken.setdefault((p.instance_id, p.model), set())
        attempt = p.attempt
        if attempt is None:
            attempt = 1
            while attempt in used:
                attempt += 1
        elif attempt in used:
            out.append(replace(p, problem=f"attempt {attempt} of {p.model} on {p.instance_id} given twice"))
            continue
        used.add(attempt)
        out.append(replace(p, attempt=attempt))
    return out


def _predictions_file(path: Path) -> list[Prediction]:
    raw = read_input(path, MAX_PREDICTIONS_BYTES, "predictions file")
    text = raw.decode("utf-8", errors="replace")
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            return [_bad(path, None, "predictions_json", f"not JSON ({exc})")]
        if isinstance(data, dict):  # {instance_id: prediction}
            data = [{"instance_id": k, **v} if isinstance(v, dict) else v for k, v in data.items()]
        if not isinstance(data, list):
            return [
                _bad(path, None, "predictions_json", "neither a list of predictions nor an object of them")
            ]
        return [_prediction(path, i, "predictions_json", item) for i, item in enumerate(data, 1)]
    out = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            out.append(_bad(path, number, "predictions_jsonl", f"not a JSON line ({exc.msg})"))
            continue
        out.append(_prediction(path, number, "predictions_jsonl", item))
    return out


def _bad(path: Path, line: int | None, fmt: str, problem: str, **known) -> Prediction:
    return Prediction(
        str(path), line, fmt, known.get("instance_id"), known.get("model"), None, problem=problem
    )


def _prediction(path: Path, line: int, fmt: str, item) -> Prediction:
    """One predictions line: the fields checked one by one, the first wrong one named."""
    if not isinstance(item, dict):
        return _bad(path, line, fmt, f"a {type(item).__name__}, not a JSON object")
    iid, model = item.get("instance_id"), item.get("model_name_or_path")
    known = {
        "instance_id": iid if isinstance(iid, str) else None,
        "model": model if isinstance(model, str) else None,
    }
    for name, value in (("instance_id", iid), ("model_name_or_path", model)):
        if not isinstance(value, str) or not value.strip():
            return _bad(path, line, fmt, f"field {name}: missing or not a non-empty string", **known)
    patch = item.get("model_patch")
    if patch is not None and not isinstance(patch, str):
        return _bad(path, line, fmt, f"field model_patch: a {type(patch).__name__}, not a string", **known)
    if patch is not None and len(patch.encode("utf-8", "surrogatepass")) > MAX_PATCH_BYTES:
        return _bad(path, line, fmt, f"field model_patch: over {MAX_PATCH_BYTES >> 20} MiB", **known)
    attempt = item.get("attempt")
    if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 1):
        return _bad(
            path, line, fmt, f"field attempt: {shown(repr(attempt))} is not a positive integer", **known
        )
    run_id = item.get("run_id")
    return Prediction(
        str(path),
        line,
        fmt,
        iid.strip(),
        model.strip(),
        patch,
        attempt=attempt,
        run_id=str(run_id) if run_id is not None else None,
    )


def _patch_folder(path: Path) -> list[Prediction]:
    """``<instance_id>.diff`` / ``.patch`` files of one model (the folder's name)."""
    out = []
    for f in sorted(p for p in path.iterdir() if p.suffix in PATCH_SUFFIXES):
        try:
            patch = read_input(f, MAX_PATCH_BYTES, "patch").decode("utf-8", errors="replace")
        except IsobenchError as exc:
            out.append(_bad(f, None, "patch_folder", str(exc), instance_id=f.stem, model=path.name))
            continue
        out.append(Prediction(str(f), None, "patch_folder", f.stem, path.name, patch))
    if not out:
        raise IsobenchError(f"predictions: {path} holds no .diff or .patch file and no ISO-Bench agent run")
    return out


def _agent_runs(root: Path, journals: list[Path]) -> list[Prediction]:
    """ISO-Bench agent runs under ``root``: one prediction per run folder (its journal's folder)."""
    out = []
    for journal in journals:
        run = journal.parent
        parts = run.relative_to(root).parts
        model = "/".join(parts[-4:-2]) if len(parts) >= 4 else root.name
        base = dict(file=str(run), line=None, format="isobench_run", model=model, run_id="/".join(parts[-2:]))
        facts = _journal(journal)
        line = _prediction_line(run / "prediction.jsonl")
        iid = line.get("instance_id") if isinstance(line.get("instance_id"), str) else None
        if isinstance(facts, str) and iid is None:
            out.append(Prediction(**base, instance_id=None, patch=None, problem=facts))
            continue
        hints = facts if isinstance(facts, dict) else {}
        patch_file = run / "model_patch.diff"
        patch = None
        if patch_file.exists():
            try:
                patch = read_input(patch_file, MAX_PATCH_BYTES, "patch").decode("utf-8", errors="replace")
            except IsobenchError as exc:
                out.append(Prediction(**base, instance_id=iid, patch=None, hints=hints, problem=str(exc)))
                continue
        elif isinstance(line.get("model_patch"), str):
            patch = line["model_patch"]
        out.append(Prediction(**base, instance_id=iid or hints.get("head"), patch=patch, hints=hints))
    return out


def _journal(path: Path) -> dict | str:
    """{head, base} from a journal's ``commits.human`` and ``commits.pre``, or why it cannot be read."""
    try:
        data = json.loads(
            read_input(path, MAX_PREDICTIONS_BYTES, "journal").decode("utf-8", errors="replace")
        )
    except (IsobenchError, ValueError) as exc:
        return f"journal.json unreadable: {str(exc)[:200] or 'empty file'}"
    commits = data.get("commits") if isinstance(data, dict) else None
    if not isinstance(commits, dict):
        return "journal.json has no commits object"
    hints = {
        k: commits.get(v) for k, v in (("head", "human"), ("base", "pre")) if isinstance(commits.get(v), str)
    }
    return hints or "journal.json names neither commits.human nor commits.pre"


def _prediction_line(path: Path) -> dict:
    try:
        first = read_input(path, MAX_PATCH_BYTES, "prediction").decode("utf-8", errors="replace").splitlines()
        item = json.loads(first[0]) if first else {}
    except (IsobenchError, ValueError, OSError):
        return {}
    return item if isinstance(item, dict) else {}
