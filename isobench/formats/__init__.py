"""ISO-Bench's extraction formats, one module each, found by name in ``FORMATS``.

A format says how it is recognized (``rank``: the lowest rank among the formats that claim a file wins), which
schema checks it (isobench/schemas/), what it contributes to a commit beyond git (``apis``, ``extra``) and
what the planner may read of it cheaply from a file's first bytes (``markers``, ``parent_in_text``), without
parsing it. isobench/extraction.py reads and normalizes a file through its format; isobench/plan.py asks
``peek`` here. A new format is a module here with a ``Format`` subclass decorated with ``@register``, its
schema file, and its name in extraction.schema.json's ``format`` enum (tests/test_extraction.py holds the
lists equal).
"""

from .base import FORMATS, Format, commit_in_text, detect, peek, register

__all__ = ["FORMATS", "Format", "commit_in_text", "detect", "peek", "register"]

# The formats register in this order (the schema's and the docs' order); isort must not sort them.
from . import commit_extractions_with_apis  # noqa: F401

# isort: split
from . import pr_analysis  # noqa: F401

# isort: split
from . import commit_collection  # noqa: F401
