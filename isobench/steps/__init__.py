"""The work of each rule, called by the thin scripts in ``scripts/`` with Snakemake's ``snakemake`` object:
``run_step(snakemake, <rule>_step)``. ``inputs`` holds the steps before and after the measurement,
``generation`` the generator rule, ``measurement`` the measure rule, ``publish`` the export and publish rules;
``common`` what they share."""

from .common import run_step
from .generation import generator_step
from .inputs import (
    audit_step,
    dataset_step,
    env_step,
    extraction_step,
    llm_summary_step,
    prompt_step,
    record_step,
    report_figures_step,
    worktree_step,
)
from .measurement import measure_step
from .publish import export_step, publish_step

__all__ = [
    "audit_step",
    "dataset_step",
    "env_step",
    "export_step",
    "extraction_step",
    "generator_step",
    "llm_summary_step",
    "measure_step",
    "publish_step",
    "prompt_step",
    "record_step",
    "report_figures_step",
    "run_step",
    "worktree_step",
]
