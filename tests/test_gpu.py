"""GPU slots (one device per measure job or smoke run, freed even when a job is killed) and the GPU-state fields,
on this machine without a GPU: real processes contend for real lock files."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from isobench.measure import gpu
from isobench.measure.gpu import GpuSettings

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import json, sys, time
sys.path.insert(0, {root!r})
from isobench.measure import gpu
settings = gpu.GpuSettings.from_config({{"devices": {devices!r}, "lock_dir": {lock_dir!r}}})
with gpu.slot(settings, "job " + sys.argv[1], environ={{}}) as held:
    start = time.time()
    print("held", held["device"], flush=True)
    time.sleep(float(sys.argv[2]))
    end = time.time()
print(json.dumps({{"job": sys.argv[1], "device": held["device"], "start": start, "end": end,
                  "env": held["env"], "waited": held["waited_s"]}}), flush=True)
"""


def holder(tmp_path, devices):
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(root=str(ROOT), devices=devices, lock_dir=str(tmp_path / "locks")))
    return script


def test_jobs_never_share_a_device(tmp_path):
    script = holder(tmp_path, ["0", "1", "2"])
    procs = [
        subprocess.Popen([sys.executable, str(script), str(i), "0.6"], stdout=subprocess.PIPE, text=True)
        for i in range(7)
    ]
    runs = [json.loads(p.communicate(timeout=120)[0].splitlines()[-1]) for p in procs]
    assert {r["device"] for r in runs} == {"0", "1", "2"}  # every slot was used
    for r in runs:
        lock = str(tmp_path / "locks" / f"gpu-{r['device']}.lock")
        assert r["env"] == {"CUDA_VISIBLE_DEVICES": r["device"], gpu.LOCK_ENV: lock}
    for a in runs:
        for b in runs:
            if a is not b and a["device"] == b["device"]:
                assert a["end"] <= b["start"] or b["end"] <= a["start"], (a, b)  # one at a time on a device
    assert max(r["waited"] for r in runs) > 0.3  # 7 jobs, 3 devices: some had to wait


def test_a_killed_job_frees_its_slot(tmp_path):
    script = holder(tmp_path, ["0"])
    first = subprocess.Popen([sys.executable, str(script), "a", "3600"], stdout=subprocess.PIPE, text=True)
    assert first.stdout.readline().split() == ["held", "0"]
    second = subprocess.Popen([sys.executable, str(script), "b", "0"], stdout=subprocess.PIPE, text=True)
    time.sleep(1.0)
    assert second.poll() is None  # waiting: the only device is held
    first.send_signal(signal.SIGKILL)
    first.wait()
    out, _ = second.communicate(timeout=30)
    run = json.loads(out.splitlines()[-1])
    assert run["device"] == "0" and run["waited"] >= 1.0
    lock = json.loads((tmp_path / "locks" / "gpu-0.lock").read_text())
    assert lock["job"] == "job b" and lock["pid"] == second.pid  # who holds (held) it, for whoever looks


def test_the_pool(monkeypatch):
    settings = GpuSettings.from_config({"devices": [0, 1, 2, 3]})
    assert gpu.pool(settings, {}) == (["0", "1", "2", "3"], "gpu.devices")
    devices, source = gpu.pool(settings, {gpu.BUDGET_ENV: "2"})
    assert devices == ["0", "1"] and "--resources gpu=2" in source  # never more GPUs than the run was given
    assert gpu.pool(GpuSettings(), {"CUDA_VISIBLE_DEVICES": "4,6"}) == (["4", "6"], "CUDA_VISIBLE_DEVICES")
    assert gpu.pool(GpuSettings(), {"CUDA_VISIBLE_DEVICES": "-1"})[0] == []
    assert gpu.gpu_environment(8, False) == {gpu.BUDGET_ENV: "8", gpu.SCHEDULER_ENV: ""}
    assert gpu.gpu_environment(None, True) == {gpu.BUDGET_ENV: "", gpu.SCHEDULER_ENV: "1"}


@pytest.mark.skipif(bool(gpu.shutil.which("nvidia-smi")), reason="this machine has nvidia-smi")
def test_no_gpu_the_fields_say_so(tmp_path):
    with gpu.slot(GpuSettings(lock_dir=str(tmp_path)), "job", environ={}) as held:
        assert held["device"] is None and held["env"] == {} and "no GPU on this host" in held["reason"]
    _, facts = gpu.on_gpu(GpuSettings(lock_dir=str(tmp_path)), "job", lambda env: env)
    assert facts["gpu_slot"]["device"] is None and facts["gpu_slot"]["cuda_visible_devices"] is None
    assert facts["gpu_state"]["available"] is False and "nvidia-smi" in facts["gpu_state"]["reason"]
    assert gpu.snapshot("0") == {"available": False, "reason": "nvidia-smi not found"}
    assert not list(tmp_path.iterdir())  # nothing was locked


def test_under_a_scheduler_its_allocation_is_the_slot(tmp_path):
    environ = {gpu.SCHEDULER_ENV: "1", "CUDA_VISIBLE_DEVICES": "0"}
    with gpu.slot(GpuSettings(lock_dir=str(tmp_path)), "job", environ=environ) as held:
        assert (held["device"], held["source"], held["env"]) == (
            "0",
            "scheduler",
            {"CUDA_VISIBLE_DEVICES": "0"},
        )
    assert not list(tmp_path.iterdir())


