"""``commit_extractions_with_apis``: ``commit_hash``, ``parent_hash``, ``message``, ``files_changed`` as objects
with ``file_path``/``diff``/..., ``affected_apis``, ``summary``, ``csv_metadata`` (what ``isobench extract``
writes: isobench/extraction_writer.py)."""

from __future__ import annotations

import re

from .base import Format, register

_PARENT = re.compile(r'"parent_hash"\s*:\s*"([0-9a-fA-F]{7,40})"')


@register
class CommitExtraction(Format):
    name = "commit_extractions_with_apis"
    schema = "extraction_commit"
    markers = ("parent_hash",)
    apis_key = "affected_apis"

    def rank(self, data: dict) -> int | None:
        files = data.get("files_changed")
        if "parent_hash" in data or (isinstance(files, list) and files and isinstance(files[0], dict)):
            return 0
        if "commit_hash" in data and "message" in data:
            return 4  # the weakest sign: a commit and a message, nothing of another format
        return None

    def parent_in_text(self, text: str) -> str | None:
        m = _PARENT.search(text)
        return m.group(1).lower() if m else None

    def extra(self, data: dict) -> dict:
        return {k: data[k] for k in ("summary", "csv_metadata") if k in data}  # kept even when empty
