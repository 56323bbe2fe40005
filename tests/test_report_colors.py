"""The report a person reads (issue 26, point 5): verdicts drawn by kind (only a decided slowdown is red) and a
first page that no record's text can turn into a template. Records the demo's workflow wrote."""

from __future__ import annotations

import copy
import json
import re

from conftest import FIXTURES

from isobench.front_page import front_page
from isobench.report import VERDICT_COLORS, plot_speedups, summary_html

ROWS = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines() if line]


def with_verdicts(*verdicts):
    """The demo's measured records, their base→head verdicts set to ``verdicts`` in order."""
    rows = [copy.deepcopy(r) for r in ROWS if (r.get("comparisons") or {}).get("base_head")]
    for row, verdict in zip(rows, verdicts):
        row["comparisons"]["base_head"]["verdict"] = verdict
    return rows[: len(verdicts)]


def test_the_table_colours_each_verdict_and_only_slower_red():
    table = summary_html(with_verdicts("faster", "slower", "no_change", "inconclusive"))
    for verdict, color in VERDICT_COLORS.items():
        assert re.search(rf"<td class='verdict-{verdict}' style='color:{color};[^']*'>{verdict}</td>", table)
    assert table.count(VERDICT_COLORS["slower"]) == 1


def test_the_figure_draws_no_change_and_inconclusive_apart_from_slower(tmp_path):
    svg = tmp_path / "speedups.svg"
    plot_speedups(with_verdicts("inconclusive", "no_change", "inconclusive", "faster"), svg)
    text = svg.read_text()
    assert VERDICT_COLORS["slower"] not in text  # nothing undecided or unchanged is drawn red
    for verdict in ("no_change", "inconclusive", "faster"):
        assert VERDICT_COLORS[verdict] in text
    assert "no change" in text and "inconclusive" in text  # the legend names them


def test_the_first_page_holds_no_template_syntax_whatever_the_records_say(tmp_path):
    """Snakemake renders the page with Jinja: a hostile API name or error text must stay text."""
    rows = with_verdicts("faster", "inconclusive")
    rows[0]["api"] = "{{ 7 * 7 }} {% include '/etc/passwd' %}"
    rows[1]["status"] = "generation_failed"
    rows[1]["provenance"]["generation_error"] = "no reply {# a comment #}"
    svg = tmp_path / "speedups.svg"
    plot_speedups(rows, svg)
    summary = {"totals": {"api_requests": 3, "refused_requests": 1, "generation_failed": 1}, "commits": []}
    page = front_page(rows, summary, svg.read_text(), "results/dataset.jsonl")
    assert "{" not in page and "}" not in page
    assert "&#123;&#123; 7 * 7 &#125;&#125;" in page and "no reply &#123;# a comment #&#125;" in page
    assert "3 (1 refused or unanswered)" in page and max(len(line) for line in page.splitlines()) < 10_000
