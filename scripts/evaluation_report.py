"""Rule 'evaluation_report': the work is isobench.steps.evaluation.evaluation_report_step."""

import sys
from pathlib import Path

# snakemake is injected by the script directive; the package sits next to scripts/.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from isobench.steps.common import run_step  # noqa: E402
from isobench.steps.evaluation import evaluation_report_step  # noqa: E402

run_step(snakemake, evaluation_report_step)  # noqa: F821
