"""Facts about the machine a measurement runs on, for the records and the measurement cache's key: the CPU
model and GPU names that make timings comparable (``machine``), where a job ran (``ran_on``: the host and,
under SLURM, the job, node, partition and GPUs), and the memory free now (``available_memory_mb``,
``gpu_free_mb``: whether three processes fit side by side). The timed process reports its own environment
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


def available_memory_mb(meminfo: str = "/proc/meminfo") -> float | None:
    """MemAvailable: what new processes can use without swapping."""
    try:
        with open(meminfo) as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_free_mb(device: int | None) -> float | None:
    """Free memory of the GPU the test used (``device`` as the test saw it, under CUDA_VISIBLE_DEVICES)."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    index = visible[device] if visible and device is not None and device < len(visible) else str(device or 0)
    out = nvidia_smi("--query-gpu=memory.free", "--format=csv,noheader,nounits", "-i", index) or ""
    try:
        return float(out.strip().splitlines()[0])
    except (ValueError, IndexError):
        return None
