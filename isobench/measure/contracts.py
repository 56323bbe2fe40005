"""Test contracts: isobench's functions, and the command-line scripts of ISO-Bench and GSO.

- ``functions``: the module defines setup/experiment/store_result/load_result/check_equivalence
  and isobench's harness does the timing.
- ``isobench_cli`` (ISO-Bench's generators): ``--eqcheck``, ``--reference``, ``--prefix PREFIX``;
  the script times itself and prints one JSON line with ``avg_ms`` (milliseconds) and optionally
  ``target_resolved``, ``opt_path_hit`` and ``error``.
- ``gso_cli`` (GSO's harness): a positional output file, ``--eqcheck``, ``--reference``,
  ``--file_prefix PREFIX``; the script appends ``Execution time: X.XXXXXXs`` (seconds) to the file.

A script contract is run once per round; its reported time is that round's one sample.
A timeout, a crash or output without a usable finite time is a failure, never a number.
"""

from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

from ..errors import IsobenchError

_GSO_LINE = re.compile(r"^Execution time:\s*(\S+?)s\s*$")
_GSO_ANY = re.compile(r"^Execution time:")


def _cli_flags(tree: ast.AST) -> set[str]:
    flags = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
            for arg in node.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    flags.add(arg.value)
    return flags


def detect(text: str) -> str:
    """Which contract a script follows: a recognized command line wins over bare functions."""
    try:
        flags = _cli_flags(ast.parse(text))
    except SyntaxError:
        return "functions"  # the generator step reports the syntax error
    if "--file_prefix" in flags or ("output_file" in flags and "--eqcheck" in flags):
        return "gso_cli"
    if "--prefix" in flags and ("--eqcheck" in flags or "--reference" in flags):
        return "isobench_cli"
    return "functions"


def command(contract: str, module: Path, mode: str, prefix: Path, out_file: Path) -> list[str]:
    """The script's arguments for one round (``mode``: reference, eqcheck or time)."""
    flags = {"reference": ["--reference"], "eqcheck": ["--eqcheck"], "time": []}[mode]
    if contract == "isobench_cli":
        return [str(module), "--prefix", str(prefix), *flags]
    if contract == "gso_cli":
        return [str(module), str(out_file), "--file_prefix", str(prefix), *flags]
    raise ValueError(contract)


def _last_exception(stderr: str) -> str:
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else ""


def classify_exit(returncode: int, mode: str, stderr: str) -> tuple[str, str]:
    """(category, error) for a script that exited non-zero."""
    last = _last_exception(stderr)
    if returncode < 0:
        return "crash", f"killed by signal {-returncode}"
    if last.startswith(("ModuleNotFoundError", "ImportError")):
        return "import_error", last
    if mode == "eqcheck" and last.startswith("AssertionError"):
        return "not_equivalent", last
    if mode == "eqcheck" and last.startswith("FileNotFoundError"):
        return "no_reference", last
    return "experiment_error", f"exit code {returncode}: {last}" if last else f"exit code {returncode}"


