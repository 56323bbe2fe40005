"""Rule 'publish': the work is isobench.steps.publish_step."""

import sys
from pathlib import Path

# snakemake is injected by the script directive; the package sits next to scripts/.
sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from isobench.steps import publish_step, run_step  # noqa: E402

run_step(snakemake, publish_step)  # noqa: F821
