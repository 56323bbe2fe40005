"""The GPU check (run by benchmarks/gpu_check.sh on a box with NVIDIA GPUs and a CUDA build of torch).

Cases, each printing its figures:
1. timing: a test whose work sits on a side stream (the current stream's events see almost none of it) and
   the same work on the current stream: the harness's sample (wall time between device-wide
   synchronizations) against the CUDA events, side by side; then the same test with CUDA_VISIBLE_DEVICES
   naming the last GPU (the harness must synchronize and name that device, not device 0).
2. slots (two GPUs or more): two measure jobs started together, each holding a GPU slot: the devices they
   got, whether their times overlapped, the GPU state recorded before and after (nvidia-smi).
3. engine: a test that serves a model from a read-only model cache over HTTP on 127.0.0.1 inside the
   sandbox (and torch.compile's kernels), called by a client: it must reach its own server and not the
   host's, must not see HF_TOKEN, and its compile caches must persist across rounds.
4. workflow: the demo's torch commit through snakemake with --resources gpu=<GPUs> (when snakemake is here).
GPU_CHECK_CPU=1 runs what can run without a GPU (to check this script itself).
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from workflow_copy import copy_workflow  # noqa: E402

from isobench.measure import gpu, harness  # noqa: E402
from isobench.measure.job import Revision, Settings  # noqa: E402
from isobench.measure.rounds import measure_commit  # noqa: E402
from isobench.measure.sandbox import SandboxSettings  # noqa: E402

CPU = os.environ.get("GPU_CHECK_CPU") == "1"
DEVICE = "cpu" if CPU else "cuda"
FUNCS = """
def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(reference, current):
    assert reference == current, (reference, current)
"""
STREAMS = (
    """import json
import torch

def setup():
    a = torch.randn(SIZE, SIZE, device="DEVICE")
    return a, (torch.cuda.Stream() if "DEVICE" == "cuda" else None)

def experiment(data):
    a, side = data
    if SIDE and side is not None:
        with torch.cuda.stream(side):  # nothing on the current stream waits for this work
            for _ in range(4):
                b = a @ a
    else:
        for _ in range(4):
            b = a @ a
    return list(a.shape)