def _finite_ms(value, scale: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    ms = float(value) * scale
    return ms if math.isfinite(ms) and ms >= 0 else None


# What an ISO-Bench script's error_name (or, without a name, its error_code) says went wrong.
ERROR_NAMES = {
    "CAPABILITY_UNSUPPORTED": "capability_unsupported",
    "OPT_PATH_NOT_TRIGGERED": "opt_path_missed",
}
ERROR_CODES = {2: "capability_unsupported", 3: "opt_path_missed"}
_REPORT_KEEP = 500  # characters of each string value kept from a script's report


def last_json(stdout: str) -> dict | None:
    """The last line of ``stdout`` that is a JSON object (ISO-Bench's report line), or None."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                report = json.loads(line)  # json accepts Infinity and NaN: _finite_ms refuses them
            except json.JSONDecodeError:
                continue
            return report if isinstance(report, dict) else None
    return None


ERROR_KEYS = ("error", "error_name", "error_code", "error_message")
MAX_ERROR_LINES = 20


def error_lines(stdout: str) -> list[dict]:
    """Every JSON line of ``stdout`` that states a problem (an error key, ``target_resolved: false``), in order,
    as the timing file keeps a report: a script may say CAPABILITY_UNSUPPORTED before its last line."""
    out = []
    for line in stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            report = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue
        if isinstance(report, dict) and (
            any(report.get(k) not in (None, "", 0) for k in ERROR_KEYS)
            or report.get("target_resolved") is False
        ):
            kept = kept_report(report)
            if kept not in out:
                out.append(kept)
    return out[:MAX_ERROR_LINES]


def kept_report(report: dict | None) -> dict | None:
    """A script's report as the timing file keeps it: scalar values, long strings cut."""
    if not isinstance(report, dict):
        return None
    out = {}
    for key, value in list(report.items())[:50]:
        if isinstance(value, str):
            out[str(key)] = value[:_REPORT_KEEP]
        elif (
            value is None
            or isinstance(value, bool)
            or (isinstance(value, (int, float)) and math.isfinite(value))
        ):
            out[str(key)] = value
        else:
            out[str(key)] = str(value)[:_REPORT_KEEP]
    return out


def stated_failure(report: dict) -> tuple[str, str] | None:
    """(category, error) that an ISO-Bench script's report states, or None when it states no failure.

    ``target_resolved: false`` comes first; then ``error_name``/``error_code`` choose the category
    (CAPABILITY_UNSUPPORTED: this machine lacks what the test needs, e.g. CUDA); the script's own
    message (``error_message`` or ``error``) is the error."""
    message = report.get("error_message") or report.get("error")
    message = str(message)[:1000] if message else None
    if report.get("target_resolved") is False:
        return "target_not_resolved", message or "the script could not resolve the API under test"
    name, code = report.get("error_name"), report.get("error_code")
    if not (message or name or code):
        return None
    category = ERROR_NAMES.get(str(name).upper()) if name else ERROR_CODES.get(code)
    detail = f"{name}" if name else f"error_code {code}"
    return category or "experiment_error", message or f"the script reported {detail}"


def parse_isobench(
    stdout: str, revision: str, returncode: int = 0, stderr: str = "", mode: str = "time"
) -> tuple[float | None, str | None, str | None, list[str]]:
    """(sample ms, failure category, error, warnings) from an ISO-Bench script's run.

    Its last JSON line is read whatever the exit code: a script that cannot run prints why there and
    exits non-zero. Without such a statement a non-zero exit is judged from stderr (``classify_exit``)."""
    report = last_json(stdout)
    stated = stated_failure(report) if report is not None else None
    if stated:
        return None, stated[0], stated[1], []
    if returncode != 0:
        category, error = classify_exit(returncode, mode, stderr)
        return None, category, error, []
    if report is None:
        return None, "bad_output", "no JSON line with avg_ms on stdout", []
    warnings = []
    if report.get("opt_path_hit") is False:
        if revision == "base":
            warnings.append("opt_path_hit is false at base (expected before the optimization)")
        else:
            return (
                None,
                "opt_path_missed",
                "the script reports that the optimized code path was not taken",
                [],
            )
    if "avg_ms" not in report:
        return None, "bad_output", "the JSON line has no avg_ms", warnings
    ms = _finite_ms(report["avg_ms"], 1.0)
    if ms is None:
        return (
            None,
            "bad_output",
            f"avg_ms is not a finite non-negative number: {report['avg_ms']!r}",
            warnings,
        )
    return ms, None, None, warnings


def parse_gso(text: str) -> tuple[float | None, str | None, str | None]:
    """(sample ms, failure category, error) from a GSO output file's last timing line."""
    lines = [line.strip() for line in text.splitlines() if _GSO_ANY.match(line.strip())]
    if not lines:
        return None, "bad_output", "no 'Execution time: X.XXXXXXs' line in the output file"
    m = _GSO_LINE.match(lines[-1])
    if not m:
        return None, "bad_output", f"unreadable timing line (seconds expected): {lines[-1][:100]!r}"
    try:
        value = float(m.group(1))
    except ValueError:
        return None, "bad_output", f"unreadable timing line (seconds expected): {lines[-1][:100]!r}"
    ms = _finite_ms(value, 1e3)
    if ms is None:
        return None, "bad_output", f"the reported time is not a finite non-negative number: {m.group(1)!r}"
    return ms, None, None


CONTRACT = ("setup", "experiment", "store_result", "load_result", "check_equivalence")


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
