"""The workflow on a real one-node SLURM cluster (tests/slurm/start.sh), and the sbatch lines our profile makes.

The cluster test is skipped, with the reason, only when start.sh says a cluster cannot be started here (exit
77: no root, no apt-get, SLURM's ports taken); any other failure to start fails it. Every snakemake run is
killed, with its whole process group, past a hard time limit: a broken status check makes Snakemake wait
forever (../shared/notes/local-slurm.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, copy_workflow, demo_subset, snakemake_log, without_timings

from isobench.dataset import read_dataset

pytestmark = pytest.mark.slow
CLUSTER_DIR = Path(tempfile.gettempdir()) / "isobench-slurm-tests"
# What a one-node test cluster (2 CPUs, a few GB) needs on top of profiles/slurm: the site values a user
# would set for their own cluster, and a short wait before the first status check.
SITE = [
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--seconds-between-status-checks",  # a one-node test cluster: ask often (the default, 10 s, idles minutes)
    "1",
    "--set-threads",
    "measure=2",
    "env=1",
    "evaluate_job=2",
    "--set-resources",
    "measure:mem_mb=2000",
    "env:mem_mb=1000",
    "evaluate_job:mem_mb=2000",
    "--local-cores",
    "2",
]
TIMEOUT_S = 900


@pytest.fixture(scope="module")
def cluster():
    """PATH entry holding the cluster's client wrappers; the cluster is stopped afterwards."""
    start = subprocess.run(
        [str(ROOT / "tests" / "slurm" / "start.sh"), str(CLUSTER_DIR)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    reason = (start.stderr.strip().splitlines() or ["start.sh failed without a message"])[-1]
    if start.returncode == 77:  # this machine cannot run one (no root, no apt-get, SLURM's ports taken)
        print(f"SLURM test skipped: {reason}", file=sys.stderr)
        pytest.skip(f"a SLURM cluster cannot be started here: {reason}")
    assert start.returncode == 0, f"start.sh failed: {start.stderr[-3000:]}"
    yield start.stdout.strip().splitlines()[-1]
    subprocess.run([str(ROOT / "tests" / "slurm" / "stop.sh"), str(CLUSTER_DIR)], timeout=120)


def bounded(cmd: list[str], cwd: Path, env: dict, limit_s: int) -> subprocess.CompletedProcess:
    """``cmd`` in a process group of its own, killed whole after ``limit_s``: a SLURM status check that never
    sees a job end makes Snakemake wait forever, and its children would keep the pipes open."""
    proc = subprocess.Popen(
        cmd,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=limit_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"killed after {limit_s} s: {' '.join(cmd[:6])}: {err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def clean_env(bindir: str) -> dict:
    """This environment without SLURM's job variables (pytest may itself run inside a SLURM job), with
    ``bindir`` and this Python first on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    env["PATH"] = f"{bindir}:{Path(sys.executable).parent}:{os.environ['PATH']}"
    return env


def on_slurm(work: Path, bindir: str, *args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakemake", "--profile", "profiles/slurm", *SITE, *args]
    return bounded(cmd, work, clean_env(bindir), TIMEOUT_S)


def scontrol_job(bindir: str, job_id: str) -> dict:
    out = subprocess.run(
        [f"{bindir}/scontrol", "show", "job", "--oneliner", job_id],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    return dict(item.split("=", 1) for item in out.split() if "=" in item)


def test_demo_on_slurm_matches_a_local_run(cluster, demo, demo_run, tmp_path):
    work = copy_workflow(tmp_path)
    # two of the demo's commits (each its own SLURM job), compared with the local run of all seven
    keys = ["primes", "histogram"]
    shutil.rmtree(
        work / "demo"
    )  # the demo's folders holding those two only: the same paths, the same records
    demo_subset(work, demo[1], "demo", keys, keys)
    proc = on_slurm(work, cluster)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = read_dataset(work / "results" / "dataset.jsonl")
    local = read_dataset(demo_run[0].with_name(demo_run[0].name + ".first-dataset.jsonl"))
    assert len(rows) == 2 and len(local) == 7
    by_head = {r["head_commit"]: r for r in local}
    for row in rows:
        assert without_timings(row, work) == without_timings(by_head[row["head_commit"]], demo_run[0])
        # the three revisions of a commit were measured by one SLURM job, on one node, with one GPU
        ran_on = row["provenance"]["measurement"]["ran_on"]
        slurm = ran_on["slurm"]
        assert slurm and slurm["node"] and slurm["gpus"] is not None, ran_on
        for name in ("base", "head", "main"):
            timing = json.loads(
                (work / "results" / "demo" / row["head_commit"] / f"timing_{name}.json").read_text()
            )
            assert timing["measurement"]["ran_on"] == ran_on
        job = scontrol_job(cluster, slurm["job_id"])
        assert job["JobState"] == "COMPLETED", job
        assert job["Comment"] == f"rule_measure_wildcards_demo_{row['head_commit']}"
        assert "gpu:1" in job["TresPerJob"] and job["OverSubscribe"] == "NO", job  # --gpus=1 --exclusive
        log = (
            work
            / ".snakemake"
            / "slurm_logs"
            / "rule_measure"
            / f"demo_{row['head_commit']}"
            / f"{slurm['job_id']}.log"
        )
        assert log.exists(), log
    measured = {r["provenance"]["measurement"]["ran_on"]["slurm"]["job_id"] for r in rows}
    assert len(measured) == 2
    # only measurements went to SLURM: everything else ran where snakemake was started
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", proc.stdout + proc.stderr)
    assert sorted(submitted) == sorted(measured)

    again = on_slurm(work, cluster)  # nothing to do, and no job submitted
    assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr
    assert "submitted with SLURM" not in again.stdout + again.stderr

    # an evaluation on the cluster: its (instance, model) job is a SLURM job like a measurement
    record = next(r for r in rows if r["head_commit"] == demo[1]["primes"])
    line = {
        "instance_id": record["instance_id"],
        "model_name_or_path": "gold",
        "model_patch": record["patch"],
    }
    (work / "preds.jsonl").write_text(json.dumps(line) + "\n")
    (work / "eval.yaml").write_text(
        "evaluations:\n  onslurm:\n    predictions: preds.jsonl\n    calibration: false\n"
        "    measure: {rounds: 2, max_rounds: 2}\n"
    )
    proc = on_slurm(work, cluster, "evaluate", "--configfile=eval.yaml")
    assert proc.returncode == 0, proc.stderr[-4000:]
    run = work / "results" / "evaluations" / "onslurm"
    (row,) = [json.loads(x) for x in (run / "evaluations.jsonl").read_text().splitlines()]
    assert row["status"] == "evaluated" and row["timed"], row
    (job_file,) = run.glob("*/*/job.json")
    slurm = json.loads(job_file.read_text())["measurement"]["ran_on"]["slurm"]
    job = scontrol_job(cluster, slurm["job_id"])
    assert job["JobState"] == "COMPLETED" and job["Comment"].startswith("rule_evaluate_job_wildcards_"), job
    assert "gpu:1" in job["TresPerJob"], job
    submitted = re.findall(r"Job \d+ has been submitted with SLURM jobid (\d+)", proc.stdout + proc.stderr)
    assert submitted == [slurm["job_id"]]  # the rows and the report were made here


# --- the sbatch lines our profile makes, written by the plugin itself (no cluster needed) ----------------

FAKES = {  # a cluster that lists one default partition, knows no jobs and refuses every submission
    "sbatch": 'echo "no cluster here: this sbatch only refuses" >&2; exit 1',
    "sinfo": 'printf "PARTITION\\ndebug*\\n"',
    "squeue": "exit 0",
    "sacct": "exit 1",
    "sacctmgr": "echo lab",  # the user's accounts
    "sshare": "exit 1",
}
ONE_COMMIT = (
    "results/demo/4c442c6e53dfef740b17f99fa3d40736e33f7800/timing_base.json"  # the demo's histogram commit
)


def sbatch_calls(work: Path, *args: str) -> tuple[dict[str, str], str]:
    """{rule: sbatch line} of a run with `--profile profiles/slurm` where `sbatch` refuses every job: the
    plugin reports each refused call in full. The job name (a run UUID), log path and wrapped command are
    cut; the rest is the plugin's command line for that rule's job."""
    fake = work / "fake-bin"
    fake.mkdir(exist_ok=True)
    for name, body in FAKES.items():
        (fake / name).write_text(f"#!/bin/sh\n{body}\n")
        (fake / name).chmod(0o755)
    proc = bounded(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--profile",
            "profiles/slurm",
            "--retries",
            "0",
            "--slurm-init-seconds-before-status-checks",
            "1",
            ONE_COMMIT,
            *args,
        ],
        work,
        clean_env(str(fake)),
        600,
    )
    assert proc.returncode != 0, proc.stderr[-3000:]
    calls = {}
    for line in re.findall(r"^\s*(sbatch --parsable .*)$", proc.stdout + proc.stderr, re.M):
        line = line.split(" --wrap=")[0]
        line = re.sub(r"--job-name \S+", "--job-name RUN", line)
        line = re.sub(r"--output \S+", "--output LOG", line)
        line = re.sub(r"_wildcards_\S+", "", line)
        line = re.sub(r" -D \S+", " -D WORKDIR", line)
        calls[re.search(r"--comment rule_(\w+)", line).group(1)] = re.sub(r"\s+", " ", line)
    return calls, proc.stdout + proc.stderr + snakemake_log(proc)  # the log: every job's rule


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("slurm-plan"))
    return sbatch_calls(work, "--config", 'cluster_rules=["env"]')


def test_measurement_job_sbatch_line(tmp_path):
    calls, log = sbatch_calls(copy_workflow(tmp_path))
    assert set(calls) == {"measure"}, log[-3000:]  # everything else ran here, the measurements were refused
    assert calls["measure"] == (
        "sbatch --parsable --job-name RUN --output LOG --export=ALL --comment rule_measure -p debug -t 240 --mem 64000 "
        "--cpus-per-task=8 --exclusive -D WORKDIR --gpus=1"
    )
    for rule in ("extraction", "generator", "worktree", "env"):
        assert f"localrule {rule}:" in log, rule
    # the refusal is said on the console the run draws (its progress view shows no failed job's message)
    assert "isobench: job measure failed: SLURM sbatch failed. " in log


def test_cpu_job_sbatch_line(refused):
    calls, log = refused
    assert set(calls) == {"env"}, log[-3000:]  # `cluster_rules: [env]`: environments built on the cluster
    assert calls["env"] == (
        "sbatch --parsable --job-name RUN --output LOG --export=ALL --comment rule_env -p debug -t 120 --mem 8000 "
        "--ntasks=1 --cpus-per-task=4 -D WORKDIR"
    )


def test_gpu_model_partition_and_shared_nodes(tmp_path):
    """`gpu_model` asks for a GPU model, a partition and account are passed on, `measure.exclusive: false`
    shares the node."""
    work = copy_workflow(tmp_path)
    (work / "shared.yaml").write_text("measure:\n  exclusive: false\n")
    calls, log = sbatch_calls(
        work,
        "--default-resources",
        "slurm_partition=a100q",
        "slurm_account=lab",
        "runtime=30",
        "mem_mb=1000",
        "--set-resources",
        "measure:gpu_model=a100",
        "measure:mem_mb=64000",
        "measure:runtime=240",
        "--configfile",
        "config/config.yaml",
        "shared.yaml",
    )
    assert "measure" in calls, log[-3000:]
    assert calls["measure"] == (
        "sbatch --parsable --job-name RUN --output LOG --export=ALL --comment rule_measure -A lab -p a100q -t 240 "
        "--mem 64000 --cpus-per-task=8 -D WORKDIR --gpus=a100:1"
    ), log[-3000:]
