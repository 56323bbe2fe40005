"""The dataset rules: the dataset from the records, and the LLM summary over the commits."""

from __future__ import annotations

from ..costs import llm_summary, summary_line
from ..dataset import dataset_of, write_dataset
from ..jsonio import write_valid
from .common import log


def dataset_step(smk) -> None:
    dataset = dataset_of(smk.output.complete)  # not an output: never deleted by Snakemake (rules/dataset.smk)
    n = write_dataset(list(smk.input.records), dataset, smk.output.complete)
    log.info("dataset %s: %d records", dataset, n)


def llm_summary_step(smk) -> None:
    summary = llm_summary(list(smk.input.metas), prices=dict(smk.params.prices))
    write_valid(smk.output.summary, summary, "llm_summary")
    log.debug("%s", summary_line(summary, "all commits of the dataset"))
