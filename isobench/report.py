"""The dataset at a glance: a summary table (terminal and HTML) and two plots for ``snakemake --report``."""

from __future__ import annotations

import html
import math
import os
from collections import Counter
from pathlib import Path

from .categories import REVISIONS
from .costs import llm_summary, summary_line
from .dataset import read_dataset
from .errors import IsobenchError
from .failures import failure_lines, main_line
from .jsonio import load_json

COLUMNS = ("commit", "api", "status", "verdict", "speedup [CI]", "base", "head", "main", "coverage", "notes")


def notes(record: dict) -> str:
    """What a reader must know beside the numbers: a noisy machine during the measurement (round medians in
    separate speed modes, or drifting), named per revision."""
    out = []
    for name, rev in (record.get("revisions") or {}).items():
        kinds = sorted(
            {
                "speed modes" if "speed modes" in w else "drift"
                for w in rev.get("warnings") or []
                if w.startswith("noisy machine")
            }
        )
        if kinds:
            out.append(f"{name}: noisy ({', '.join(kinds)})")
    return "; ".join(out)


def coverage_cell(record: dict) -> str:
    """Did the test run the change: the share of measurable changed lines executed and the touched functions
    entered (``72% lines, 2/3 functions``), or the coverage status where no share applies."""
    cov = record.get("coverage") or {}
    status = cov.get("status")
    if status is None:
        return "-"
    if status not in ("exercised", "not_exercised"):
        return status.replace("_", " ")
    parts = []
    if cov.get("changed_lines_covered") is not None:
        parts.append(f"{cov['changed_lines_covered']:.0%} lines")
    functions = len(cov.get("functions_hit") or []) + len(cov.get("functions_missed") or [])
    if functions:
        parts.append(f"{len(cov.get('functions_hit') or [])}/{functions} functions")
    return ", ".join(parts) or status.replace("_", " ")


def _state(rev: dict) -> str:
    return "ok" if rev["status"] == "ok" else (rev["category"] or rev["status"])


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per record: the commit, its API, status, the base→head verdict, speedup with its CI, each revision's state."""
    out = []
    for r in rows:
        cmp = (r.get("comparisons") or {}).get("base_head")
        revs = r.get("revisions") or {}
        out.append(
            {
                "commit": r["head_commit"][:12],
                "instance_id": r["instance_id"],
                "api": r.get("api") or "",
                "status": r["status"],
                "verdict": cmp["verdict"] if cmp else "-",
                "speedup": cmp["speedup"] if cmp else None,
                "ci_low": cmp["ci_low"] if cmp else None,
                "ci_high": cmp["ci_high"] if cmp else None,
                **{name: _state(revs[name]) if name in revs else "-" for name in REVISIONS},
                "coverage": coverage_cell(r),
                "notes": notes(r),
            }
        )
    return out


def _speedup(row: dict) -> str:
    if row["speedup"] is None:
        return "-"
    return f"{row['speedup']:.2f}x [{row['ci_low']:.2f}, {row['ci_high']:.2f}]"


def _cells(row: dict) -> list[str]:
    return [
        row["commit"],
        row["api"],
        row["status"],
        row["verdict"],
        _speedup(row),
        row["base"],
        row["head"],
        row["main"],
        row["coverage"],
        row["notes"],
    ]


