# isobench: performance-optimization commits -> validated benchmark dataset.
# Thin on purpose: configuration, the rule files, and the target. Logic lives in the isobench package.
import os
import re
import sys
import time

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, workflow.basedir)
from isobench.config import check_config_file

# A broken config file: one line naming it, its line and column (Snakemake's own message names neither).
check_config_file("config/config.yaml")


configfile: "config/config.yaml"


# `snakemake --report`: its first page is the dataset at a glance (written by rule report_figures, see
# isobench/front_page.py) once a run has made it; before that, the workflow's description.
FRONT_PAGE = "results/report/workflow.rst"


report: os.path.abspath(FRONT_PAGE) if os.path.exists(FRONT_PAGE) else "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    source="|".join(re.escape(s) for s in config["sources"]),
    commit="[A-Za-z0-9][A-Za-z0-9._-]*",
    sha="[0-9a-f]{40}",
    run="[A-Za-z0-9][A-Za-z0-9_.-]*",
    instance="[A-Za-z0-9_][A-Za-z0-9._-]*",
    model="[A-Za-z0-9_][A-Za-z0-9._-]*",


include: "rules/git.smk"
include: "rules/env.smk"
include: "rules/extraction.smk"
include: "rules/prompt.smk"
include: "rules/generator.smk"
include: "rules/measure.smk"
include: "rules/record.smk"
include: "rules/dataset.smk"
include: "rules/report.smk"
include: "rules/publish.smk"
include: "rules/evaluation.smk"


RUN_STARTED = time.time()


rule all:
    default_target: True
    input:
        DATASET_COMPLETE,  # and config["dataset"] beside it (rules/dataset.smk)
        config["llm_summary"],
        rules.report_figures.output,
        all_artifacts(),
        # ISO-Bench's push_to_hf, or publish.repo_id: the dataset goes to the Hub after the run
        ["results/publish.json"] if config["publish"]["repo_id"] else [],


# Early cutoff for prompt edits: `snakemake prompts` first re-renders every prompt; a prompt whose
# content did not change keeps its checksum, so the full run that follows skips its generator and
# measurement (docs/robustness.md, "Reruns").
rule prompts:
    input:
        per_commit("prompt.txt"),


# One run measures at a time in this folder (and, with gpu.lock_dir, on this machine); its jobs end with it.
onstart:
    run_bounds.claim_run(config, cluster=workflow.non_local_exec)
    # the LLM endpoints asked once before any job (a missing key, a wrong URL: one line, nothing spent)
    llm_check.before_jobs(LLM_NEEDS, workflow.dag_settings.targets)
    # `--forcerun measure` measures again: its jobs learn what was forced (isobench/measure/cache.py)
    os.environ.update(forcerun_environment(workflow.dag_settings.forcerun))


onsuccess:
    end_of_run(RUN_STARTED)


onerror:
    end_of_run(RUN_STARTED)
