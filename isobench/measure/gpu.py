"""The GPUs of a box: which one a measure job or smoke run holds (its slot), and the state of that device.

Slots. ``snakemake --resources gpu=N`` lets at most N GPU jobs run at once but does not say which GPU each
gets; this module does. The pool is the configured ``gpu.devices``, else the workflow's own
``CUDA_VISIBLE_DEVICES``, else the GPUs ``nvidia-smi`` lists, cut to the run's N (the main process passes it
as ``ISOBENCH_GPU_BUDGET``). A job takes the first device whose lock file (one per device, under
``gpu.lock_dir``) it can ``flock``; it holds the lock while it runs and the kernel frees it when the process
ends, however it ends (``kill -9`` included), so two jobs never share a device and a killed one never keeps
it. The test gets ``CUDA_VISIBLE_DEVICES`` set to its device. Smoke runs draw from the same pool. On a cluster
(``ISOBENCH_GPU_SCHEDULER``, set when Snakemake submits jobs) the scheduler's allocation is the slot.

State. ``nvidia-smi`` before and after a measurement: model, driver, clocks, power limit, temperature, and
the processes on the device (another one there makes a warning). Without a GPU the fields say why not.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from ..settings import from_config, schema_settings

log = logging.getLogger(__name__)

BUDGET_ENV = "ISOBENCH_GPU_BUDGET"  # --resources gpu=N of the run (set by the main process)
SCHEDULER_ENV = "ISOBENCH_GPU_SCHEDULER"  # jobs run under a cluster scheduler, which allocates their GPUs
QUERY = (
    "index",
    "uuid",
    "name",
    "driver_version",
    "pci.bus_id",
    "clocks.sm",
    "clocks.mem",
    "clocks.max.sm",
    "clocks.max.mem",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "pstate",
    "utilization.gpu",
    "memory.used",
    "memory.total",
)
APPS = ("pid", "gpu_uuid", "used_memory", "process_name")


@schema_settings("gpu")
class GpuSettings:
    """Which GPU a job holds (the config's ``gpu`` block; defaults in the schema)."""

    devices: tuple[str, ...] | None  # None: CUDA_VISIBLE_DEVICES, else what nvidia-smi lists
    lock_dir: str | None  # None: a folder per user in the system's temporary folder
    wait_log_s: float  # how often a job waiting for a free GPU says so

    @classmethod
    def from_config(cls, cfg: dict | None) -> GpuSettings:
        cfg = dict(cfg or {})
        if cfg.get("devices") is not None:
            cfg["devices"] = [str(d) for d in cfg["devices"]]
        return from_config(cls, cfg)

    def lock_folder(self) -> Path:
        return (
            Path(self.lock_dir)
            if self.lock_dir
            else Path(tempfile.gettempdir()) / f"isobench-gpu-{os.getuid()}"
        )


def nvidia_smi(*args: str) -> str | None:
    """nvidia-smi's stdout, or None where it is missing or fails."""
    exe = shutil.which("nvidia-smi")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def _visible(environ) -> list[str] | None:
    """CUDA_VISIBLE_DEVICES as a list (None when unset; [] when it hides every device)."""
    value = environ.get("CUDA_VISIBLE_DEVICES")
    if value is None:
        return None
    devices = [d.strip() for d in value.split(",") if d.strip()]
    return [] if devices in (["-1"], ["NoDevFiles"]) else devices


def pool(settings: GpuSettings, environ=None) -> tuple[list[str], str]:
    """The devices jobs may hold, and where the list came from."""
    environ = os.environ if environ is None else environ
    if settings.devices is not None:
        devices, source = list(settings.devices), "gpu.devices"
    elif _visible(environ) is not None:
        devices, source = _visible(environ), "CUDA_VISIBLE_DEVICES"
    else:
        listed = nvidia_smi("--query-gpu=index", "--format=csv,noheader")
        devices = [line.strip() for line in (listed or "").splitlines() if line.strip()]
        source = "nvidia-smi" if listed is not None else "none (no nvidia-smi)"
    budget = environ.get(BUDGET_ENV)
    if budget and budget.isdigit() and int(budget) < len(devices):
        devices, source = devices[: int(budget)], f"{source}, first {budget} (--resources gpu={budget})"
    return devices, source


LOCK_ENV = "ISOBENCH_GPU_LOCK"  # in a test's environment: the slot (lock file) it was started under


def _ours(pid: int, lock: str) -> bool:
    """Whether the process is a test started under the slot ``lock`` by this user (its environment carries the
    sandbox's token and that lock): never another user's, nor another project's (another lock folder)."""
    try:
        if Path(f"/proc/{pid}").stat().st_uid != os.getuid():
            return False
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(v.startswith(b"ISOBENCH_SANDBOX=") for v in env) and f"{LOCK_ENV}={lock}".encode() in env


def sandbox_leftovers(device: str, lock: str) -> list[int]:
    """PIDs of isobench tests of the slot ``lock`` still on ``device`` (nvidia-smi's compute processes)."""
    uuid = (nvidia_smi("--query-gpu=uuid", "--format=csv,noheader", "-i", device) or "").strip()
    if not uuid:
        return []
    apps = _rows(
        nvidia_smi("--query-compute-apps=" + ",".join(APPS), "--format=csv,noheader,nounits") or "", APPS
    )
    pids = [a["pid"] for a in apps if a["gpu_uuid"] == uuid and isinstance(a["pid"], int)]
    return [pid for pid in pids if _ours(pid, lock)]


def clear(device: str, lock: str, wait_s: float = 30.0) -> list[int]:
    """Kill the isobench tests left on ``device`` under the slot ``lock`` (by a job that died without its
    sandbox) and wait, up to ``wait_s``, until the device is rid of them: a slot is free only when nothing of an
    earlier test is left on it. Returns their PIDs (another user's or project's process is left alone; the
    timing file's gpu_state names it)."""
    found = sandbox_leftovers(device, lock)
    for pid in found:
        try:
            os.kill(pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
    deadline = time.monotonic() + wait_s
    while found and sandbox_leftovers(device, lock) and time.monotonic() < deadline:
        time.sleep(0.2)
    if found:
        log.warning("warning: GPU %s: killed %d test process(es) left by an earlier job", device, len(found))
    return found


def _try_lock(path: Path, holder: dict):
    """An open file holding an exclusive flock on ``path``, or None when another process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    os.ftruncate(fd, 0)
    os.write(fd, (json.dumps(holder) + "\n").encode())
    return fd


@contextmanager
def slot(settings: GpuSettings, who: str, environ=None):
    """Hold one GPU for the block: yields the slot (``device``, ``env`` for the test, ``pool``, ``source``,
    ``waited_s``). Without a GPU the slot's device is None and ``reason`` says why; nothing is locked."""
    environ = os.environ if environ is None else environ
    if environ.get(SCHEDULER_ENV):
        devices = _visible(environ)
        reason = None if devices else "the scheduler gave this job no GPU"
        yield {
            "device": ",".join(devices) if devices else None,
            # the scheduler's own value, named so that the sandbox gives the test the GPU's device files
            "env": {"CUDA_VISIBLE_DEVICES": ",".join(devices)} if devices else {},
            "pool": devices or [],
            "source": "scheduler",
            "waited_s": 0.0,
            "reason": reason,
            "host": socket.gethostname(),
        }
        return
    devices, source = pool(settings, environ)
    if not devices:
        yield {
            "device": None,
            "env": {},
            "pool": [],
            "source": source,
            "waited_s": 0.0,
            "reason": f"no GPU on this host ({source})",
            "host": socket.gethostname(),
        }
        return
    folder = settings.lock_folder()
    folder.mkdir(parents=True, exist_ok=True)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "job": who, "since": time.time()}
    started, said = time.monotonic(), time.monotonic()
    while True:
        for device in devices:
            fd = _try_lock(folder / f"gpu-{device}.lock", holder)
            if fd is not None:
                break
        else:
            if time.monotonic() - said >= settings.wait_log_s:
                log.info("waiting for a free GPU (%s all held; %s)", ", ".join(devices), folder)
                said = time.monotonic()
            time.sleep(0.2)
            continue
        break
    waited = round(time.monotonic() - started, 3)
    lock = str(folder / f"gpu-{device}.lock")
    try:
        cleared = clear(device, lock)
        yield {
            "device": device,
            "env": {"CUDA_VISIBLE_DEVICES": device, LOCK_ENV: lock},
            "pool": devices,
            "source": source,
            "waited_s": waited,
            "reason": None,
            "host": socket.gethostname(),
            "lock": lock,
            "cleared": cleared,
        }
    finally:
        clear(device, lock)  # nothing of this job's tests stays on the device once its slot is free
        os.close(fd)  # closing the file releases the lock (as the kernel does when the process dies)


def _number(text: str):
    text = text.strip()
    if not text or text.startswith("[") or text in ("N/A", "Not Supported"):
        return None
    try:
        return float(text) if "." in text else int(text)
    except ValueError:
        return text


def _rows(text: str, names: tuple[str, ...]) -> list[dict]:
    out = []
    for row in csv.reader(io.StringIO(text)):
        if len(row) == len(names):
            out.append({n.replace(".", "_"): _number(v) for n, v in zip(names, row)})
    return out


def snapshot(device: str) -> dict:
    """The device's state now, as nvidia-smi reports it; ``available`` false (and why) where it cannot."""
    text = nvidia_smi("--query-gpu=" + ",".join(QUERY), "--format=csv,noheader,nounits", "-i", device)
    if text is None:
        why = (
            "nvidia-smi not found"
            if not shutil.which("nvidia-smi")
            else f"nvidia-smi failed for device {device}"
        )
        return {"available": False, "reason": why}
    rows = _rows(text, QUERY)
    if not rows:
        return {"available": False, "reason": f"nvidia-smi listed no device {device}"}
    gpu = rows[0]
    apps = _rows(
        nvidia_smi("--query-compute-apps=" + ",".join(APPS), "--format=csv,noheader,nounits") or "", APPS
    )
    gpu["processes"] = [a for a in apps if a["gpu_uuid"] == gpu["uuid"]]
    return {"available": True, "taken_at": time.time(), **gpu}


def state(slot_facts: dict, before: dict | None, after: dict | None) -> tuple[dict, list[str]]:
    """A timing file's ``gpu_state`` from the snapshots around the measurement, and its warnings."""
    if slot_facts.get("device") is None or before is None:
        reason = slot_facts.get("reason") or "no GPU held"
        return {"available": False, "reason": reason, "before": None, "after": None}, []
    if not before.get("available"):
        return {"available": False, "reason": before.get("reason"), "before": None, "after": None}, []
    warnings = []
    for when, snap in (("before", before), ("after", after or {})):
        others = [
            f"pid {p['pid']} ({p.get('process_name')}, {p.get('used_memory')} MiB)"
            for p in snap.get("processes") or []
        ]
        if others:
            warnings.append(
                f"another process was on GPU {slot_facts['device']} {when} the measurement: "
                + "; ".join(others)
            )
    keep = (
        "name",
        "uuid",
        "driver_version",
        "pci_bus_id",
        "clocks_max_sm",
        "clocks_max_mem",
        "power_limit",
        "memory_total",
    )
    return {"available": True, **{k: before.get(k) for k in keep}, "before": before, "after": after}, warnings


def on_gpu(settings: GpuSettings, who: str, work):
    """Run ``work(env)`` holding a GPU slot (``env``: the test's CUDA_VISIBLE_DEVICES), the device's state taken
    before and after; returns (what work returned, {"gpu_slot", "gpu_state", "warnings"} for the timing files)."""
    with slot(settings, who) as held:
        if held["waited_s"] >= 1:
            log.info("GPU %s free after %.1f s", held["device"], held["waited_s"])
        before = snapshot(held["device"]) if held["device"] else None
        result = work(held["env"])
        after = snapshot(held["device"]) if held["device"] and before and before.get("available") else None
    gpu_state, warnings = state(held, before, after)
    facts = {k: v for k, v in held.items() if k != "env"}
    facts["cuda_visible_devices"] = held["env"].get("CUDA_VISIBLE_DEVICES")
    return result, {"gpu_slot": facts, "gpu_state": gpu_state, "warnings": warnings}


def gpu_environment(budget, cluster: bool) -> dict:
    """What the main process tells its jobs: the run's GPU count (``--resources gpu=N``; a Snakemake resource
    value or a number) and whether a cluster scheduler allocates GPUs."""
    value = getattr(budget, "value", budget)
    env = {BUDGET_ENV: str(value) if isinstance(value, int) and not isinstance(value, bool) else ""}
    env[SCHEDULER_ENV] = "1" if cluster else ""
    return env


def start_line(settings: GpuSettings, budget, environ=None) -> str | None:
    """The run's one line about its GPUs (None on a box without any, or under a cluster scheduler)."""
    environ = os.environ if environ is None else environ
    if environ.get(SCHEDULER_ENV):
        return None
    devices, source = pool(settings, environ)
    if not devices:
        return None
    value = getattr(budget, "value", budget)
    line = f"isobench: GPUs: {len(devices)} slot(s), device(s) {', '.join(devices)} ({source})"
    if isinstance(value, int) and value > len(devices):
        line += f"; --resources gpu={value} but {len(devices)} GPU(s): jobs beyond them wait for a free one"
    elif value is None:
        line += f"; no --resources gpu=N: give --resources gpu={len(devices)} to run one measurement per GPU"
    return line
