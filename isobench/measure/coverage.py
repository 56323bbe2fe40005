"""Did the test run the change? The commit's changed lines and functions, traced in one untimed call.

After the check round, base and head each run once more, traced (``tracer.py`` in the harness's coverage mode,
or around the whole run of a command-line script): which of the lines the commit adds (at head) or removes or
replaces (at base) the test executed inside function bodies, which touched functions (``patch_functions``) it
entered, and where each changed module was imported from (the revision's worktree, its environment, elsewhere,
nowhere). The timed calls are never traced. Head is judged on its own lines; base's count only where head has
nothing to run (a commit that only deletes code).

A test whose calls execute none of the measurable changed code is ``target_not_exercised``; one that imported a
changed module from outside its revision (site-packages, a copy of its own) is ``target_imported_elsewhere``.
What the tracer cannot see is "not measurable", never a failure: compiled sources (C++, CUDA, Rust, ...), the
bodies of functions a decorator compiles, code run in other processes, and (before Python 3.12) threads that
were running before the traced call.
"""

from __future__ import annotations

from pathlib import Path

from ..apis import def_ranges, innermost
from ..errors import IsobenchError
from ..untrusted import read_input
from .change import Change, compiled_ranges, module_path, targets

COUNTED = ("worktree", "environment")  # where a module's executed lines are the revision's own
__all__ = ["Change", "check", "combine", "side_facts"]


def place(path: str, worktree: Path, environment: tuple[Path, ...], image: str | None) -> str:
    """Where a running module file lies: the revision's worktree, its environment (a venv or image built from
    it), or elsewhere."""
    real = Path(path).resolve()
    if real.is_relative_to(worktree.resolve()):
        return "worktree"
    if any(real.is_relative_to(Path(e).resolve()) for e in environment) or image:
        return "environment"
    return "elsewhere"


