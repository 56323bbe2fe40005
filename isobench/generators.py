"""Find and check generator scripts (the per-commit performance tests)."""

from __future__ import annotations

import ast
from pathlib import Path

from .contracts import detect
from .errors import IsobenchError

CONTRACT = ("setup", "experiment", "store_result", "load_result", "check_equivalence")


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


def check_script(text: str, where: str) -> str:
    """The script parses and follows a contract (returned); the functions contract needs its five functions."""
    try:
        tree = ast.parse(text, filename=where)
    except SyntaxError as exc:
        raise IsobenchError(f"{where}: syntax error at line {exc.lineno}: {exc.msg}") from None
    contract = detect(text)
    if contract != "functions":
        return contract
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    missing = [name for name in CONTRACT if name not in defined]
    if missing:
        raise IsobenchError(
            f"{where}: the test does not define {', '.join(missing)} (contract: {', '.join(CONTRACT)})"
        )
    return contract
