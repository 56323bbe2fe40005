"""What failed, said per commit at the end of a run: one line per failed commit naming its extraction file (or
commit), its category and the message, one line for many commits that failed for one cause, counts of commits
(not of revisions), and the command that tries again where one does."""

from __future__ import annotations

from collections import Counter

GROUP_AT = 3  # this many commits failing alike share one line
SHOWN = 12  # lines of failures at most (the rest: `isobench summary`)


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
    groups: dict[tuple[str, str], list[dict]] = {}
    for row, cause in failed:
        groups.setdefault(cause, []).append(row)
    shown = 0
    for (category, message), members in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        if shown == SHOWN:
            lines.append(
                f"    ... and {len(groups) - shown} more causes: `isobench summary` lists every commit"
            )
            break
        said = f"{category}: {message}" if message else category
        if len(members) >= GROUP_AT:
            names = ", ".join(where(r) for r in members[:3])
            lines.append(f"    {len(members)} commits ({names}, ...): {said}")
            shown += 1
            continue
        for row in members:
            if shown < SHOWN:
                lines.append(f"    {where(row)}: {said}")
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


def _first_line(text: str, limit: int = 240) -> str:
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line[:limit] + ("…" if len(line) > limit else "")
