"""What failed, said per commit at the end of a run: one line per failed commit naming its extraction file (or
commit), its category and the message, one line for many commits that failed for one cause, counts of commits
(not of revisions), and the command that tries again where one does."""

from __future__ import annotations

from collections import Counter

GROUP_AT = 3  # this many commits failing alike share one line
SHOWN = 12  # lines of failures at most (the rest: `isobench summary`)


def missing_commit_lines(source: str, repo: str, missing: list[tuple[str, str]], total: int) -> list[str]:
    """Planning's word on the commits a source's repository does not hold ((where each is named, the commit)):
    a line each, or one line for many (the likely cause is then the repository, not the commits)."""
    if len(missing) < GROUP_AT:
        return [
            f"{named}: commit {commit} is not in the repository of source {source} (the commit ends as a failed "
            "record)"
            for named, commit in missing
        ]
    names = ", ".join(named.rsplit("/", 1)[-1] for named, _ in missing[:3])
    which = (
        f"none of these {total} commits is"
        if len(missing) == total
        else f"{len(missing)} of {total} commits are"
    )
    return [
        f"source {source}: {which} in its repository {repo} ({names}, ...): each ends as a failed record; "
        f"is sources.{source}.repo the repository they come from?"
    ]


def commit_failure(row: dict) -> tuple[str, str] | None:
    """(category, message) of a record whose commit failed (status failed or generation_failed), else None.
    The first of base and head that failed speaks for the commit (main is measured beside, not required)."""
    status = row.get("status")
    if status == "generation_failed":
        prov = row.get("provenance") or {}
        return "generation_failed", _first_line(
            prov.get("generation_error") or "no usable test was generated"
        )
    if status != "failed":
        return None
    revisions = row.get("revisions") or {}
    for name in ("base", "head", "main"):
        rev = revisions.get(name) or {}
        if rev.get("category"):
            return rev["category"], _first_line(rev.get("error") or "")
    return "failed", ""


def outcome_line(record: dict) -> str:
    """A commit's record in one console line: its speedup and verdict, or why it failed (and main's failure,
    which does not fail the commit)."""
    name = f"record {record['instance_id']}"
    failure = commit_failure(record)
    if failure:
        category, message = failure
        said = category if category == record["status"] else f"{record['status']}, {category}"
        return f"{name}: {said}" + (f": {_first_line(message, 200)}" if message else "")
    cmp = (record.get("comparisons") or {}).get("base_head")
    line = f"{name}: {record['status']}, " + (
        "no comparison"
        if cmp is None
        else f"speedup {cmp['speedup']:.3f} [{cmp['ci_low']:.3f}, {cmp['ci_high']:.3f}] {cmp['verdict']}"
    )
    main = (record.get("revisions") or {}).get("main") or {}
    if main.get("category"):
        line += f" (main failed: {main['category']})"
    return line


def where(row: dict) -> str:
    """The commit as a person finds it: its extraction file's name, else its commit."""
    path = (row.get("provenance") or {}).get("extraction_file")
    return (
        str(path).rsplit("/", 1)[-1] if path else str(row.get("head_commit") or row.get("instance_id"))[:12]
    )


def transient(row: dict) -> bool:
    """A generation that got no reply (no connection, 429 or 5xx): the next plain run asks again."""
    return bool(((row.get("provenance") or {}).get("llm") or {}).get("transient"))


def failure_lines(rows: list[dict]) -> list[str]:
    """The end of a run's summary: the failed commits, grouped by cause, and what to do about them."""
    failed = [(row, commit_failure(row)) for row in rows]
    failed = [(row, f) for row, f in failed if f is not None]
    if not failed:
        return [f"  failed commits: none of {len(rows)}"]
    counts = Counter(f[0] for _, f in failed)
    lines = [
        f"  failed commits: {len(failed)} of {len(rows)} ("
        + ", ".join(f"{cat} {n}" for cat, n in counts.most_common())
        + ")"
    ]
    groups: dict[tuple[str, str], list[tuple[dict, str]]] = {}
    for row, (category, message) in failed:
        groups.setdefault((category, _generic(row, message)), []).append((row, message))
    shown = 0
    for (category, generic), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if shown == SHOWN:
            lines.append(
                f"    ... and {len(groups) - shown} more causes: `isobench summary` lists every commit"
            )
            break
        if len(members) >= GROUP_AT:
            names = ", ".join(where(r) for r, _ in members[:3])
            lines.append(
                f"    {len(members)} commits ({names}, ...): {category}" + (f": {generic}" if generic else "")
            )
            shown += 1
            continue
        for row, message in members:
            if shown < SHOWN:
                message = _own(row, message)
                lines.append(f"    {where(row)}: {category}" + (f": {message}" if message else ""))
                shown += 1
    again = [r for r, (cat, _) in failed if cat == "generation_failed" and transient(r)]
    redo = [r for r, (cat, _) in failed if cat == "generation_failed" and not transient(r)]
    if again:
        lines.append(
            f"  {len(again)} generation(s) got no reply from the LLM API: the next plain run asks again"
        )
    if redo:
        shas = " ".join(str(r.get("head_commit"))[:12] for r in redo[:10])
        lines.append(f"  ask the LLM again for the failed generations: isobench retry-generation {shas}")
    return lines


def main_line(rows: list[dict]) -> list[str]:
    """Main (the branch tip) is measured beside base and head and fails no commit: its failures, counted in
    commits whose base and head passed (a later rename at main, an import that moved)."""
    counts = Counter(
        ((row.get("revisions") or {}).get("main") or {}).get("category")
        for row in rows
        if commit_failure(row) is None
    )
    counts.pop(None, None)
    if not counts:
        return []
    said = ", ".join(f"{cat} {n}" for cat, n in counts.most_common())
    return [f"  main (the branch tip) failed for {sum(counts.values())} of the other commits ({said})"]


def _file(row: dict) -> str:
    return str((row.get("provenance") or {}).get("extraction_file") or "")


def _own(row: dict, message: str) -> str:
    """The message without the file name its line already starts with."""
    path = _file(row)
    return message[len(path) + 2 :] if path and message.startswith(path + ": ") else message


def _generic(row: dict, message: str) -> str:
    """The message with what names this commit (its file, its SHA) taken out: commits failing for one cause
    share it."""
    text = _own(row, message)
    head = str(row.get("head_commit") or "")
    for token in (_file(row), where(row), head, head[:12], head[:8]):
        if len(token) >= 7:
            text = text.replace(token, "…")
    return text


def _first_line(text: str, limit: int = 240) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:limit] + ("…" if len(line) > limit else "")
