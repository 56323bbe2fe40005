"""Facts about the machine a measurement runs on, for the records and the measurement cache's key: the CPU
model and GPU names that make timings comparable (``machine``), and where a job ran (``ran_on``: the host and,
under SLURM, the job, node, partition and GPUs). The timed process reports its own environment
(``harness.environment``: standard library only, since any revision's Python runs it); the state of a GPU
during a measurement is ``gpu.snapshot``."""

from __future__ import annotations

import os
import socket
from functools import cache

from .gpu import nvidia_smi
from .harness import cpu_model


@cache
def machine() -> dict:
    """What makes timings of one machine comparable with another's: CPU model and GPU names."""
    out = nvidia_smi("--query-gpu=name", "--format=csv,noheader") or ""
    gpus = [line.strip() for line in out.splitlines() if line.strip()]
    return {"cpu": cpu_model(), "gpus": gpus}


def ran_on() -> dict:
    """Where this measurement job runs, for the audit trail: the host and, under SLURM, the job, node,
    partition and the GPUs it was given (what `scontrol show job` would tell while the job is known)."""
    env = os.environ
    out: dict = {"host": socket.gethostname(), "slurm": None}
    if env.get("SLURM_JOB_ID"):
        out["slurm"] = {
            "job_id": env["SLURM_JOB_ID"],
            "node": env.get("SLURMD_NODENAME"),
            "partition": env.get("SLURM_JOB_PARTITION"),
            "gpus": env.get("SLURM_JOB_GPUS") or env.get("CUDA_VISIBLE_DEVICES"),
        }
    return out
