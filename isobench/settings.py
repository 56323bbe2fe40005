"""Frozen settings dataclasses built from config blocks (one way for all of them)."""

from __future__ import annotations


def from_config(cls, cfg: dict | None):
    """``cls`` with the config's keys it knows (others ignored); lists become tuples (the dataclasses are frozen)."""
    known = {k: v for k, v in (cfg or {}).items() if k in cls.__dataclass_fields__}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in known.items()})
