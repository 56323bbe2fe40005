"""The work of each rule, called by the thin scripts in ``scripts/`` with Snakemake's ``snakemake`` object:
``run_step(snakemake, <rule>_step)``. One module per rule file: ``rules/X.smk`` → ``scripts/<rule>.py`` →
``steps/X.py`` (``rules/git.smk``'s worktree rule in ``git``, ``rules/evaluation.smk``'s three rules in
``evaluation``); ``common`` what they share (tests/test_layout.py checks the mirror)."""

from .common import run_step
from .dataset import dataset_step, llm_summary_step
from .env import env_step
from .extraction import extraction_step
from .generator import generator_step
from .git import worktree_step
from .measure import measure_step
from .prompt import prompt_step
from .publish import export_step, publish_step
from .record import record_step
from .report import audit_step, report_figures_step

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
