"""Hostile generated tests through real snakemake runs: what they try never reaches the host (sockets, raw
disks, secret files, /dev/shm, the disk's free space, the process table), and no test outlives its run."""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import copy_workflow, demo_subset, snakemake

from isobench.dataset import read_dataset

pytestmark = pytest.mark.slow

CONTRACT = """
def experiment(values):
    return len(values)

def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(ref, cur):
    assert ref == cur
"""

# Tries each way out in turn, and puts whatever it got, base64, in its error (as a model would smuggle it).
ESCAPE = (
    """
import base64, json, os, socket

def attempt(name, fn, got):
    try:
        out = fn()
        got[name] = "ok"
        if isinstance(out, bytes):
            got[name + "_b64"] = base64.b64encode(out).decode()
    except Exception as exc:
        got[name] = type(exc).__name__

def connect(address):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(3)
    s.connect(address)
    s.sendall(b"hello from the sandbox")

def setup():
    got = {}
    attempt("socket", lambda: connect(HOST_SOCKET), got)
    attempt("abstract", lambda: connect("\\0" + ABSTRACT), got)
    attempt("disk", lambda: open(LOOP, "r+b").write(b"PWNED" * 100), got)
    attempt("shadow", lambda: open("/etc/shadow", "rb").read(), got)
    attempt("key", lambda: open(KEY, "rb").read(), got)
    attempt("shm", lambda: open("/dev/shm/" + SHM, "w").write("carried between rounds"), got)
    attempt("run", lambda: os.listdir("/run"), got)
    attempt("home", lambda: os.listdir(os.path.dirname(os.path.dirname(KEY))), got)
    raise RuntimeError("ESCAPE " + json.dumps(got, sort_keys=True))
"""
    + CONTRACT
)

FORKS = (
    """
import json, os, time

def setup():
    n = 0
    try:
        for _ in range(600):
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            n += 1
    except OSError as exc:
        raise RuntimeError(f"FORKS {n} stopped by {type(exc).__name__}")
    raise RuntimeError(f"FORKS {n} unlimited")
"""
    + CONTRACT
)

FILL = (
    """
import json, os

def setup():
    try:
        with open("one-big-file.bin", "wb") as fh:
            fh.write(b"x" * (150 << 20))
        big = "written"
    except OSError as exc:
        big = f"{type(exc).__name__} errno {exc.errno}"
    chunk = os.urandom(1 << 20) * 32
    for i in range(40):
        with open(f"filler{i}.bin", "wb") as fh:
            fh.write(chunk)
    raise RuntimeError(f"FILLED 40 big={big}")
"""
    + CONTRACT
)

FAST = {"rounds": 2, "max_rounds": 2, "warmup": 1, "warmup_ms": 0, "repeat": 2, "timeout_s": 120}


