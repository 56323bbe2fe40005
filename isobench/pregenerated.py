"""Pre-generated tests: the per-commit scripts a source ships (ISO-Bench's ``<sha>_test_case_generator.py``),
found by the commit's SHA; a commit with one needs no LLM."""

from __future__ import annotations

from pathlib import Path

SUFFIX = "_test_case_generator.py"


def pregenerated_candidates(directory: str | Path, sha: str) -> list[Path]:
    """Names ISO-Bench uses for a pre-generated script, full hash first."""
    d = Path(directory)
    return [d / f"{sha}{SUFFIX}", d / f"{sha[:8]}{SUFFIX}"]


def find_pregenerated(directory: str | Path | None, sha: str) -> Path | None:
    if not directory:
        return None
    for path in pregenerated_candidates(directory, sha):
        if path.is_file():
            return path
    return None


def unmatched(directory: str | Path | None, shas: set[str]) -> list[str]:
    """The scripts of ``directory`` (``*_test_case_generator.py``) that no planned commit (``shas``, full) would
    use: an 8-character or full hash that is none of theirs (compared as find_pregenerated finds them)."""
    if not directory or not Path(directory).is_dir():
        return []
    names = set(shas) | {sha[:8] for sha in shas}
    return sorted(p.name for p in Path(directory).glob(f"*{SUFFIX}") if p.name[: -len(SUFFIX)] not in names)
