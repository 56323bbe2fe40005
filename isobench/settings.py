"""Typed settings: frozen dataclasses whose fields take their defaults from the config schema.

The schema (``isobench/schemas/config.schema.yaml``) is the one place a default is written. A settings class
names its fields and their types; ``@schema_settings("measure")`` gives every field the default of the
schema's block of that name (a list becomes a tuple: the dataclasses are frozen), so a default changed in the
schema changes for the workflow's config and for the code alike. A field the block has no default for is an
error when the module is imported.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

# The configuration's schema: every field, its check and its default (the typed settings take theirs from here).
SCHEMA = Path(__file__).parent / "schemas" / "config.schema.yaml"


@cache
def load_schema(path: str) -> dict:
    """A config schema, parsed once per process (input functions ask for its defaults per job)."""
    with open(path, encoding="utf-8") as fh:  # libyaml's loader where PyYAML has it: 5 ms instead of 27
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _frozen(value):
    return tuple(value) if isinstance(value, list) else value


@cache
def block_defaults(block: str, schema_path: str | Path | None = None) -> dict:
    """The defaults of the config schema's top-level ``block``: those of its properties (through ``$ref`` and
    ``allOf``), then the block's own default mapping over them. Read it, don't change it (it is shared)."""
    schema = load_schema(str(schema_path or SCHEMA))
    prop = schema["properties"][block]
    out: dict = {}
    for part in [prop, *prop.get("allOf", [])]:
        if "$ref" in part:
            part = schema["$defs"][part["$ref"].rsplit("/", 1)[-1]]
        out.update({k: v["default"] for k, v in part.get("properties", {}).items() if "default" in v})
    out.update(prop.get("default") or {})
    return out


def schema_settings(block: str):
    """Class decorator: a frozen dataclass of the class's annotated fields, each defaulting to the schema's
    default for it in ``block``, with ``from_config`` (unless the class writes its own)."""

    def make(cls):
        defaults = block_defaults(block)
        names = list(cls.__dict__.get("__annotations__", {}))
        missing = [n for n in names if n not in defaults]
        if missing:
            raise TypeError(
                f"{cls.__name__}: the config schema's {block} has no default for {', '.join(missing)}"
            )
        for name in names:
            setattr(cls, name, _frozen(defaults[name]))
        if "from_config" not in cls.__dict__:
            cls.from_config = classmethod(from_config)
        return dataclass(frozen=True)(cls)

    return make


def from_config(cls, cfg: dict | None):
    """``cls`` with the config's keys it knows (others ignored); lists become tuples (the dataclasses are frozen)."""
    known = {k: v for k, v in (cfg or {}).items() if k in cls.__dataclass_fields__}
    return cls(**{k: _frozen(v) for k, v in known.items()})
