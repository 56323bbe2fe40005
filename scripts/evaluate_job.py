"""Rule 'evaluate_job': the work is isobench.steps.evaluation.evaluate_job_step."""

import sys
from pathlib import Path

# snakemake is injected by the script directive; the package sits next to scripts/.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from isobench.steps.common import run_step  # noqa: E402
from isobench.steps.evaluation import evaluate_job_step  # noqa: E402

run_step(snakemake, evaluate_job_step)  # noqa: F821
