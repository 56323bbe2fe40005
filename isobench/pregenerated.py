"""Pre-generated tests: the per-commit scripts a source ships (ISO-Bench's ``<sha>_test_case_generator.py``),
found by the commit's SHA; a commit with one needs no LLM."""

from __future__ import annotations

from pathlib import Path


def pregenerated_candidates(directory: str | Path, sha: str) -> list[Path]:
    """Names ISO-Bench uses for a pre-generated script, full hash first."""
    d = Path(directory)
    return [d / f"{sha}_test_case_generator.py", d / f"{sha[:8]}_test_case_generator.py"]


def find_pregenerated(directory: str | Path | None, sha: str) -> Path | None:
    if not directory:
        return None
    for path in pregenerated_candidates(directory, sha):
        if path.is_file():
            return path
    return None