def b64_forms(secret: bytes) -> list[str]:
    """The base64 text of ``secret`` as it appears inside any longer base64 text (each of three alignments)."""
    forms = []
    for pad in range(3):
        text = base64.b64encode(b"\0" * pad + secret).decode()
        forms.append(text[4 * ((pad + 2) // 3) : -4])  # drop the characters the neighbours change
    return forms


def server(sock: socket.socket, accepted: list) -> None:
    sock.settimeout(0.2)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            accepted.append(sock.accept())
        except (TimeoutError, OSError):
            if sock.fileno() < 0:
                return


@pytest.fixture
def loop_device(tmp_path):
    """A loop device over a 1 MiB file of zeros (a raw disk the test must not write), or None."""
    if os.geteuid() != 0 or not shutil.which("losetup"):
        yield None
        return
    image = tmp_path / "disk.img"
    image.write_bytes(b"\0" * (1 << 20))
    proc = subprocess.run(["losetup", "-f", "--show", str(image)], capture_output=True, text=True)
    if proc.returncode != 0:
        yield None
        return
    device = proc.stdout.strip()
    yield device, image
    subprocess.run(["losetup", "-d", device], capture_output=True)


def workflow(tmp_path, shas, scripts: dict, sandbox: dict, measure=FAST) -> Path:
    work = copy_workflow(tmp_path / "project")
    _, gen = demo_subset(work, shas, "hostile", scripts, ())
    for key, text in scripts.items():
        (gen / f"{shas[key][:8]}_test_case_generator.py").write_text(text)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="hostile/extractions", generators="hostile/generators", measure=measure, sandbox=sandbox
    )
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def test_hostile_tests_reach_nothing_of_the_host(tmp_path, demo, loop_device, monkeypatch):
    _, shas = demo
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    key = home / ".ssh" / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    monkeypatch.setenv("HOME", str(home))
    host_socket = tmp_path / "host.sock"
    path_server = socket.socket(socket.AF_UNIX)
    path_server.bind(str(host_socket))
    path_server.listen(8)
    abstract = f"isobench-host-{os.getpid()}"
    abstract_server = socket.socket(socket.AF_UNIX)
    abstract_server.bind("\0" + abstract)
    abstract_server.listen(8)
    accepted: list = []
    for s in (path_server, abstract_server):
        threading.Thread(target=server, args=(s, accepted), daemon=True).start()
    shm = f"isobench-hostile-{os.getpid()}"
    loop = loop_device[0] if loop_device else str(tmp_path / "no-loop-device")
    escape = (
        ESCAPE.replace("HOST_SOCKET", repr(str(host_socket)))
        .replace("ABSTRACT", repr(abstract))
        .replace("LOOP", repr(loop))
        .replace("KEY", repr(str(key)))
        .replace("SHM", repr(shm))
    )
    free_mb = shutil.disk_usage(tmp_path).free / 2**20
    sandbox = {"max_processes": 64, "max_file_mb": 100, "min_free_disk_mb": int(free_mb - 400)}
    work = workflow(tmp_path, shas, {"primes": escape, "histogram": FORKS, "topk": FILL}, sandbox)

    proc = snakemake(work)
    for s in (path_server, abstract_server):
        s.close()
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}

    timing = json.loads((work / "results" / "demo" / shas["primes"] / "timing_base.json").read_text())
    got = json.loads(timing["error"].split("ESCAPE ", 1)[1].splitlines()[0])
    assert accepted == [], "a test reached a unix socket of the host"
    assert got["socket"] in ("FileNotFoundError", "PermissionError", "ConnectionRefusedError"), got
    assert got["abstract"] == "ConnectionRefusedError", got
    assert got["shadow"] == "PermissionError" and got["key"] in ("FileNotFoundError", "PermissionError"), got
    assert got["run"] in ("FileNotFoundError", "PermissionError"), got
    assert got["home"] in ("FileNotFoundError", "PermissionError"), got
    assert not Path("/dev/shm", shm).exists()  # private to the round (or refused): gone with it
    if loop_device:
        assert got["disk"] in ("FileNotFoundError", "PermissionError"), got
        assert loop_device[1].read_bytes() == b"\0" * (1 << 20)
    secrets = [key.read_bytes().split(b"\n")[1]]  # a line of the private key
    shadow = Path("/etc/shadow")
    if os.access(shadow, os.R_OK):
        secrets += [
            line.split(b":")[1] for line in shadow.read_bytes().splitlines() if len(line.split(b":")) > 2
        ]
        secrets = [s for s in secrets if len(s) > 12]  # hashes, not "*" or "!"
    for path in (work / "results").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret not in data, path
                assert not any(form.encode() in data for form in b64_forms(secret)), path

    forks = rows[shas["histogram"]]["revisions"]["base"]
    assert "FORKS" in forks["error"] and "stopped by" in forks["error"], forks["error"]
    assert int(forks["error"].split("FORKS ", 1)[1].split()[0]) < 64

    fill = rows[shas["topk"]]["revisions"]
    assert all(fill[r]["category"] == "sandbox_violation" for r in ("base", "head", "main")), fill
    assert "filled the disk" in fill["base"]["error"]
    assert not list((work / "results").rglob("filler*.bin")) and not list((work / "results").rglob("*big*"))
    assert shutil.disk_usage(tmp_path).free / 2**20 > free_mb - 100  # the filler is gone


LOOP_FOREVER = (
    """
import json

def setup():
    while True:
        pass
"""
    + CONTRACT
)


def processes_of(work: Path, needle: bytes) -> list[int]:
    """PIDs of the processes of the workflow folder ``work`` whose command line holds ``needle``: the tests
    (``harness.py``) and the measure jobs (Snakemake runs a step as a script of its own, ``.measure.py``)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and needle in cmd and str(work).encode() in cmd:
            found.append(int(entry.name))
    return found


def described(pid: int) -> str:
    """A process's state, parent and command line (what a failing test says of a survivor)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:300].decode(errors="replace")
    except OSError:
        return "gone"
    return f"state {stat[0]}, parent {stat[1]}: {cmd}"


def harnesses(work: Path) -> list[int]:
    return processes_of(work, b"harness.py")


def wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("how", ["ctrl-c", "kill-9-run", "kill-9-job"])
def test_a_dead_run_leaves_no_test_running(tmp_path, demo, how):
    _, shas = demo
    measure = {**FAST, "timeout_s": 3600, "rounds": 1, "max_rounds": 1}
    work = workflow(tmp_path, shas, {"primes": LOOP_FOREVER}, {}, measure)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", "--resources", "gpu=1"]
    # its own process group, as a terminal's foreground job: Ctrl-C signals the whole group
    run = subprocess.Popen(
        cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        assert wait_for(lambda: harnesses(work)), "the looping test never started"
        if how == "kill-9-run" or how == "ctrl-c":
            # one run at a time, even after --unlock: a second run refuses with one line
            unlock = subprocess.run([*cmd, "--unlock"], cwd=work, capture_output=True, text=True)
            assert unlock.returncode == 0
            second = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
            assert second.returncode != 0 and "another isobench run is measuring" in second.stderr
            assert "Traceback" not in second.stderr
            assert harnesses(work)  # the first run's test is untouched by the second
        if how == "ctrl-c":
            os.killpg(run.pid, signal.SIGINT)
        elif how == "kill-9-run":
            run.kill()
        else:
            jobs = processes_of(work, b".measure.py")
            assert jobs
            for pid in jobs:
                os.kill(pid, signal.SIGKILL)
        if not wait_for(lambda: not harnesses(work), timeout=30):
            left = {pid: described(pid) for pid in harnesses(work)}
            run.kill()
            raise AssertionError(f"a test outlived the run ({how}): {left}\n{run.communicate()[1][-3000:]}")
    finally:
        run.kill()
        run.communicate()