def _lines(value, name: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise ValueError(f"{name} is not a list of line numbers")
    return value


def _paths(value, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(p, str) and "\0" not in p and p for p in value):
        raise ValueError(f"{name} is not a list of paths")
    return value


def checked(report) -> dict[str, dict]:
    """The tracer's report per changed file, each field of the expected type (the report is written inside the
    test's process: anything else is a ValueError, and the verdict is unknown)."""
    if not isinstance(report, dict) or not isinstance(report.get("files"), list):
        raise ValueError("the tracer's report has no list of files")
    out = {}
    for entry in report["files"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("rel"), str):
            raise ValueError("an entry of the tracer's report names no file")
        loaded = entry.get("loaded_from")
        executable = entry.get("executable")
        out[entry["rel"]] = {
            "executable": None if executable is None else _lines(executable, "executable"),
            "executed": _lines(entry.get("executed"), "executed"),
            "executed_in": _paths(entry.get("executed_in"), "executed_in"),
            "loaded_from": _paths([loaded], "loaded_from")[0] if loaded is not None else None,
        }
    return out


def _unseen(report: dict) -> dict:
    """What ran out of the tracer's sight: processes started or alive, threads it could not trace."""
    unseen = report.get("unseen") if isinstance(report.get("unseen"), dict) else {}
    spawned = [s for s in unseen.get("spawned") or [] if isinstance(s, str)][:20]
    children = [c for c in unseen.get("children") or [] if isinstance(c, int)][:20]
    threads = unseen.get("threads_untraced")
    return {
        "spawned": spawned,
        "children": children,
        "threads_untraced": threads if isinstance(threads, int) and not isinstance(threads, bool) else 0,
    }


def side_facts(side: str, change: Change, report, worktree: Path, environment=(), image=None) -> dict:
    """What one revision's traced call executed of its side of the change (the tracer's report, judged; a
    malformed report is a ValueError). Only the change's own files are read from the worktree, by their paths
    in the diff, never by a path the report holds."""
    entries = checked(report)
    lines_of = change.side(side)
    files, functions, outside = [], {}, []
    for rel, changed in sorted(lines_of.items()):
        if module_path(worktree, rel) is None:
            outside.append(rel)
            continue
        entry = entries.get(rel) or {
            "executable": None,
            "executed": [],
            "executed_in": [],
            "loaded_from": None,
        }
        try:  # a regular file of bounded size only (a symlink to a device is never read)
            source = read_input(worktree / rel, what="a changed file").decode("utf-8", "replace")
        except IsobenchError:
            source = None
        compiled = compiled_ranges(source)
        in_compiled = {n for n in changed if any(a <= n <= b for a, b in compiled)}
        places = {
            p: place(p, worktree, environment, image)
            for p in [entry["loaded_from"], *entry["executed_in"]]
            if p
        }
        away = [p for p, where in places.items() if where == "elsewhere"]
        where = "elsewhere" if away else min(places.values()) if places else "not_imported"
        executed = set(entry["executed"]) if where in COUNTED else set()
        measurable = (set(entry["executable"] or ()) & changed) - in_compiled
        ranges = def_ranges(source)
        hit = innermost(ranges, executed)
        for qualified in change.functions:
            path, _, name = qualified.partition("::")
            span = next(((a, b) for a, b, n in ranges if n == name), None)
            if path == rel and span and not any(a <= span[0] <= b for a, b in compiled):
                functions[qualified] = name in hit
        files.append(
            {
                "path": rel,
                "imported_from": where,
                "module_file": entry["loaded_from"],
                "outside_file": away[0] if away else None,
                "changed_lines": len(changed),
                "measurable_lines": len(measurable),
                "covered_lines": sorted(measurable & executed),
                "missed_lines": sorted(measurable - executed),
                "compiled_lines": len(in_compiled),
            }
        )
    method = report.get("method")
    python = report.get("python")
    return {
        "status": "traced",
        "side": side,
        "method": method if isinstance(method, str) else None,
        "python": python if isinstance(python, str) else None,
        "files": files,
        "functions": functions,
        "outside_packages": outside,
        "compiled_sources": change.compiled_sources(),
        "unseen": _unseen(report),
    }


def not_traced(reason: str) -> dict:
    return {"status": "not_traced", "reason": reason}


def _counts(facts: dict) -> tuple[int, int, dict]:
    covered = sum(len(f["covered_lines"]) for f in facts["files"])
    return covered, sum(f["measurable_lines"] for f in facts["files"]), facts["functions"]


def _unseen_reason(facts: dict) -> str | None:
    unseen = facts.get("unseen") or {}
    if unseen.get("spawned") or unseen.get("children"):
        return "the test started other processes, whose lines no tracer here sees"
    if unseen.get("threads_untraced"):
        return f"{unseen['threads_untraced']} thread(s) ran before the traced call and were not traced (Python < 3.12)"
    return None


def combine(base: dict | None, head: dict | None, opt_path_hit=None) -> dict:
    """The record's ``coverage``: both revisions' facts as one verdict (from their timing files alone)."""
    sides = {name: facts for name, facts in (("base", base), ("head", head)) if facts}
    traced = {n: f for n, f in sides.items() if f.get("status") == "traced"}
    out = {
        "status": None,
        "reason": None,
        "changed_lines_covered": None,
        "changed_lines": {"base": None, "head": None},
        "functions_hit": [],
        "functions_missed": [],
        # a list of rows, never a dict keyed by paths: the record's columns keep one shape (datasets, Parquet)
        "imported_from": [
            {"revision": n, "path": f["path"], "place": f["imported_from"]}
            for n, facts in traced.items()
            for f in facts["files"]
        ],
        "not_measurable": [],
        "outside_packages": sorted({p for f in traced.values() for p in f.get("outside_packages", [])}),
        "method": next((f.get("method") for f in traced.values() if f.get("method")), None),
        "opt_path_hit_reported": opt_path_hit if isinstance(opt_path_hit, bool) else None,
    }
    if len(traced) < 2:
        why = [f.get("reason") for f in sides.values() if f.get("status") == "not_traced"]
        return {**out, "status": "not_traced", "reason": (why or ["base and head were not both traced"])[0]}
    base, head = traced["base"], traced["head"]
    functions: dict[str, bool] = {}
    for name, facts in traced.items():
        c, m, f = _counts(facts)
        out["changed_lines"][name] = {"covered": c, "measurable": m}
        for qualified, hit in f.items():
            functions[qualified] = functions.get(qualified, False) or hit
    covered = sum(v["covered"] for v in out["changed_lines"].values())
    measurable = sum(v["measurable"] for v in out["changed_lines"].values())
    compiled_files = sorted(
        {f["path"] for facts in traced.values() for f in facts["files"] if f["compiled_lines"]}
    )
    sources = head.get("compiled_sources") or []
    out["functions_hit"] = sorted(q for q, hit in functions.items() if hit)
    out["functions_missed"] = sorted(q for q, hit in functions.items() if not hit)
    out["not_measurable"] = sorted(set(compiled_files) | set(sources))
    out["changed_lines_covered"] = round(covered / measurable, 4) if measurable else None
    for name in ("head", "base"):
        away = [f for f in traced[name]["files"] if f["imported_from"] == "elsewhere"]
        if away:
            out["status"] = "imported_elsewhere"
            out["reason"] = (
                f"at {name}, {away[0]['path']} came from {away[0]['outside_file']}, outside the revision"
            )
            return out
    # head on its own lines; base's only where head has nothing to run (a commit that only deletes code)
    judged = head if (_counts(head)[1] or head["functions"]) else base
    c, m, f = _counts(judged)
    files = judged["files"]
    imported = any(
        row["place"] in COUNTED for row in out["imported_from"] if row["revision"] == judged["side"]
    )
    if c or any(f.values()):
        out["status"] = "exercised"
    elif _unseen_reason(judged):  # the change may have run where no tracer here looks
        out["status"], out["reason"] = "not_measurable", _unseen_reason(judged)
    elif files and not imported:  # not one changed module of the revision was loaded: a fallback, a mock
        out["status"] = "not_exercised"
        out["reason"] = f"no changed module was imported from the revision at {judged['side']} " + (
            f"({', '.join(x['path'] for x in files[:3])}{', ...' if len(files) > 3 else ''})"
        )
    elif sources:
        out["status"] = "not_measurable"
        out["reason"] = f"the commit changes compiled code the tracer cannot see ({', '.join(sources[:5])})"
    elif not m and not f:
        out["status"] = "not_measurable"
        out["reason"] = (
            "no changed line runs as Python (compiled functions, or only module-level lines)"
            if files
            else "the commit changes no module of a package"
        )
    else:
        out["status"] = "not_exercised"
        out["reason"] = f"the test executed none of the {m} measurable changed lines at {judged['side']}" + (
            f" nor any of the {len(f)} changed functions" if f else ""
        )
    return out


def _trace(job, rev, name: str, change: Change) -> dict:
    """One revision's facts: traced, or ``not_traced`` and why (a failed call, a malformed report)."""
    worktree = rev.worktree.resolve()
    watched = targets(change, name, worktree)
    if not watched:  # nothing of a package's Python to watch: no call needed
        return side_facts(name, change, {"files": []}, worktree, rev.read_only, rev.image)
    rep = job.trace(rev, watched, job.data / name / "coverage")
    if rep.get("status") != "ok" or not isinstance(rep.get("coverage"), dict):
        return not_traced(
            f"its traced call failed: {rep.get('category')}: {str(rep.get('error') or '')[:300]}"
        )
    try:
        return side_facts(name, change, rep["coverage"], worktree, rev.read_only, rev.image)
    except ValueError as exc:
        return not_traced(f"its tracer's report is malformed: {exc}")


def check(job, revisions: list, state: dict, change: Change) -> dict | None:
    """After the check round, when base and head both passed it: trace each once (``job.trace``), keep the facts
    in their states, and fail the revision that imported a changed module from elsewhere
    (``target_imported_elsewhere``) or, when the test executed none of the change, head
    (``target_not_exercised``). The verdict (``combine``), or None when base or head had failed already."""
    revs = {r.name: r for r in revisions if r.name in ("base", "head")}
    if len(revs) < 2 or not all(state[name].active for name in revs):
        return None
    for name, rev in revs.items():
        facts = _trace(job, rev, name, change)
        state[name].coverage = facts
        if facts["status"] == "not_traced":
            state[name].warnings.append(f"coverage not known: {facts['reason']}")
    verdict = combine(state["base"].coverage, state["head"].coverage)
    for name in revs:
        facts = state[name].coverage
        away = [f for f in facts.get("files", []) if f["imported_from"] == "elsewhere"]
        if away:
            state[name].fail(
                "target_imported_elsewhere",
                f"{away[0]['path']} was imported from {away[0]['outside_file']}, outside the revision's worktree "
                "and environment, so its timings are not the commit's code",
            )
    if verdict["status"] == "not_exercised" and state["head"].active:
        state["head"].fail("target_not_exercised", verdict["reason"])
    return verdict
