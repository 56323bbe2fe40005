"""Where a commit's test came from: the ``generator`` provenance of ``generator.json`` and of the record.

``{"source": "llm" | "cache" | "pregenerated" | "none", "provider": ..., "model": ..., "path": ...}``:
``llm`` (written by the model now), ``cache`` (the accepted script of an earlier generation with the same
settings and prompt), ``pregenerated`` (a script found under the source's ``generators``: ``path``) or
``none`` (no test: the commit's inputs are unusable). ``provider`` and ``model`` are those of the LLM (null
unless ``llm`` or ``cache``); ``path`` the pre-generated script's (null unless ``pregenerated``). What the
generation cost and its transcript stay in the ``llm`` block beside it.

The string ``origin`` of ``generator.json`` (``generator_origin`` in the record) is deprecated: it is still
written, derived from the structure (``origin_string``), and only read back from files written before the
structure existed (``generator_of``).
"""

from __future__ import annotations

SOURCES = ("llm", "cache", "pregenerated", "none")
_FROM_LLM = ("llm", "cache")


def generator_provenance(
    source: str, provider: str | None = None, model: str | None = None, path: str | None = None
) -> dict:
    """The structured provenance of one test."""
    if source not in SOURCES:
        raise ValueError(f"unknown generator source {source!r} (one of {', '.join(SOURCES)})")
    llm = source in _FROM_LLM
    return {
        "source": source,
        "provider": provider if llm else None,
        "model": model if llm else None,
        "path": str(path) if source == "pregenerated" else None,
    }


def origin_string(generator: dict) -> str:
    """The deprecated origin string: ``llm:<provider>/<model>``, ``cache:<provider>/<model>``,
    ``pregenerated:<path>`` or ``none``."""
    source = generator["source"]
    if source in _FROM_LLM:
        return f"{source}:{generator['provider']}/{generator['model']}"
    return f"pregenerated:{generator['path']}" if source == "pregenerated" else "none"


def parse_origin(origin: str | None) -> dict | None:
    """The structure an old origin string stands for (None when it is not one of the four shapes)."""
    source, _, rest = (origin or "").partition(":")
    if source in _FROM_LLM and "/" in rest:
        provider, _, model = rest.partition("/")  # a model may hold "/" (org/name); a provider does not
        return generator_provenance(source, provider, model)
    if source == "pregenerated" and rest:
        return generator_provenance(source, path=rest)
    return generator_provenance("none") if origin == "none" else None


def generator_of(doc: dict) -> dict | None:
    """The ``generator`` provenance of a ``generator.json`` or a record's ``provenance``; from the deprecated
    string (``origin`` / ``generator_origin``) when written by a version without the structure."""
    if isinstance(doc.get("generator"), dict):
        return doc["generator"]
    return parse_origin(doc.get("generator_origin", doc.get("origin")))
