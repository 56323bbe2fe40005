"""What a commit changes, as the coverage of a test is judged against it: the files of its ``patch`` (tests
excluded) with the lines each side holds, which of them are modules of a package, and which lines no Python
tracer can see (compiled sources, functions a decorator compiles)."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from ..apis import changed_lines

# Sources compiled into extensions or kernels: their changes run where no Python tracer looks.
COMPILED_SOURCES = (
    ".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".h", ".hh", ".hpp", ".hxx", ".inl", ".pyx", ".pxd", ".pxi",
    ".rs", ".metal", ".hip", ".cl", ".f", ".f90", ".m", ".mm", ".zig", ".go",
)  # fmt: skip
# Decorators that compile a function: its body never runs as Python (triton.jit, numba.njit, torch.jit.script...)
COMPILED_BY = {"jit", "njit", "autotune", "heuristics", "script", "compile", "kernel", "cfunc", "vectorize"}
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_BINARY = re.compile(r"^Binary files (.+) and (.+) differ$")


@dataclass(frozen=True)
class ChangedFile:
    old: str | None  # its path at base (None: the commit adds it)
    new: str | None  # its path at head (None: the commit deletes it)
    removed: frozenset[int]
    added: frozenset[int]


def unquote(name: str) -> str:
    """A path as git writes it in a diff, C-quoted when it holds unusual bytes (``"a/pkg/\\303\\244.py"``)."""
    if len(name) < 2 or not (name[0] == name[-1] == '"'):
        return name
    out, i, body = bytearray(), 0, name[1:-1]
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            if body[i + 1 : i + 4].isdigit() and len(body[i + 1 : i + 4]) == 3:
                out.append(int(body[i + 1 : i + 4], 8) & 0xFF)
                i += 4
                continue
            out.append(_ESCAPES.get(body[i + 1], ord(body[i + 1])))
            i += 2
            continue
        out += ch.encode("utf-8")
        i += 1
    return out.decode("utf-8", "replace")


def _path(name: str) -> str | None:
    name = unquote(name.split("\t")[0].strip())
    if name == "/dev/null":
        return None
    return name[2:] if name[:2] in ("a/", "b/") else name


def parse_patch(text: str) -> list[ChangedFile]:
    """The files of a unified git diff, each with the lines it removes (base) and adds (head)."""
    chunks, current = [], []
    for line in text.splitlines():
        if line.startswith("diff --git ") and current:
            chunks.append(current)
            current = []
        current.append(line)
    if current:
        chunks.append(current)
    files = []
    for chunk in chunks:
        old = new = None
        header = chunk[0].split(" ")
        if chunk[0].startswith("diff --git ") and len(header) == 4:
            old, new = _path(header[2]), _path(header[3])
        for line in chunk[1:]:
            binary = _BINARY.match(line)
            if line.startswith("--- ") or binary:
                old = _path(binary.group(1) if binary else line[4:])
                new = _path(binary.group(2)) if binary else new
                if binary:
                    break
            elif line.startswith("+++ "):
                new = _path(line[4:])
                break
            elif line.startswith(("rename from ", "copy from ")):
                old = unquote(line.split(" ", 2)[2])
            elif line.startswith(("rename to ", "copy to ")):
                new = unquote(line.split(" ", 2)[2])
            elif line.startswith("new file mode"):
                old = None
            elif line.startswith("deleted file mode"):
                new = None
        if old is None and new is None:
            continue
        removed, added = changed_lines("\n".join(chunk))
        files.append(ChangedFile(old, new, frozenset(removed), frozenset(added)))
    return files


@dataclass(frozen=True)
class Change:
    """What a commit changes outside its tests: its files (from the record's ``patch``) and touched functions."""

    files: tuple[ChangedFile, ...]
    functions: tuple[str, ...]  # ``path::Class.method`` (patch_functions)

    @classmethod
    def of(cls, extraction: dict) -> Change:
        return cls(
            tuple(parse_patch(extraction.get("patch") or "")), tuple(extraction.get("patch_functions") or ())
        )

    def side(self, name: str) -> dict[str, frozenset[int]]:
        """{Python file: its changed lines} at base (lines removed) or head (lines added)."""
        out = {}
        for f in self.files:
            path, lines = (f.old, f.removed) if name == "base" else (f.new, f.added)
            if path and path.endswith(".py"):
                out[path] = lines
        return out

    def compiled_sources(self) -> list[str]:
        """Changed files compiled into extensions or kernels (C++, CUDA, Cython, Rust, ...)."""
        return sorted(
            {p for f in self.files for p in (f.old, f.new) if p and p.lower().endswith(COMPILED_SOURCES)}
        )


def module_path(worktree: Path, rel: str) -> str | None:
    """``rel`` as it is imported: from the outermost folder of its chain of packages (``pkg/mod.py`` for
    ``src/pkg/mod.py``, ``sglang/srt/x.py`` for ``python/sglang/srt/x.py``); None for a file in no package (a
    script, ``setup.py``, a benchmark): it is not the code a test imports."""
    parts = rel.split("/")
    start = len(parts) - 1  # parts[start:] is the import path while each folder above holds an __init__.py
    while start > 0 and (worktree.joinpath(*parts[:start]) / "__init__.py").is_file():
        start -= 1
    return None if start == len(parts) - 1 else "/".join(parts[start:])


def targets(change: Change, side: str, worktree: Path) -> list[dict]:
    """What the tracer watches at one revision: each changed module of a package, its file in the worktree and
    its import path."""
    out = []
    for rel in sorted(change.side(side)):
        module = module_path(worktree, rel)
        if module:
            out.append({"rel": rel, "path": str(worktree / rel), "module": module})
    return out


def compiled_ranges(source: str | None) -> list[tuple[int, int]]:
    """The line ranges (first decorator to last line) of functions a decorator compiles."""
    try:
        tree = ast.parse(source or "")
    except (SyntaxError, ValueError, RecursionError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
            _decorator_name(d) in COMPILED_BY for d in node.decorator_list
        ):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            out.append((first, node.end_lineno or node.lineno))
    return out


def _decorator_name(node) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""
