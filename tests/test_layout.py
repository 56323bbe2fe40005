"""The package's import graph has no circles (counted with every import, those inside functions too: an import
moved into a function to dodge a circle still closes it), and the Python code is linted and formatted (ruff,
configured in pyproject.toml)."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import isobench.steps as steps_package

PACKAGE = Path(__file__).resolve().parents[1] / "isobench"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The isobench modules ``path`` imports, wherever in the file the import stands."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            submodules = [
                f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in modules
            ]
            candidates = submodules or [
                target
            ]  # `from . import files` imports the submodule, not the package
        elif isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        else:
            continue
        found |= {c for c in candidates if c in modules and c != name}
    return found


def graph() -> dict[str, set[str]]:
    files = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, modules) - {"isobench"} for p in files}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def test_no_import_circles():
    edges = graph()
    assert "isobench.measure" in edges and edges["isobench.steps"]  # the graph is read, not empty
    assert cycles(edges) == []


def test_the_check_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]


def test_ruff_lint_and_format():
    root = PACKAGE.parent
    for args in (["check", "--no-cache", "."], ["format", "--check", "--no-cache", "."]):
        proc = subprocess.run([sys.executable, "-m", "ruff", *args], cwd=root, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-1000:]


def test_every_relative_import_names_a_module_of_the_package():
    """Also the imports inside functions, which only fail when their function runs."""
    files = [p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts]
    modules = {module_name(p) for p in files}
    for path in files:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                assert target in modules, f"{path.name}:{node.lineno}: no module {target}"


# The layers of docs/architecture.md, from the outside in: a module imports only its own layer or those below.
LAYERS = [
    ("entry points", ("isobench.cli", "isobench.steps")),
    ("whole-run checks", ("isobench.audit",)),
    (
        "planning and configuration",
        ("isobench.plan", "isobench.run_bounds", "isobench.config", "isobench.experiments"),
    ),
    ("domain", ()),  # every module not named in another layer (inputs, generation, measure/, results)
    (
        "foundations",
        (
            "isobench.jsonio",
            "isobench.errors",
            "isobench.categories",
            "isobench.settings",
            "isobench.secrecy",
            "isobench.console",
        ),
    ),
]


def layer_of(module: str) -> int:
    if module == "isobench":
        return len(LAYERS) - 1  # the package itself holds only its version
    for i, (_, names) in enumerate(LAYERS):
        if any(module == n or module.startswith(n + ".") for n in names):
            return i
    return 3


def test_a_layer_imports_only_its_own_and_the_layers_below():
    upward = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, targets in graph().items()
        for b in targets
        if layer_of(b) < layer_of(a)
    ]
    assert upward == []
    assert layer_of("isobench.measure.rounds") == 3 and layer_of("isobench.steps.record") == 0


def test_steps_mirror_rules():
    """rules/X.smk → scripts/<rule>.py → isobench/steps/X.py: each rule's script calls a step of the module named
    like the rule's file, and every step module but ``common`` has its rule file."""
    root = PACKAGE.parent
    rule_files = {p.stem: p for p in (root / "rules").glob("*.smk") if p.stem != "common"}
    steps = {p.stem for p in (PACKAGE / "steps").glob("*.py")} - {"__init__", "common"}
    assert set(rule_files) == steps
    for stem, path in rule_files.items():
        scripts = [root / "rules" / s for s in re.findall(r'"(\.\./scripts/\w+\.py)"', path.read_text())]
        assert scripts, path
        for script in scripts:
            called = re.search(r"run_step\(snakemake, (\w+)\)", script.read_text()).group(1)
            module = importlib.import_module(f"isobench.steps.{stem}")
            assert getattr(module, called).__module__ == f"isobench.steps.{stem}", (script, called)
            assert called in steps_package.__all__ or stem == "evaluation", called
