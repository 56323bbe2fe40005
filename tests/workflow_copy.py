"""A copy of the workflow (no results), as a user's fresh checkout would have: what the tests and the benchmarks run
snakemake in. Standard library only (benchmarks/gpu_check.py runs it where pytest may be missing)."""

from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_PARTS = (
    "Snakefile",
    "rules",
    "scripts",
    "isobench",
    "prompts",
    "config",
    "demo",
    "envs",
    "profiles",
    "report",
)


def copy_workflow(dest: Path) -> Path:
    """The workflow's parts copied into ``dest`` (created if missing)."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        src = ROOT / part
        if src.is_dir():
            shutil.copytree(src, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / part)
    return dest
