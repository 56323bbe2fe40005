"""The first page of ``snakemake --report``: the dataset at a glance, not two clicks deep.

Rule report_figures writes it (``results/report/workflow.rst``) beside the figures; the Snakefile's ``report:``
takes it once it exists. It holds the counts, the speedup figure, the per-commit table, and what the LLM did
(models, requests, tokens, cache use, each failed generation with its reason). Snakemake renders the page with
Jinja before docutils: every brace of the data is written as an HTML entity and the figure as a data URI, so no
commit message, API name or error text can be read as a template.
"""

from __future__ import annotations

import base64
import html
import textwrap
from collections import Counter

from .costs import cost_text
from .failures import commit_failure, where
from .report import summary_html


def _no_braces(text: str) -> str:
    return text.replace("{", "&#123;").replace("}", "&#125;")


def _raw(markup: str) -> str:
    """An RST raw-HTML block holding ``markup`` (braces made entities)."""
    body = "\n".join("   " + line for line in _no_braces(markup).splitlines())
    return f".. raw:: html\n\n{body}\n"


def llm_section(rows: list[dict], summary: dict) -> str:
    """What the LLM did for this dataset: per model, requests, tokens, cache use; the failed generations."""
    t = summary.get("totals") or {}
    by_model = Counter(r.get("model") for r in summary.get("commits") or [] if r.get("model"))
    models = ", ".join(f"{html.escape(str(m))} ({n})" for m, n in by_model.most_common()) or "none"
    cells = [
        ("models (commits)", models),
        (
            "API requests",
            f"{t.get('api_requests', 0)} ({t.get('refused_requests', 0)} refused or unanswered)",
        ),
        ("tokens", f"{t.get('input_tokens', 0)} input + {t.get('output_tokens', 0)} output"),
        ("cost", html.escape(cost_text(t)) if t.get("input_tokens") or t.get("output_tokens") else "$0.00"),
        (
            "cache",
            f"{t.get('accepted_from_cache', 0)} scripts and {t.get('cached_replies', 0)} replies reused",
        ),
        ("tests", f"{t.get('generated', 0)} LLM-written, {t.get('pregenerated', 0)} pre-generated"),
        ("failed generations", str(t.get("generation_failed", 0))),
    ]
    table = "".join(f"<tr><th align='left'>{k}</th><td>{v}</td></tr>\n" for k, v in cells)
    failed = [(r, commit_failure(r)) for r in rows if r.get("status") == "generation_failed"]
    reasons = "".join(
        f"<li><code>{html.escape(where(r))}</code>: {html.escape(cause[1])}</li>\n"
        for r, cause in failed
        if cause
    )
    return f"<h3>The LLM</h3><table border='1' cellpadding='4'>{table}</table>" + (
        f"<p>Failed generations:</p><ul>{reasons}</ul>" if reasons else ""
    )


def front_page(rows: list[dict], summary: dict, speedups_svg: str, dataset: str) -> str:
    """The report's first page (RST for Snakemake's ``report:``)."""
    statuses = Counter(r.get("status") for r in rows)
    verdicts = Counter(
        ((r.get("comparisons") or {}).get("base_head") or {}).get("verdict") or "-" for r in rows
    )
    said = ", ".join(f"{n} {s}" for s, n in statuses.most_common()) or "none"
    decided = ", ".join(f"{v.replace('_', ' ')} {n}" for v, n in verdicts.most_common() if v != "-")
    # docutils refuses lines over 10,000 characters: the data URI in lines (a browser drops its whitespace)
    figure = "\n".join(textwrap.wrap(base64.b64encode(speedups_svg.encode("utf-8")).decode("ascii"), 100))
    markup = (
        "<div class='isobench-front'>"
        f"<p><b>{len(rows)} commits</b> ({html.escape(said)}); base→head verdicts: {html.escape(decided or 'none')}."
        f" The dataset: <code>{html.escape(dataset)}</code>; every record's provenance names its prompt, model, "
        "test, revisions and machine.</p>"
        f"\n<h3>Speedups</h3><img alt='speedup per commit' style='max-width:100%' "
        f"src='data:image/svg+xml;base64,\n{figure}'/>"
        f"\n<h3>Per commit</h3>\n{_table(rows)}"
        f"\n{llm_section(rows, summary)}\n"
        "</div>"
    )
    return (
        "isobench: performance-optimization commits measured at base, head and main\n"
        "==========================================================================\n\n"
        + _raw(markup)
        + "\nThe figures, the table and the per-sample plot are also under the category Dataset_.\n"
    )


def _table(rows: list[dict]) -> str:
    page = summary_html(rows)
    start, end = page.find("<table"), page.rfind("</table>") + len("</table>")
    return page[start:end].replace("</tr>", "</tr>\n")
