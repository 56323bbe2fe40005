"""What the LLM cost: totals over the commits' generator.json files, for the summary file and the end of a run."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import IsobenchError
from .jsonio import load_json

COUNTERS = (
    "api_requests",
    "refused_requests",
    "cached_replies",
    "input_tokens",
    "output_tokens",
    "original_input_tokens",
    "original_output_tokens",
)


def llm_summary(meta_paths: list[str], since: float | None = None, prices: dict | None = None) -> dict:
    """Totals and per-commit rows; with ``since`` (a time stamp) only files written after it count; with
    ``prices`` (config ``llm_prices``: model → USD per million input and output tokens) what they cost."""
    rows, totals = [], {k: 0 for k in COUNTERS}
    totals.update(generated=0, accepted_from_cache=0, generation_failed=0, pregenerated=0)
    for path in meta_paths:
        try:
            if since is not None and os.path.getmtime(path) < since:
                continue
            meta = load_json(path)
        except (OSError, IsobenchError):
            continue  # not made (yet): a failed or skipped job
        if meta.get("status") == "pregenerated" or not meta.get("llm"):
            totals["pregenerated"] += 1
            continue
        info = meta["llm"]
        totals["generated"] += 1
        totals["accepted_from_cache"] += bool(info.get("cache_hit"))
        totals["generation_failed"] += meta["status"] == "generation_failed"
        for key in COUNTERS:
            totals[key] += info.get(key, 0)
        rows.append(
            {
                "generator": str(Path(path).parent),
                "status": meta["status"],
                "model": info.get("model"),
                **{k: info.get(k, 0) for k in (*COUNTERS, "cache_hit")},
            }
        )
    return price({"totals": totals, "commits": rows}, prices or {})


def price(summary: dict, prices: dict) -> dict:
    """Each generated commit's cost in USD from its tokens and its model's price; the total, or None while a
    model that was asked has no price (``unpriced`` names it)."""
    unpriced = set()
    total = 0.0
    for row in summary["commits"]:
        rate = prices.get(row.get("model") or "")
        if rate is None:
            row["cost_usd"] = None
            if row.get("input_tokens") or row.get("output_tokens"):
                unpriced.add(str(row.get("model")))
            continue
        row["cost_usd"] = round(
            (row.get("input_tokens", 0) * rate["input"] + row.get("output_tokens", 0) * rate["output"]) / 1e6,
            6,
        )
        total += row["cost_usd"]
    summary["totals"]["cost_usd"] = None if unpriced else round(total, 6)
    summary["totals"]["unpriced_models"] = sorted(unpriced)
    return summary


def cost_text(totals: dict) -> str:
    """The cost as a person reads it: ``$0.42``, or which model's price is missing."""
    if totals.get("cost_usd") is not None:
        return f"${totals['cost_usd']:.2f}"
    return "unknown: no price for " + ", ".join(totals.get("unpriced_models") or []) + " in llm_prices"


def summary_line(summary: dict, what: str) -> str:
    t = summary["totals"]
    return (
        f"isobench LLM use ({what}): {t['api_requests']} API requests"
        + (f" ({t['refused_requests']} refused or unanswered)" if t.get("refused_requests") else "")
        + f", {t['input_tokens']} input + "
        f"{t['output_tokens']} output tokens; {t['generated']} generated scripts "
        f"({t['accepted_from_cache']} from the cache, {t['cached_replies']} replies replayed from the cache, "
        f"{t['generation_failed']} failed), {t['pregenerated']} pre-generated"
        + (f"; cost {cost_text(t)}" if t.get("input_tokens") or t.get("output_tokens") else "")
    )