"""
    + FUNCS
)


def median(values):
    return round(statistics.median(values), 3) if values else None


def harness_run(tmp: Path, text: str, env: dict | None = None, repeat: int = 20) -> dict:
    module = tmp / f"t{time.monotonic_ns()}.py"
    module.write_text(text)
    out = tmp / "report.json"
    cmd = [
        sys.executable,
        harness.__file__,
        "--module",
        str(module),
        "--mode",
        "time",
        "--warmup",
        "3",
        "--warmup-ms",
        "0",
        "--repeat",
        str(repeat),
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, env={**os.environ, **(env or {})}, timeout=300)
    return json.loads(out.read_text())


def case_timing(tmp: Path, gpus: int) -> None:
    print("== 1. timing: work on a side stream vs the current stream (median ms of 20 calls)")
    size = 256 if CPU else 8192
    for side in (True, False):
        text = STREAMS.replace("SIZE", str(size)).replace("DEVICE", DEVICE).replace("SIDE", str(side))
        rep = harness_run(tmp, text)
        assert rep["status"] == "ok", rep
        print(
            f"   {'side stream   ' if side else 'current stream'}  timer={rep['timer']}  sample (sync wall) "
            f"{median(rep['samples_ms'])}  events {median(rep['events_ms'])}  devices {rep['gpu_devices']}"
        )
    if gpus >= 2:
        last = str(gpus - 1)
        rep = harness_run(
            tmp,
            STREAMS.replace("SIZE", str(size)).replace("DEVICE", DEVICE).replace("SIDE", "True"),
            {"CUDA_VISIBLE_DEVICES": last},
        )
        print(
            f"   CUDA_VISIBLE_DEVICES={last}: devices {rep['gpu_devices']}  gpu {rep['env'].get('gpu')} "
            f"visible_as {rep['env'].get('gpu_visible_as')}  sample {median(rep['samples_ms'])} events "
            f"{median(rep['events_ms'])}"
        )
    else:
        print("   one GPU: the CUDA_VISIBLE_DEVICES case needs two")


def revisions(tmp: Path) -> list[Revision]:
    revs = []
    for i, name in enumerate(("base", "head", "main")):
        (tmp / "wt" / name).mkdir(parents=True, exist_ok=True)
        revs.append(Revision(name, str(i) * 40, tmp / "wt" / name))
    return revs


def summary(t: dict) -> str:
    return (
        f"{t['revision']}: {t['status']} {t['category'] or ''} timer={t['timer']} median "
        f"{(t['stats'] or {}).get('median')} ms  events {median(t.get('events_ms') or [])} ms  wall {t['wall_s']} s"
    )


def slot_job(tmp: Path, index: int) -> None:
    """One of the two measure jobs of case 2 (run as its own process)."""
    test = tmp / f"slot{index}.py"
    test.write_text(STREAMS.replace("SIZE", "8192").replace("DEVICE", DEVICE).replace("SIDE", "False"))
    settings = Settings(
        rounds=4, max_rounds=4, warmup=3, warmup_ms=500, repeat=20, timeout_s=120, interleave="sequential"
    )
    start = time.time()
    timings, facts = gpu.on_gpu(
        gpu.GpuSettings(lock_dir=str(tmp / "locks")),
        f"check {index}",
        lambda env: measure_commit(
            test, revisions(tmp / f"j{index}"), tmp / f"s{index}", settings, device_env=env
        ),
    )
    print(
        json.dumps(
            {
                "job": index,
                "start": start,
                "end": time.time(),
                "slot": facts["gpu_slot"],
                "state": facts["gpu_state"],
                "warnings": facts["warnings"],
                "head": summary(timings["head"]),
            }
        )
    )


def case_slots(tmp: Path, gpus: int) -> None:
    print("== 2. slots: two measure jobs at once")
    if gpus < 2:
        print(f"   {gpus} GPU(s): the slot case needs two")
        return
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--slot-job", str(i), str(tmp)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, gpu.BUDGET_ENV: "2"},
        )
        for i in range(2)
    ]
    jobs = [json.loads(p.communicate(timeout=300)[0].splitlines()[-1]) for p in procs]
    for job in jobs:
        st = job["state"]
        before = st.get("before") or {}
        print(
            f"   job {job['job']}: device {job['slot']['device']} (pool {job['slot']['pool']}, waited "
            f"{job['slot']['waited_s']} s)  {st.get('name')} driver {st.get('driver_version')}  SM "
            f"{before.get('clocks_sm')}/{st.get('clocks_max_sm')} MHz  mem {before.get('clocks_mem')} MHz  power "
            f"limit {st.get('power_limit')} W  {before.get('temperature_gpu')} C  other processes before "
            f"{len(before.get('processes') or [])}, after {len((st.get('after') or {}).get('processes') or [])}"
        )
        print(f"      {job['head']}  warnings {job['warnings']}")
    a, b = jobs
    overlap = min(a["end"], b["end"]) - max(a["start"], b["start"])
    print(
        f"   devices differ: {a['slot']['device'] != b['slot']['device']}; the jobs overlapped {overlap:.1f} s"
    )


ENGINE = (
    """import json, os, socket, threading, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import torch

def setup():
    assert "HF_TOKEN" not in os.environ, "HF_TOKEN reached the test"
    hub = os.environ["HF_HUB_CACHE"]
    weights = torch.load(os.path.join(hub, "models--isobench--tiny", "weights.pt")).to("DEVICE")
    try:
        open(os.path.join(hub, "written"), "w")
        raise AssertionError("the model cache is writable")
    except OSError as exc:  # refused (Landlock) or a read-only mount (bubblewrap)
        assert exc.errno in (13, 30), exc
    try:
        socket.create_connection(("127.0.0.1", HOST_PORT), timeout=3)
        raise AssertionError("reached the host's server")
    except ConnectionRefusedError:
        pass
    step = torch.compile(lambda x: torch.nn.functional.gelu(x @ weights).sum())

    class Engine(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"logit": round(float(step(weights)), 1)}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Engine)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server.server_address[1]

def experiment(port):
    req = urllib.request.Request("http://127.0.0.1:%d/generate" % port, data=b"{}", method="POST")
    return json.loads(urllib.request.urlopen(req, timeout=60).read())
