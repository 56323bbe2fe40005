"""Rule 'worktree': the work is isobench.steps.worktree_step."""

import sys
from pathlib import Path

# snakemake is injected by the script directive; the package sits next to scripts/.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from isobench.steps import run_step, worktree_step  # noqa: E402

run_step(snakemake, worktree_step)  # noqa: F821
