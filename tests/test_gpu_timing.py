"""How the harness times a test that uses the GPU, checked here with the CUDA runtime's behaviour played by a
stand-in (there is no GPU on this machine; benchmarks/gpu_check.sh runs the same cases on a real one).

The stand-in keeps what matters for timing: work put on a stream finishes later, at the device-wide synchronize;
events recorded on the current stream see none of the work on other streams.
"""

import importlib.util
import sys
import time
import types

import pytest

from isobench.measure import harness


class FakeCuda:
    """torch.cuda as far as the harness uses it: lazy initialization, devices, streams that finish at sync."""

    def __init__(self, devices=2):
        self.initialized = False
        self.count = devices
        self.current = 0
        self.pending = {}  # device -> monotonic time when its queued work (any stream) is done
        self.synced = []
        self.reserved = {}

    def is_initialized(self):
        return self.initialized

    def is_available(self):
        return True

    def device_count(self):
        return self.count

    def current_device(self):
        return self.current

    def memory_reserved(self, device):
        return self.reserved.get(device, 0)

    def get_device_name(self, device):
        return f"Stand-in GPU {device}"

    def get_device_properties(self, device):
        return types.SimpleNamespace(L2_cache_size=1 << 20)

    def launch(self, device, seconds):
        """Queue `seconds` of work on a side stream of `device` and return at once (as a kernel launch does)."""
        self.initialized = True
        self.reserved[device] = 1 << 20
        self.pending[device] = max(self.pending.get(device, 0.0), time.monotonic()) + seconds

    def synchronize(self, device=None):
        device = self.current if device is None else device
        self.synced.append(device)
        wait = self.pending.pop(device, 0.0) - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    class Event:
        def __init__(self, enable_timing=False):
            self.t = None

        def record(self):  # on the current stream, which holds none of the side stream's work
            self.t = time.monotonic()

        def elapsed_time(self, other):
            return (other.t - self.t) * 1e3


@pytest.fixture
def fake_torch(monkeypatch):
    torch = types.SimpleNamespace(
        __version__="stand-in", cuda=FakeCuda(), version=types.SimpleNamespace(cuda="12.4")
    )
    monkeypatch.setitem(sys.modules, "torch", torch)
    return torch


def test_work_on_a_side_stream_is_counted(fake_torch):
    fake_torch.cuda.launch(0, 0.0)  # the test initialized CUDA in setup()
    timer, name = harness.make_timer(fake_torch)
    assert name == "cuda_sync_wall" and timer.devices == [0]
    _, ms = timer(lambda: fake_torch.cuda.launch(0, 0.08))
    assert ms >= 75, ms  # the wall time between the synchronizations holds the side stream's work
    assert timer.events_ms[-1] < 20  # events on the current stream alone would have missed it


def test_every_device_the_test_used_is_synchronized(fake_torch, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    cuda = fake_torch.cuda
    cuda.launch(1, 0.0)  # memory on device 1 (the test's tensor parallel peer), current device 0
    timer, _ = harness.make_timer(fake_torch)
    assert timer.devices == [0, 1]
    cuda.synced.clear()
    _, ms = timer(lambda: cuda.launch(1, 0.05))
    assert sorted(set(cuda.synced)) == [0, 1] and ms >= 45
    assert [d["visible_as"] for d in timer.describe()] == [
        "5",
        "7",
    ]  # named as CUDA_VISIBLE_DEVICES names them


def test_the_test_s_own_device_not_device_0(fake_torch, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    fake_torch.cuda.current = 0
    fake_torch.cuda.launch(0, 0.0)
    env = harness.environment(fake_torch)
    assert env["gpu"] == "Stand-in GPU 0" and env["gpu_visible_as"] == "3" and env["cuda"] == "12.4"


def test_cpu_timer_while_cuda_is_unused(fake_torch):
    timer, name = harness.make_timer(fake_torch)  # torch imported, CUDA never initialized
    assert name == "perf_counter_ns" and timer.describe() is None
    _, ms = timer(lambda: time.sleep(0.01))
    assert ms >= 9 and fake_torch.cuda.synced == []
    env = harness.environment(fake_torch)
    assert env["gpu"] is None and not fake_torch.cuda.initialized  # describing never initializes CUDA


LATE = """
import json

def setup():
    return 3

def experiment(n):
    import torch  # imported late: only the first call brings it in
    torch.cuda.launch(0, 0.03)
    return n

def store_result(r, path):
    json.dump(r, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(a, b):
    assert a == b
"""


def test_a_test_that_imports_torch_late_is_still_synchronized(fake_torch, tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch")

    class Finder:  # `import torch` inside experiment() finds the stand-in, as it would find the real torch
        @staticmethod
        def find_spec(name, path=None, target=None):
            return importlib.util.spec_from_loader(name, Finder) if name == "torch" else None

        @staticmethod
        def create_module(spec):
            return fake_torch

        @staticmethod
        def exec_module(module):
            pass

    monkeypatch.setattr(sys, "meta_path", [Finder, *sys.meta_path])
    module = tmp_path / "t.py"
    module.write_text(LATE)
    out = tmp_path / "r.json"
    args = types.SimpleNamespace(
        module=str(module),
        mode="reference",
        reference=str(tmp_path / "ref"),
        warmup=1,
        warmup_ms=0.0,
        repeat=3,
        flush_l2=False,
        no_cuda=False,
        control=None,
        out=str(out),
    )
    report = harness.run(args)
    assert report["status"] == "ok", report
    assert report["timer"] == "cuda_sync_wall" and min(report["samples_ms"]) >= 25
    assert len(report["events_ms"]) == 3 and max(report["events_ms"]) < 20
    assert report["gpu_devices"][0]["index"] == 0