"""
    + FUNCS
)


def case_engine(tmp: Path) -> None:
    print("== 3. engine-shaped test in the default sandbox (own loopback, model cache, compile caches)")
    import torch

    hub = tmp / "hub"
    (hub / "models--isobench--tiny").mkdir(parents=True)
    torch.manual_seed(0)
    torch.save(torch.randn(1024, 1024) / 32, hub / "models--isobench--tiny" / "weights.pt")
    host = socket.create_server(("127.0.0.1", 0))
    test = tmp / "engine.py"
    test.write_text(ENGINE.replace("DEVICE", DEVICE).replace("HOST_PORT", str(host.getsockname()[1])))
    os.environ["HF_TOKEN"] = "hf_check_never_passes"
    settings = Settings(
        rounds=3, max_rounds=3, warmup=3, warmup_ms=200, repeat=20, timeout_s=300, interleave="sequential"
    )
    started = time.monotonic()
    timings = measure_commit(
        test,
        revisions(tmp / "engine"),
        tmp / "engine-scratch",
        settings,
        sandbox=SandboxSettings(model_cache=str(hub)),
        device_env={},
    )
    host.close()
    for t in timings.values():
        box = t["sandbox"] or {}
        print(f"   {summary(t)}")
        print(
            f"      own_loopback={box.get('own_loopback')} network_isolated={box.get('network_isolated')} "
            f"compile_cache={box.get('compile_cache')}  error={(t['error'] or '')[:300]}"
        )
    print(f"   job wall {time.monotonic() - started:.1f} s")


def case_workflow(tmp: Path, gpus: int) -> None:
    print(f"== 4. workflow: the demo's torch commit, --resources gpu={max(gpus, 1)}")
    try:
        import snakemake  # noqa: F401
    except ImportError:
        print("   snakemake is not installed here: skipped")
        return
    sha = "fcefefa521ff7d97797fbcb2a3c37b20075c4b20"  # the demo's "[Perf] Vectorize pairwise_sq_dists" commit
    work = tmp / "wf"
    work.mkdir()
    copy_workflow(work)
    (work / "gpu" / "extractions").mkdir(parents=True)
    subprocess.run(
        ["cp", str(ROOT / "demo" / "extractions" / f"{sha}.json"), str(work / "gpu" / "extractions")],
        check=True,
    )
    (work / "config" / "gpu.yaml").write_text(
        "sources:\n  demo:\n    repo: 'isobench:demo'\n    repo_name: isobench/demokit\n"
        "    extractions: gpu/extractions\n    generators: demo/generators\n"
        "    measure: {rounds: 8, max_rounds: 12, warmup: 3, warmup_ms: 500, repeat: 20, timeout_s: 300,\n"
        "              flush_l2: true}\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "snakemake",
            "--cores",
            "4",
            "--resources",
            f"gpu={max(gpus, 1)}",
            "--configfile",
            "config/gpu.yaml",
            "--quiet",
            "rules",
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=400,
    )
    if proc.returncode:
        print("   snakemake failed:", proc.stderr[-2000:])
        return
    for rev in ("base", "head", "main"):
        t = json.loads((work / "results" / "demo" / sha / f"timing_{rev}.json").read_text())
        st = t.get("gpu_state") or {}
        print(
            f"   {summary(t)}  slot {t['gpu_slot']['device']}  gpu {st.get('name')}  warnings {t['warnings']}"
        )
    record = json.loads((work / "results" / "demo" / sha / "record.json").read_text())
    print("   base->head", json.dumps(record["comparisons"]["base_head"]))


def main() -> None:
    if sys.argv[1:2] == ["--slot-job"]:
        return slot_job(Path(sys.argv[3]), int(sys.argv[2]))
    devices, source = gpu.pool(gpu.GpuSettings())
    print(f"GPUs: {len(devices)} ({source}); torch {harness.environment().get('torch')}; CPU mode: {CPU}")
    with tempfile.TemporaryDirectory(prefix="isobench-gpu-check-") as tmp:
        for name, case in (
            ("timing", lambda: case_timing(Path(tmp), len(devices))),
            ("slots", lambda: case_slots(Path(tmp), len(devices))),
            ("engine", lambda: case_engine(Path(tmp))),
            ("workflow", lambda: case_workflow(Path(tmp), len(devices))),
        ):
            started = time.monotonic()
            try:
                case()
            except Exception as exc:  # one case failing still lets the others print their figures
                print(f"   {name} case failed: {type(exc).__name__}: {exc}")
            print(f"   ({name}: {time.monotonic() - started:.1f} s)")


if __name__ == "__main__":
    main()
