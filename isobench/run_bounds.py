"""What the main Snakemake process does once at a run's start (the LLM work checked, the sandbox's state said, the
GPUs named, the results protected, the run lock taken) and at its end (the run's summary). The plan itself is
isobench/plan.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from . import llm_check, runs
from .config import layered, llm_settings
from .dataset import protect_results
from .errors import IsobenchError
from .llm import LLMSettings
from .measure import cgroups
from .measure.gpu import GpuSettings, gpu_environment
from .measure.gpu import start_line as gpu_start_line
from .measure.runners import Runner
from .measure.sandbox import SandboxSettings, isolation_gaps
from .plan import RESULTS
from .pregenerated import find_pregenerated
from .report import run_summary


def print_run_summary(dataset: str, per_commit, since: float, prices: dict | None = None) -> None:
    """The end of a run, on one screen (isobench.report.run_summary); ``per_commit(name)`` lists a file of
    every planned commit."""
    sys.stderr.write(
        run_summary(
            dataset,
            per_commit("record.json"),
            per_commit("timing_base.json"),
            per_commit("generator.json"),
            since,
            prices,
        )
        + "\n"
    )


def start_of_run(
    config: dict, plans: dict, schema_path: str | Path, gpu_budget=None, cluster: bool = False
) -> list:
    """What the main Snakemake process does once, before any job: a missing model is an error; the sandbox's
    state is said; the jobs learn the run's GPU count (``--resources gpu=N``, ``gpu_budget``) and whether a
    cluster scheduler allocates GPUs (isobench/measure/gpu.py), and the GPUs are named; records that are not what the
    record step wrote are set aside so that this run rebuilds them, and the dataset is the last complete one
    (isobench/dataset.py). Returns the LLM work for ``llm_check.before_jobs`` (Snakemake's onstart)."""
    llm_needs = check_llm_work(config, plans, schema_path)
    for line in isolation_lines(config, schema_path):
        sys.stderr.write(line + "\n")
    os.environ.update(gpu_environment(gpu_budget, cluster))  # local jobs and sbatch inherit it
    line = gpu_start_line(GpuSettings.from_config(config.get("gpu")), gpu_budget)
    if line:
        sys.stderr.write(line + "\n")
    holder = runs.busy(RESULTS)
    if holder:  # another run is writing these results: leave them to it (this one stops at its start)
        sys.stderr.write(
            f"isobench: another isobench run is measuring here ({holder}); results left as they are\n"
        )
        return llm_needs
    protect_results(
        [RESULTS / source / key / "record.json" for source, plan in plans.items() for key in plan.commits],
        Path(config["dataset"]),
    )
    return llm_needs


def claim_run(config: dict, cluster: bool = False) -> None:
    """Snakemake's ``onstart`` (a run that executes jobs): hold the run lock of results/ and of ``gpu.lock_dir``
    (isobench/runs.py), or stop with one line; local jobs learn the run's process, to end with it."""
    folders = [RESULTS]
    lock_dir = GpuSettings.from_config(config.get("gpu")).lock_dir
    if lock_dir:
        folders.append(Path(lock_dir))
    try:
        runs.hold(folders)
    except (IsobenchError, OSError) as exc:
        raise SystemExit(f"isobench: {exc}") from None
    if cluster:  # jobs run elsewhere, under the scheduler's own control
        os.environ.pop(runs.RUN_ENV, None)


def check_llm_work(config: dict, plans: dict, schema_path: str | Path) -> list:
    """Before any work: commits that need an LLM-generated test need a model (one line naming the field); a
    generation that got no reply last time is asked again. Returns what the run's start asks the endpoints about
    (isobench/llm_check.py, ``before_jobs``): (source, its LLM settings, the commits still to generate)."""
    needs = []
    for name, plan in plans.items():
        folder = config["sources"][name].get("generators")
        need = [
            c.key
            for c in plan.commits.values()
            if c.head and not c.problem and not find_pregenerated(folder, c.head)
        ]
        cfg = llm_settings(config, name, schema_path)
        if need and not cfg.get("model"):
            raise IsobenchError(
                f"config: field llm.model: not set, and {len(need)} commit(s) of source {name} have no "
                f"pre-generated script (e.g. {need[0][:12]}); set llm.model (and the provider's key), "
                f"or add <sha>_test_case_generator.py files to sources.{name}.generators"
            )
        again = llm_check.reset_transient(RESULTS / name / key for key in need)
        if again:
            sys.stderr.write(
                f"isobench: source {name}: {len(again)} commit(s) whose generation got no reply from the LLM API "
                f"are asked again: {', '.join(k[:12] for k in again)}\n"
            )
        todo = [key for key in need if not (RESULTS / name / key / "generator.json").exists()]
        needs.append((name, LLMSettings.from_config(cfg), todo))
    return needs


def isolation_lines(config: dict, schema_path: str | Path) -> list[str]:
    """One line per source whose tests this host cannot isolate: refused (the default), or run without it."""
    lines = []
    for name in config["sources"]:
        sandbox = SandboxSettings.from_config(layered(config, name, schema_path, "sandbox"))
        gaps = isolation_gaps(sandbox, Runner.from_config(layered(config, name, schema_path, "runner")))
        if gaps and sandbox.require_isolation:
            lines.append(
                f"isobench: sandbox: source {name}: isolation unavailable on this host ({'; '.join(gaps)}): "
                "its tests will not run (isolation_unavailable); set sandbox.require_isolation: false to "
                "run them anyway"
            )
        elif gaps:
            lines.append(
                f"isobench: warning: sandbox: source {name}: tests run WITHOUT isolation ({'; '.join(gaps)}) "
                "because sandbox.require_isolation is false"
            )
    limit_gap = cgroups.gap()
    if limit_gap and any(
        not Runner.from_config(layered(config, n, schema_path, "runner")).impl.container
        for n in config["sources"]
    ):
        lines.append(f"isobench: warning: sandbox: {limit_gap}")
    return lines