def format_summary(rows: list[dict]) -> str:
    """The summary as a fixed-width table, with a line of totals."""
    table = [list(COLUMNS)] + [_cells(r) for r in summary_rows(rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    verdicts: dict[str, int] = {}
    for r in summary_rows(rows):
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    covered = Counter((r.get("coverage") or {}).get("status") or "-" for r in rows)
    lines.append(
        f"{len(rows)} records; base→head verdicts: "
        + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
        + "; coverage: "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in sorted(covered.items()))
    )
    return "\n".join(lines)


# Each verdict drawn in its own colour, in the figure and the table: only `slower` is red; `no_change` (decided:
# within the minimum effect) and `inconclusive` (not decided) are neither a gain nor a loss.
VERDICT_COLORS = {
    "faster": "#2ca02c",  # green
    "slower": "#d62728",  # red
    "no_change": "#1f77b4",  # blue
    "inconclusive": "#7f7f7f",  # gray
}


def summary_html(rows: list[dict]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in COLUMNS)
    at = COLUMNS.index("verdict")

    def cell(i: int, text: str) -> str:
        color = VERDICT_COLORS.get(text) if i == at else None
        style = f" class='verdict-{text}' style='color:{color};font-weight:bold'" if color else ""
        return f"<td{style}>{html.escape(text)}</td>"

    body = "".join(
        "<tr>" + "".join(cell(i, c) for i, c in enumerate(_cells(r))) + "</tr>" for r in summary_rows(rows)
    )
    return (
        f"<html><head><meta charset='utf-8'><title>isobench dataset</title></head><body>"
        f"<table border='1' cellpadding='4'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f"</body></html>\n"
    )


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: searchable, and smaller files
    import matplotlib.pyplot as plt

    return plt


def plot_speedups(rows: list[dict], path: str | Path) -> None:
    """base→head speedup per commit with its confidence interval (log scale; 1 = no change)."""
    plt = _pyplot()
    data = [r for r in summary_rows(rows) if r["speedup"] is not None]
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.35 * len(data) + 1.2)))
    seen = set()
    for i, r in enumerate(data):
        verdict = r["verdict"] if r["verdict"] in VERDICT_COLORS else "inconclusive"
        ax.errorbar(
            r["speedup"],
            i,
            xerr=[[r["speedup"] - r["ci_low"]], [r["ci_high"] - r["speedup"]]],
            fmt="o",
            mfc=VERDICT_COLORS[verdict] if verdict != "inconclusive" else "white",  # undecided: hollow
            color=VERDICT_COLORS[verdict],
            capsize=3,
            label=verdict.replace("_", " ") if verdict not in seen else None,
        )
        seen.add(verdict)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_yticks(range(len(data)), [f"{r['commit'][:8]} {r['api']}"[:40] for r in data])
    ax.invert_yaxis()
    ax.set_xlabel("speedup, base → head, with its interval (log scale)")
    if seen:
        ax.legend(loc="best", fontsize="small", title="verdict")
    ax.set_title(f"{len(data)} commits with a base→head comparison")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_samples(rows: list[dict], path: str | Path) -> None:
    """Every timed sample of base, head and main per commit, relative to the commit's base median (log scale)."""
    plt = _pyplot()
    data = [r for r in rows if (r.get("duration_changes") or [{}])[0].get("base")]
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(data) + 2), 4.5))
    offsets = {"base": -0.25, "head": 0.0, "main": 0.25}
    colors = {"base": "tab:blue", "head": "tab:orange", "main": "tab:purple"}
    for i, r in enumerate(data):
        samples = r["duration_changes"][0]
        ref = sorted(samples["base"])[len(samples["base"]) // 2]
        if not ref > 0:  # a zero median (a timer's resolution) gives no scale to plot against
            continue
        for name in REVISIONS:
            values = [v / ref for v in samples.get(name) or [] if v > 0 and math.isfinite(v)]
            xs = [i + offsets[name] + 0.08 * ((k % 5) - 2) / 2 for k in range(len(values))]
            ax.scatter(xs, values, s=6, color=colors[name], label=name if i == 0 else None, alpha=0.7)
    ax.set_yscale("log")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(data)), [r["head_commit"][:8] for r in data], rotation=60, fontsize=8)
    ax.set_ylabel("time / median of base")
    ax.set_title("samples per commit: base, head, main")
    if data:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def failures(rows: list[dict]) -> dict[str, dict[str, int]]:
    """{category: {revision: count}} over the dataset; generation failures under 'generation_failed'."""
    out: dict[str, Counter] = {}
    for row in rows:
        if row.get("status") == "generation_failed":
            out.setdefault("generation_failed", Counter())["commit"] += 1
            continue
        for name, rev in (row.get("revisions") or {}).items():
            if rev.get("category"):
                out.setdefault(rev["category"], Counter())[name] += 1
    return {k: dict(v) for k, v in sorted(out.items())}


def format_failures(by_category: dict[str, dict[str, int]]) -> str:
    """'import_error 1 (main 1); not_equivalent 2 (head 1, main 1)', or 'none'."""
    return (
        "; ".join(
            f"{cat} {sum(v.values())} ({', '.join(f'{k} {n}' for k, n in v.items())})"
            for cat, v in by_category.items()
        )
        or "none"
    )


def run_summary(
    dataset: str | Path,
    records: list[str],
    timings: list[str],
    metas: list[str],
    since: float,
    prices: dict | None = None,
) -> str:
    """One screen at the end of a run: what it wrote, what failed and why, what it spent, what it reused."""

    def fresh(paths):
        return [p for p in paths if os.path.exists(p) and os.path.getmtime(p) >= since]

    try:  # never a traceback here: a damaged dataset is one line (the next run restores or rebuilds it)
        rows = read_dataset(dataset) if os.path.exists(dataset) else []
        holds = (
            f"the dataset holds {len(rows)}: {dataset}" if os.path.exists(dataset) else f"no {dataset} yet"
        )
    except (IsobenchError, OSError) as exc:
        rows, holds = [], f"the dataset is damaged: {exc}; the next run restores or rebuilds it"
    cached = measured = 0
    for path in fresh(timings):
        if path.endswith("timing_base.json"):  # one measurement per commit; its three files agree
            try:
                stamp = load_json(path).get("measurement") or {}
            except (IsobenchError, AttributeError):
                continue
            cached += bool(stamp.get("cached"))
            measured += stamp.get("cached") is False
    lines = [
        "isobench run summary",
        f"  records written this run: {len(fresh(records))} ({holds})",
        f"  measurements this run: {measured} fresh, {cached} reused (measurement cache)",
    ]
    lines += failure_lines(rows)  # per commit, grouped by cause (isobench/failures.py)
    lines += main_line(rows)
    lines.append("  " + summary_line(llm_summary(metas, since=since, prices=prices), "this run"))
    lines.append("  per commit: `isobench summary`; integrity and staleness: `isobench audit`")
    return "\n".join(lines)
