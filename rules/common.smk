# Helpers shared by the .smk files: config checks, the per-run plan, input functions.
# The isobench package is imported from the workflow folder (steps import it the same way, see scripts/).
import sys
from pathlib import Path

from snakemake.exceptions import WorkflowError

sys.path.insert(0, workflow.basedir)

from isobench import config as ic
from isobench import console
from isobench import llm_check
from isobench import plan as ip
from isobench import run_bounds
from isobench.dataset import complete_copy
from isobench.errors import IsobenchError
from isobench.evaluate import plan as evaluation_plan
from isobench.evaluate.report import print_boards
from isobench.experiments import adopt as adopt_experiments
from isobench.measure.cache import forcerun_environment
from isobench.measure.job import Settings as MeasureSettings
from isobench.pregenerated import find_pregenerated

SCHEMA = ic.SCHEMA

try:
    # ISO-Bench's experiments.yaml (--configfile): its keys become a source, the dataset and publish settings
    for line in adopt_experiments(config, workflow.overwrite_configfiles):
        if workflow.is_main_process:
            sys.stderr.write(f"isobench: {line}\n")
    ic.prepare_config(config, SCHEMA)
except IsobenchError as exc:
    ic.fail(str(exc))

try:
    PLAN = ip.plan_sources(config, prepare=workflow.is_main_process)
except IsobenchError as exc:
    ic.fail(str(exc))
except OSError as exc:  # e.g. a read-only results/: one line, never a traceback
    ic.fail(
        f"{exc.filename or 'results'}: {exc.strerror}; check the folder's permissions and free space"
    )

LLM_NEEDS = (
    []
)  # the LLM work this run may do: its endpoints are asked at onstart (isobench/llm_check.py)
if workflow.is_main_process:
    # the jobs' lines printed as each ends, above the progress view; their details (worktrees, prompts, medians)
    # only with --verbose, in their log files always (isobench/console.py)
    console.start(
        bool(getattr(workflow.output_settings, "verbose", False)),
        getattr(workflow, "logger_manager", None),
    )
    try:
        LLM_NEEDS = run_bounds.start_of_run(
            config,
            PLAN,
            SCHEMA,
            gpu_budget=workflow.global_resources.get("gpu"),
            cluster=workflow.non_local_exec,
        )
    except IsobenchError as exc:
        ic.fail(str(exc))

COMMIT_DIR = "results/{source}/{commit}"
# The copy of the last complete dataset: what the dataset rule makes, and what later rules read.
DATASET_COMPLETE = complete_copy(config["dataset"])


def commit_plan(wildcards):
    return PLAN[wildcards.source].commits[wildcards.commit]


def all_records():
    return per_commit("record.json")


def per_commit(name):
    return [
        f"results/{source}/{key}/{name}"
        for source, plan in PLAN.items()
        for key in plan.commits
    ]


def all_artifacts():
    """Every per-commit artifact: a deleted one is made again (and what depends on it)."""
    names = (
        "extraction.json",
        "prompt.txt",
        "generator.py",
        "llm_transcript.json",
        "record.json",
    )
    names += tuple(f"timing_{r}.json" for r in ("base", "head", "main"))
    return [path for name in names for path in per_commit(name)]


def extraction_file(wildcards):
    path = commit_plan(wildcards).extraction_file
    return [path] if path else []


def template_of(wildcards):
    return ic.template_for(config, wildcards.source)


def revision_shas(wildcards):
    """The base, head and main SHAs of a commit (only those that resolved)."""
    plan = commit_plan(wildcards)
    shas = {
        "base": plan.base,
        "head": plan.head,
        "main": PLAN[wildcards.source].main_sha,
    }
    return {name: sha for name, sha in shas.items() if sha}


def worktree_markers(wildcards):
    """Markers of the base, head and main worktrees and of their environments."""
    src = wildcards.source
    out = {}
    for name, sha in revision_shas(wildcards).items():
        out[f"worktree_{name}"] = f"results/{src}/_worktrees/{sha}.json"
        out[f"env_{name}"] = f"results/{src}/_envs/{sha}.json"
    return out


def measure_threads(wildcards):
    """A quiet machine: with measure.exclusive a local measure job takes every core Snakemake has. On a
    cluster the job asks for a whole node instead (measure_slurm_extra); its CPU count comes from the
    profile (`set-threads`), since Snakemake's --cores means nothing there."""
    return exclusive_threads(measure_exclusive(wildcards))


def exclusive_threads(exclusive: bool) -> int:
    """Every core Snakemake has for a job that must run alone (measure.exclusive), locally; 1 otherwise."""
    if not exclusive or workflow.non_local_exec:
        return 1
    try:
        return workflow.cores
    except WorkflowError:
        return 1  # no --cores given (a job step on a cluster node reads the workflow again)


def measure_slurm_extra(wildcards):
    """sbatch options of a measure job (ignored outside SLURM): a node of its own with measure.exclusive."""
    return "--exclusive" if measure_exclusive(wildcards) else ""