# What nvidia-smi prints for these queries on a real box (an H100 here), played by a script of the same name: there is
# no NVIDIA driver on this machine. The parsing and the other-process warning are what is tested.
NVIDIA_SMI = r"""#!/bin/sh
case "$1" in
  --query-gpu=index) printf '0\n1\n' ;;
  --query-gpu=*) printf '%s, %s\n' "0, GPU-5b2e6c1d-8f0a-4a7e-9a55-0c3f1f2b7d11, NVIDIA H100 80GB HBM3, 550.54.15" \
                   "00000000:18:00.0, 1980, 2619, 1980, 2619, 71.23, 700.00, 34, P0, 0, 1, 81559" ;;
  --query-compute-apps=*) if [ -e "$OTHER" ]; then
                            echo "4242, GPU-5b2e6c1d-8f0a-4a7e-9a55-0c3f1f2b7d11, 2048, python3"
                            echo "99, GPU-ffffffff-0000-0000-0000-000000000000, 10, other-gpu"
                          fi ;;
esac
"""


def test_gpu_state_from_nvidia_smi(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(NVIDIA_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("OTHER", str(tmp_path / "other"))
    assert gpu.pool(GpuSettings(), {}) == (["0", "1"], "nvidia-smi")
    settings = GpuSettings(devices=("0",), lock_dir=str(tmp_path / "locks"))

    def work(env):  # another process comes onto the device during the measurement
        (tmp_path / "other").touch()
        return env

    env, facts = gpu.on_gpu(settings, "measure", work)
    assert env == {"CUDA_VISIBLE_DEVICES": "0", gpu.LOCK_ENV: str(tmp_path / "locks" / "gpu-0.lock")}
    state = facts["gpu_state"]
    assert (
        state["available"]
        and state["name"] == "NVIDIA H100 80GB HBM3"
        and state["driver_version"] == "550.54.15"
    )
    assert state["before"]["clocks_sm"] == 1980 and state["before"]["power_limit"] == 700.0
    assert state["before"]["temperature_gpu"] == 34 and state["before"]["processes"] == []
    assert [p["pid"] for p in state["after"]["processes"]] == [4242]  # only the processes on this device
    assert facts["warnings"] == [
        "another process was on GPU 0 after the measurement: pid 4242 (python3, 2048 MiB)"
    ]


def test_the_run_says_which_gpus_it_has():
    settings = GpuSettings(devices=("0", "1", "2", "3"))
    assert gpu.start_line(settings, 8, {}) == (
        "isobench: GPUs: 4 slot(s), device(s) 0, 1, 2, 3 (gpu.devices); "
        "--resources gpu=8 but 4 GPU(s): jobs beyond them wait for a free one"
    )
    assert "give --resources gpu=4" in gpu.start_line(settings, None, {})
    assert gpu.start_line(settings, 4, {}).endswith("(gpu.devices)")
    assert gpu.start_line(GpuSettings(devices=()), 1, {}) is None  # no GPU, nothing to say
    assert gpu.start_line(settings, 4, {gpu.SCHEDULER_ENV: "1"}) is None


LEFTOVERS_SMI = r"""#!/bin/sh
case "$1" in
  --query-gpu=uuid) echo "GPU-5b2e6c1d-8f0a-4a7e-9a55-0c3f1f2b7d11" ;;
  --query-compute-apps=*) for pid in $(cat "$APPS"); do
                            [ -e /proc/$pid ] && echo "$pid, GPU-5b2e6c1d-8f0a-4a7e-9a55-0c3f1f2b7d11, 512, python3"
                          done ;;
esac
"""


def test_a_slot_is_free_only_when_no_test_is_left_on_its_device(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "nvidia-smi").write_text(LEFTOVERS_SMI)
    (bin_dir / "nvidia-smi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    # a test left on GPU 0 by a job that died without its sandbox, and another user's program
    lock = str(tmp_path / "locks" / "gpu-0.lock")
    tagged = {**os.environ, "ISOBENCH_SANDBOX": "0123abcd", gpu.LOCK_ENV: lock}
    left = subprocess.Popen(["sleep", "600"], env=tagged)
    other = subprocess.Popen(["sleep", "600"])
    # another project's test (its own lock folder) on the same device: alive, not ours to kill
    elsewhere = subprocess.Popen(["sleep", "600"], env={**tagged, gpu.LOCK_ENV: "/elsewhere/gpu-0.lock"})
    (tmp_path / "apps").write_text(f"{left.pid} {other.pid} {elsewhere.pid}")
    monkeypatch.setenv("APPS", str(tmp_path / "apps"))
    try:
        settings = GpuSettings(devices=("0",), lock_dir=str(tmp_path / "locks"))
        with gpu.slot(settings, "measure") as held:
            assert held["cleared"] == [left.pid]
            assert left.wait(timeout=10) == -signal.SIGKILL
            assert (
                other.poll() is None and elsewhere.poll() is None
            )  # not ours: left alone (gpu_state names it)
            # the job's own test, still on the device when the job lets the slot go, goes with it
            mine = subprocess.Popen(["sleep", "600"], env=held["env"] | {"ISOBENCH_SANDBOX": "feed"})
            (tmp_path / "apps").write_text(f"{mine.pid} {other.pid}")
        assert mine.wait(timeout=10) == -signal.SIGKILL
    finally:
        for proc in (other, left, elsewhere):
            proc.kill()
