"""Affected APIs of a commit and test-file detection.

The affected APIs are the Python functions and methods (``Class.method``) whose
lines a commit touches, found by mapping diff hunks onto the ``ast`` of the old
and new file. The extraction files built from them are written by
``isobench.extraction_writer`` and read by ``isobench.extraction``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path, PurePosixPath

from . import git

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_TEST_DIRS = {"test", "tests", "testing", "e2e", "unittests"}
_TEST_NAME = re.compile(r"^(test_.*|.*_tests?|conftest)\.py$")


def is_test_file(path: str) -> bool:
    """True for files that belong in ``test_patch`` rather than ``patch``."""
    p = PurePosixPath(path)
    return bool(_TEST_DIRS & {part.lower() for part in p.parts[:-1]}) or bool(_TEST_NAME.match(p.name))


def def_ranges(source: str | None) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function in ``source``."""
    if not source:
        return []
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    ranges: list[tuple[int, int, str]] = []

    def visit(node, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{child.name}"
                ranges.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return ranges


def changed_lines(diff_text: str) -> tuple[set[int], set[int]]:
    """Old-side and new-side line numbers that a unified diff removes or adds."""
    old, new = set(), set()
    old_no = new_no = 0
    in_hunk = False
    for line in diff_text.splitlines():
        m = _HUNK.match(line)
        if m:
            old_no, new_no, in_hunk = int(m.group(1)), int(m.group(3)), True
            continue
        if line.startswith("diff --git"):
            in_hunk = False
        if not in_hunk or line.startswith("\\"):
            continue
        if line.startswith("+"):
            new.add(new_no)
            new_no += 1
        elif line.startswith("-"):
            old.add(old_no)
            old_no += 1
        else:
            old_no += 1
            new_no += 1
    return old, new


def innermost(ranges, lines: set[int]) -> set[str]:
    """The innermost function holding each line (``ranges``: def_ranges), by name."""
    names = set()
    for line in lines:
        hits = [(end - start, name) for start, end, name in ranges if start <= line <= end]
        if hits:
            names.add(min(hits)[1])
    return names


def _touched(mirror: Path, base: str, head: str, path: str) -> set[str]:
    """Functions of one Python file whose lines the commit removes (in base) or adds (in head)."""
    if not path.endswith(".py"):
        return set()
    old_lines, new_lines = changed_lines(git.diff(mirror, base, head, [path]))
    return innermost(def_ranges(git.show_file(mirror, head, path)), new_lines) | innermost(
        def_ranges(git.show_file(mirror, base, path)), old_lines
    )


def touched(mirror: Path, base: str, head: str, paths: list[str]) -> dict[str, set[str]]:
    """{path: the functions and methods (``Class.method``) the commit touches in it}, each file read once."""
    return {path: _touched(mirror, base, head, path) for path in paths}


def api_names(by_file: dict[str, set[str]]) -> list[str]:
    """The touched functions by name, as ISO-Bench lists affected APIs."""
    return sorted({name for names in by_file.values() for name in names})


def qualified_names(by_file: dict[str, set[str]]) -> list[str]:
    """The touched functions named with their file (``path::Class.method``): a record's ``patch_functions``
    (code files) and ``test_functions`` (test files)."""
    return sorted(f"{path}::{name}" for path, names in by_file.items() for name in names)


def affected_apis(mirror: Path, base: str, head: str, paths: list[str]) -> list[str]:
    """The touched functions and methods of ``paths`` by name (``Class.method``), as ISO-Bench lists APIs."""
    return api_names(touched(mirror, base, head, paths))