def measure_settings(wildcards):
    return ic.measure_settings(config, wildcards.source, SCHEMA)


def measure_exclusive(wildcards):
    """measure.exclusive of the source: nothing else runs beside its measure jobs."""
    return MeasureSettings.from_config(measure_settings(wildcards)).exclusive


def pregenerated_of(wildcards):
    plan = commit_plan(wildcards)
    folder = config["sources"][wildcards.source].get("generators")
    return find_pregenerated(folder, plan.head) if plan.head else None


def llm_params(wildcards):
    """The LLM settings that shape a commit's generated test (None with a pre-generated script).

    Only these are params (a change reruns the job): endpoint, timeout, retries and cache location
    are read by the step from the config, so changing them re-measures nothing."""
    if pregenerated_of(wildcards):
        return None
    return ic.llm_shaping(ic.llm_settings(config, wildcards.source, SCHEMA))


def generator_inputs(wildcards):
    """A pre-generated script, when the source has one, is the only input: editing the prompt template
    then leaves generator.py, and so every measurement, untouched. Without one the prompt, the system
    and repair prompts, and (for the smoke run) head's worktree are the inputs.
    """
    found = pregenerated_of(wildcards)
    if found:
        return {"pregenerated": str(found)}
    cfg = ic.llm_settings(config, wildcards.source, SCHEMA)
    inputs = {
        "prompt": f"results/{wildcards.source}/{wildcards.commit}/prompt.txt",
        "prompt_meta": f"results/{wildcards.source}/{wildcards.commit}/prompt.json",
        "system_prompt": cfg["system_prompt"],
        "repair_prompt": cfg["repair_prompt"],
    }
    head = commit_plan(wildcards).head
    if cfg["smoke_run"] and head:
        inputs["worktree_head"] = f"results/{wildcards.source}/_worktrees/{head}.json"
        inputs["env_head"] = f"results/{wildcards.source}/_envs/{head}.json"
    return inputs


def sandbox_params(wildcards):
    """Sandbox and runner settings of a source (the smoke run and the measurement use both)."""
    return {
        "sandbox": ic.layered(config, wildcards.source, SCHEMA, "sandbox"),
        "runner": ic.layered(config, wildcards.source, SCHEMA, "runner"),
    }


# Evaluation runs (rules/evaluation.smk; docs/evaluation.md): planned once per run in the main process, like the sources.
EVAL_ROOT = evaluation_plan.ROOT
EVAL_JOB = f"{EVAL_ROOT}/{{run}}/{{instance}}/{{model}}"

EVAL_SOURCES = {
    name: {
        "repo": plan.repo,
        "repo_name": config["sources"][name].get("repo_name"),
        "mirror": str(plan.mirror),
    }
    for name, plan in PLAN.items()
}
try:
    EVALUATIONS, UNPLANNED = evaluation_plan.plan_evaluations(
        config, EVAL_SOURCES, Path.cwd(), SCHEMA
    )
except IsobenchError as exc:
    ic.fail(str(exc))
if workflow.is_main_process:
    evaluation_plan.write_plan(EVALUATIONS)
    evaluation_plan.print_plan(EVALUATIONS, UNPLANNED)


def evaluation_block(key):
    """The job's ``key`` block (sandbox, runner, env): its source's (isobench/evaluate/plan.py: source_of)."""

    def block(wc):
        source = evaluation_plan.source_of(
            EVALUATIONS, wc.run, wc.instance, wc.model, EVAL_SOURCES
        )
        return ic.layered(config, source, SCHEMA, key)

    return block


def evaluation_exclusive(wildcards=None):
    """measure.exclusive (the config's top-level block): nothing else runs beside an evaluation job either."""
    return MeasureSettings.from_config(config.get("measure") or {}).exclusive


def evaluation_threads(wildcards):
    return exclusive_threads(evaluation_exclusive())


def evaluation_targets(wildcards):
    """What `snakemake evaluate` makes: each run's report and every job's file (a deleted one is made again:
    Snakemake does not look behind an up-to-date report). A run that could not be planned stops it here, when
    the target is asked for, never a dataset run."""
    if UNPLANNED:
        ic.fail(UNPLANNED[0])
    return [f"{EVAL_ROOT}/{run}/report" for run in EVALUATIONS] + [
        path for run in EVALUATIONS for path in evaluation_jobs(run)
    ]


def evaluation_jobs(run_id):
    return [f"{folder}/job.json" for folder in EVALUATIONS[run_id].jobs]


def end_of_run(started):
    """`snakemake evaluate` ends with each evaluation run's leaderboard; any other run with the dataset's summary."""
    if set(workflow.dag_settings.targets or ()) == {"evaluate"}:
        print_boards(EVALUATIONS)
    else:
        run_bounds.print_run_summary(
            config["dataset"], per_commit, started, config["llm_prices"]
        )
