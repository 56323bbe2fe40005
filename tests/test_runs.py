"""One run at a time on a folder (and on a machine, through gpu.lock_dir), and a job that ends with its run: real
processes hold the lock and are killed."""

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from isobench import runs
from isobench.errors import IsobenchError

ROOT = Path(__file__).resolve().parents[1]

HOLDER = """
import sys, time
sys.path.insert(0, {root!r})
from isobench import runs
runs.hold([__import__("pathlib").Path(p) for p in sys.argv[1:]])
print(runs.os.environ[runs.RUN_ENV], flush=True)
time.sleep(3600)
"""


def start_holder(tmp_path, *folders) -> subprocess.Popen:
    script = tmp_path / "holder.py"
    script.write_text(HOLDER.format(root=str(ROOT)))
    proc = subprocess.Popen(
        [sys.executable, str(script), *map(str, folders)], stdout=subprocess.PIPE, text=True
    )
    proc.run_env = proc.stdout.readline().strip()
    return proc


def test_a_second_run_is_refused_until_the_first_is_gone(tmp_path):
    project, machine = tmp_path / "results", tmp_path / "gpu-locks"
    first = start_holder(tmp_path, project, machine)
    try:
        with pytest.raises(IsobenchError, match=f"another isobench run is measuring \\(pid {first.pid} "):
            runs.hold([project])
        other_project = tmp_path / "elsewhere" / "results"  # another project, the same machine-wide folder
        with pytest.raises(IsobenchError, match="snakemake --unlock does not change that"):
            runs.hold([other_project, machine])
    finally:
        first.kill()
        first.wait()
    runs.hold([project, machine])  # the kernel released the dead run's locks
    assert os.environ[runs.RUN_ENV].split(":")[1] == str(os.getpid())


def test_a_job_ends_when_its_run_is_gone(tmp_path):
    run = start_holder(tmp_path, tmp_path / "results")
    ended = threading.Event()
    thread = runs.watch_run({runs.RUN_ENV: run.run_env}, on_end=ended.set)
    assert thread is not None and not ended.wait(0.5)  # the run is alive: the job goes on
    os.kill(run.pid, signal.SIGKILL)
    run.wait()
    assert ended.wait(10)
    # a job of a run on another host, or started by hand, watches nothing
    assert runs.watch_run({runs.RUN_ENV: f"elsewhere:{run.pid}:1"}) is None
    assert runs.watch_run({}) is None
