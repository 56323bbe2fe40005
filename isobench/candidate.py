"""An LLM's reply as a candidate test: the code it holds (``extract_code``) and whether that code is a usable
test (``check_candidate``: it parses, follows a contract, imports something and is not trivial). A failed
check's message goes back to the model in a repair request (``isobench.generate``)."""

from __future__ import annotations

import ast
import re

from .errors import IsobenchError
from .measure.contracts import CONTRACT, check_script

_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+.-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$", re.S | re.M)
_PY = {"python", "py", "python3"}


def extract_code(reply: str) -> str:
    """The reply's Python fenced block (the longest if several), else any fenced block, else the reply."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(reply)]
    for wanted in (lambda lang: lang in _PY, lambda lang: lang == ""):
        chosen = [body for lang, body in blocks if wanted(lang)]
        if chosen:
            return max(chosen, key=len).strip("\n") + "\n"
    text = reply.strip()
    opened = re.match(r"^```[\w+.-]*[^\n]*\n", text)  # a reply cut short: the fence never closes
    if opened:
        text = text[opened.end() :]
    return (text + "\n") if text else ""


def parses(text: str) -> bool:
    """Whether ``text`` is Python at all (a reply of prose is not: it is asked again, not repaired)."""
    try:
        ast.parse(text)
        return True
    except (SyntaxError, ValueError):
        return False


def _trivial_body(fn: ast.FunctionDef) -> bool:
    body = [n for n in fn.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    if not body:
        return True  # only a docstring or `...`
    if all(isinstance(n, ast.Pass) for n in body):
        return True
    return len(body) == 1 and isinstance(body[0], ast.Raise) and "NotImplementedError" in ast.unparse(body[0])


def check_candidate(text: str) -> str:
    """The contract of a usable script; raises IsobenchError (the message goes into a repair request)."""
    if not text.strip():
        raise IsobenchError("the reply contains no code")
    contract = check_script(text, "the script")
    tree = ast.parse(text)
    if not any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.walk(tree)):
        raise IsobenchError("the script imports nothing, so it cannot exercise the repository's code")
    if contract == "functions":
        asynchronous = [
            n.name for n in tree.body if isinstance(n, ast.AsyncFunctionDef) and n.name in CONTRACT
        ]
        if asynchronous:
            raise IsobenchError(
                f"{', '.join(asynchronous)} must be plain functions, not async def: the harness "
                "calls them directly"
            )
        fns = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        empty = [name for name in CONTRACT if _trivial_body(fns[name])]
        if empty:
            raise IsobenchError(
                f"the script is trivial: {', '.join(empty)} does nothing (empty, pass or NotImplementedError)"
            )
        if not any(isinstance(n, ast.Call) for n in ast.walk(fns["experiment"])):
            raise IsobenchError("the script is trivial: experiment() calls nothing, so it measures nothing")
    return contract
