"""The base of the extraction formats and their registry (the package's docstring says how they are used)."""

from __future__ import annotations

import re
from typing import ClassVar

from ..errors import IsobenchError

FORMATS: dict[str, Format] = {}

# Every format names its commit at the top level: what a broken line of a bundle still shows of it.
_COMMIT_KEY = re.compile(r'"commit_hash"\s*:\s*"([0-9a-fA-F]{7,40})"')


def register(cls):
    FORMATS[cls.name] = cls()
    return cls


class Format:
    """One extraction format."""

    name: ClassVar[str]
    schema: ClassVar[str]  # isobench/schemas/<schema>.schema.json
    markers: ClassVar[tuple[str, ...]] = ()  # keys whose presence in a file's text names this format
    apis_key: ClassVar[str] = "apis"  # the list of affected APIs the file gives
    extra_keys: ClassVar[
        tuple[str, ...]
    ] = ()  # kept as context for the prompt and the record, when not empty

    def rank(self, data: dict) -> int | None:
        """How surely ``data`` is of this format: a rank (lower is surer), None when it is not."""
        raise NotImplementedError

    def parent_in_text(self, text: str) -> str | None:
        """The parent commit a file's text names (read without parsing it), or None."""
        return None

    def apis(self, data: dict) -> list[str]:
        return strings(data.get(self.apis_key))

    def extra(self, data: dict) -> dict:
        """Context for the prompt and the record beyond what git says."""
        return {k: data[k] for k in self.extra_keys if data.get(k) not in (None, "", [], {})}

    def message(self, data: dict) -> str | None:
        """The commit message the file gives, to compare with git's (None: the format's is not comparable)."""
        return data.get("message")


def detect(data) -> Format:
    """The format of a parsed extraction; IsobenchError when no format claims it."""
    if not isinstance(data, dict):
        raise IsobenchError(f"expected a JSON object, got {type(data).__name__}")
    claims = [(r, i, f) for i, f in enumerate(FORMATS.values()) if (r := f.rank(data)) is not None]
    if not claims:
        raise IsobenchError(
            "unsupported extraction format (expected "
            + ", ".join(f"{f.name} keys such as {f.markers[0]}" for f in FORMATS.values() if f.markers)
            + ")"
        )
    return min(claims)[2]


def peek(text: str) -> tuple[str | None, bool]:
    """(the parent commit, whether a format is recognized) from a file's text, without parsing it: the planner's
    cheap read of a file's first bytes (an unrecognized head is read again whole)."""
    parent = next((p for f in FORMATS.values() if (p := f.parent_in_text(text))), None)
    known = any(f'"{m}"' in text for f in FORMATS.values() for m in f.markers)
    return parent, known


def commit_in_text(text: str) -> str | None:
    """The commit a text (a broken JSON line) names by its ``commit_hash`` key, lower case, or None."""
    m = _COMMIT_KEY.search(text)
    return m.group(1).lower() if m else None


def strings(values) -> list[str]:
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []
