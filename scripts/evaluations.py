"""Rule 'evaluations': the work is isobench.steps.evaluation.evaluations_step."""

import sys
from pathlib import Path

# snakemake is injected by the script directive; the package sits next to scripts/.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from isobench.steps.common import run_step  # noqa: E402
from isobench.steps.evaluation import evaluations_step  # noqa: E402

run_step(snakemake, evaluations_step)  # noqa: F821
