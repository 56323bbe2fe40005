"""The report rules: the figures and first page of `snakemake --report`, and the audit."""

from __future__ import annotations

from pathlib import Path

from ..audit import audit, format_audit
from ..config import SCHEMA
from ..dataset import dataset_of, read_dataset
from ..errors import IsobenchError
from ..front_page import front_page
from ..jsonio import load_json, write_text_atomic, write_valid
from ..report import plot_samples, plot_speedups, summary_html
from .common import log


def report_figures_step(smk) -> None:

    rows = read_dataset(smk.input.dataset)
    plot_speedups(rows, smk.output.speedups)
    plot_samples(rows, smk.output.samples)
    write_text_atomic(smk.output.table, summary_html(rows))
    page = front_page(
        rows,
        load_json(smk.input.llm_summary),
        Path(smk.output.speedups).read_text(encoding="utf-8"),
        dataset_of(smk.input.dataset),
    )
    write_text_atomic(smk.output.front, page)
    log.info("report figures of %d records in %s", len(rows), Path(smk.output.table).parent)


def audit_step(smk) -> None:

    report = audit(smk.params.config, SCHEMA)
    log.info("%s", format_audit(report))
    write_valid(smk.params.report, report, "audit")
    if not report["ok"]:
        raise IsobenchError(
            f"audit failed: integrity problems (listed above, in {smk.log[0]} and {smk.params.report})"
        )
