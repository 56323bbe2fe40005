"""JSON reading and writing with one-line errors, schema checks and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from functools import cache
from importlib import resources
from pathlib import Path

import jsonschema

from .errors import IsobenchError


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def parse_json(raw: bytes, where: str | Path):
    """The JSON value of ``raw``; not UTF-8, not JSON or nested too deeply is a one-line IsobenchError naming
    ``where``."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise IsobenchError(f"{where}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise IsobenchError(
            f"{where}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    except RecursionError:
        raise IsobenchError(f"{where}: invalid JSON: nested too deeply") from None


def load_json(path: str | Path):
    """Parse a JSON file; a missing or malformed file is a one-line IsobenchError."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise IsobenchError(f"{path}: file not found") from None
    return parse_json(raw, path)


def dumps(obj, indent: int | None = 2, sort_keys: bool = True) -> str:
    """Strict JSON: NaN and Infinity are refused, never written."""
    try:
        return json.dumps(obj, indent=indent, sort_keys=sort_keys, allow_nan=False, ensure_ascii=False)
    except ValueError as exc:
        raise IsobenchError(f"refusing to write a non-finite number as JSON: {exc}") from None


@cache
def file_mode() -> int:
    """The mode a plain new file gets here (0666 less the umask): what teammates may read on a shared disk."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write through a temporary file and rename: readers never see half a file. The file gets the umask's mode
    (a temporary file is private until renamed)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise IsobenchError(
            f"{path}: cannot write ({exc.strerror}); check the folder's permissions and free space"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            os.fchmod(fh.fileno(), file_mode())
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise IsobenchError(
                f"{path}: cannot write ({exc.strerror}); check the folder's permissions and free space"
            ) from None
        raise


def write_json(path: str | Path, obj, sort_keys: bool = True) -> None:
    write_text_atomic(path, dumps(obj, sort_keys=sort_keys) + "\n")


def write_valid(path: str | Path, obj, schema_name: str) -> None:
    """``write_json`` of an artifact checked against its schema first (isobench/artifacts.py names them): a
    file that would not be valid is never written (a one-line IsobenchError names it and the field)."""
    validate(obj, schema_name, str(path))
    write_json(path, obj)


@cache
def schema(name: str) -> dict:
    """A schema shipped in ``isobench/schemas``."""
    text = resources.files("isobench").joinpath("schemas", f"{name}.schema.json").read_text(encoding="utf-8")
    return json.loads(text)


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "(top level)"


def _describe(error: jsonschema.ValidationError) -> str:
    if error.validator == "type":
        return f"expected {error.validator_value}, got {type(error.instance).__name__}"
    if error.validator == "pattern":
        return f"{str(error.instance)[:60]!r} does not match {error.validator_value}"
    if error.validator in ("enum", "const"):
        return f"{str(error.instance)[:60]!r} is not one of {error.validator_value}"
    text = " ".join(error.message.split())
    return text if len(text) <= 200 else text[:200] + "…"


def schema_problem(error: jsonschema.ValidationError) -> str:
    """One line for a schema violation: "field a.b.c: what is wrong"."""
    return f"field {_where(error)}: {_describe(error)}"


@cache
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(schema(schema_name))


def validate(obj, schema_name: str, what: str) -> None:
    """Validate ``obj`` against a shipped schema (one validator per schema and process); the first problem is a
    one-line error."""
    validator = _validator(schema_name)
    error = jsonschema.exceptions.best_match(validator.iter_errors(obj))
    if error is not None:
        raise IsobenchError(f"{what}: {schema_problem(error)}")
