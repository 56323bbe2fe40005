"""Hostile generated tests: each is contained and reported, and nothing leaks or survives."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import processes_with

from isobench.jsonio import validate
from isobench.measure import sandbox, sandbox_exec, view
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit
from isobench.measure.runners import Runner
from isobench.measure.sandbox import SandboxSettings, allowed_env, namespace_prefix

SECRET = "sk-test-SECRET-sandbox-31415926"
FAST = Settings(rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=2, timeout_s=5)

TEST = """
import json, os, socket, subprocess, sys, time
import toy

def setup():
    if toy.VERSION == "head":
        HOOK
    return 2000

def experiment(n):
    return toy.work(n)

def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(ref, cur):
    assert ref == cur
"""


def measure(tmp_path, revisions, hook, settings=FAST, sandbox=None, device_env=None):
    gen = tmp_path / "generator.py"
    gen.write_text(TEST.replace("HOOK", hook))
    timings = measure_commit(
        gen, revisions, tmp_path / "scratch", settings, sandbox=sandbox, device_env=device_env
    )
    for t in timings.values():
        validate(t, "timing", t["revision"])
    assert timings["base"]["status"] == "ok" and timings["main"]["status"] == "ok"  # the others are untouched
    return timings["head"]


def files_under(folder: Path):
    return [p for p in folder.rglob("*") if p.is_file()]


def test_secrets_never_reach_the_test(tmp_path, revisions, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    hook = 'key = os.environ["OPENAI_API_KEY"]\n        print(key)\n        open("key.txt", "w").write(key)'
    t = measure(tmp_path, revisions, hook)
    assert (t["status"], t["category"]) == ("failed", "setup_error") and "OPENAI_API_KEY" in t["error"]
    hook = (
        'print(sorted(os.environ))\n        print(os.environ.get("AWS_SECRET_ACCESS_KEY"), file=sys.stderr)\n'
        "        1/0"
    )
    t = measure(tmp_path, revisions, hook)
    assert (
        "AWS_SECRET" not in t["stderr_tail"]
        and "OPENAI" not in t["stderr_tail"]
        and "None" in t["stderr_tail"]
    )
    assert t["sandbox"]["env_allowlist"] is True
    for path in files_under(tmp_path):
        assert SECRET.encode() not in path.read_bytes(), path
    assert allowed_env(
        SandboxSettings(env_allow=("MY_*", "GITHUB_TOKEN")),
        {"MY_FLAG": "1", "MY_API_KEY": "x", "GITHUB_TOKEN": "y", "PATH": "/bin", "HOME": "/root"},
    ) == {"MY_FLAG": "1", "PATH": "/bin"}  # secret-looking names never pass, even when allowed


def test_no_network(tmp_path, revisions):
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted = []
    server.settimeout(0.2)

    def serve():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                accepted.append(server.accept())
            except (TimeoutError, OSError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    t = measure(
        tmp_path, revisions, f'socket.create_connection(("127.0.0.1", {port}), timeout=3).sendall(b"hi")'
    )
    server.close()
    assert (t["status"], t["category"]) == ("failed", "setup_error"), t["error"]
    assert not accepted
    assert t["sandbox"]["network_isolated"] == bool(namespace_prefix())
    assert t["sandbox"]["network_isolated"] or t["sandbox"]["tcp_blocked"]


def test_sleeping_forever_is_a_timeout(tmp_path, revisions):
    t = measure(
        tmp_path,
        revisions,
        "time.sleep(10 ** 6)",
        settings=Settings(rounds=1, max_rounds=1, warmup=1, warmup_ms=0, repeat=1, timeout_s=2),
    )
    assert (t["status"], t["category"]) == ("failed", "timeout")


def test_a_child_that_outlives_the_test_is_killed_and_reported(tmp_path, revisions):
    marker = "4242.424242"
    hook = (
        f'if os.fork() == 0:\n            os.setsid()\n            os.execvp("sleep", ["sleep", "{marker}"])\n'
        f"        time.sleep(0.2)"
    )
    t = measure(tmp_path, revisions, hook)
    assert (t["status"], t["category"]) == ("failed", "sandbox_violation"), t["error"]
    assert "left 1 process(es) running" in t["error"]
    time.sleep(0.2)
    assert processes_with(marker) == []


def test_a_child_that_outlives_a_timeout_is_killed(tmp_path, revisions):
    marker = "4343.434343"
    hook = (
        f'if os.fork() == 0:\n            os.setsid()\n            os.execvp("sleep", ["sleep", "{marker}"])\n'
        f"        time.sleep(10 ** 6)"
    )
    t = measure(
        tmp_path,
        revisions,
        hook,
        settings=Settings(rounds=1, max_rounds=1, warmup=1, warmup_ms=0, repeat=1, timeout_s=2),
    )
    assert t["category"] == "timeout"
    time.sleep(0.2)
    assert processes_with(marker) == []


def test_100_mb_of_output_is_cut(tmp_path, revisions):
    t = measure(
        tmp_path,
        revisions,
        'sys.stdout.write("x" * 100_000_000)\n        sys.stdout.flush()',
        sandbox=SandboxSettings(output_cap_mb=1),
    )
    assert (t["status"], t["category"]) == ("failed", "sandbox_violation")
    assert "printed 100.0 MB, over the output cap of 1 MiB" in t["error"]
    biggest = max(p.stat().st_size for p in files_under(tmp_path / "scratch"))
    assert biggest < 1.1 * 1024 * 1024


def test_writes_outside_its_folder_never_reach_the_host(tmp_path, revisions):
    outside = tmp_path / "outside.txt"
    t = measure(tmp_path, revisions, f'open({str(outside)!r}, "w").write("pwned")')
    if not t["sandbox"]["fs_write_restricted"]:
        pytest.skip("this kernel has no Landlock: writes cannot be restricted here")
    # refused, or (bubblewrap) written into the test's private /tmp, which is gone with the round
    assert not outside.exists()
    assert t["status"] == "ok" or "Permission denied" in t["error"] or "Read-only" in t["error"]
    elsewhere = Path(f"/var/tmp/pwned-by-a-test-{os.getpid()}.txt")  # a folder the test does not see at all
    t = measure(tmp_path, revisions, f'open({str(elsewhere)!r}, "w").write("pwned")')
    assert t["category"] == "setup_error" and not elsewhere.exists()
    worktree_file = revisions[1].worktree / "toy.py"
    before = worktree_file.read_text()
    t = measure(tmp_path, revisions, f'open({str(worktree_file)!r}, "a").write("# faster now")')
    assert t["category"] == "setup_error" and worktree_file.read_text() == before


def test_protections_are_recorded(tmp_path, revisions):
    t = measure(tmp_path, revisions, "pass")
    assert t["status"] == "ok"
    p = t["sandbox"]
    assert (
        p["runner"] == "local"
        and p["own_home"]
        and p["kills_process_group"]
        and p["output_cap_bytes"] == 8 << 20
    )
    assert set(p) >= {
        "network_isolated",
        "tcp_blocked",
        "pid_namespace",
        "fs_write_restricted",
        "env_allowlist",
    }


def test_container_commands():
    work, code, data, wt = Path("/w/r0"), Path("/s/code"), Path("/s/data"), Path("/wt/abc")
    mounts = [(code, False), (data, True), (wt, False)]
    docker = Runner(kind="docker", image="vllm/vllm-openai:v0.6.0", options=("--shm-size", "8g")).prefix(
        work,
        mounts,
        {"PYTHONPATH": "/wt/abc", "HOME": "/w/r0/home"},
        "isolate",
    )
    assert docker[:4] == ["docker", "run", "--rm", "--init"]
    assert docker[-3:] == ["--shm-size", "8g", "vllm/vllm-openai:v0.6.0"]
    assert "--gpus" not in docker  # the job holds no GPU: none is given
    text = " ".join(docker)
    for part in (
        "--read-only",
        "--network none",
        "--workdir /w/r0",
        "--volume /s/code:/s/code:ro",
        "--volume /s/data:/s/data:rw",
        "--volume /wt/abc:/wt/abc:ro",
        "--env PYTHONPATH=/wt/abc",
        f"--user {os.getuid()}:{os.getgid()}",
    ):
        assert part in text
    app = Runner(kind="apptainer", image="/img/vllm.sif", gpus=None).prefix(work, mounts, {"A": "1"}, "allow")
    assert app[:2] == ["apptainer", "exec"] and app[-1] == "/img/vllm.sif"
    text = " ".join(app)
    assert "--containall --cleanenv --no-home" in text and "--bind /s/data:/s/data:rw" in text
    assert "--nv" not in app and "--network" not in app and "--env A=1" in text
    assert "--nv" in Runner(kind="apptainer", image="x.sif").prefix(work, mounts, {}, "isolate", device="0")
    assert "--nv" not in Runner(kind="apptainer", image="x.sif").prefix(work, mounts, {}, "isolate")
    assert Runner().prefix(work, mounts, {}, "isolate") == []


def test_own_loopback_inside_the_host_unreachable(tmp_path, revisions):
    """An engine-shaped test: a server on 127.0.0.1 inside the sandbox and a client calling it; the host's
    server on its own 127.0.0.1 stays out of reach."""
    if not namespace_prefix():
        pytest.skip("no network namespace on this host: TCP is blocked altogether instead")
    host = socket.create_server(("127.0.0.1", 0))
    host_port = host.getsockname()[1]
    hook = f"""import threading
        srv = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=lambda: srv.accept()[0].sendall(b"engine up"), daemon=True).start()
        reply = socket.create_connection(srv.getsockname(), timeout=5).recv(64)
        assert reply == b"engine up", reply
        try:
            socket.create_connection(("127.0.0.1", {host_port}), timeout=3)
            raise AssertionError("reached the host's server")
        except ConnectionRefusedError:
            pass
        try:
            socket.create_connection(("93.184.216.34", 80), timeout=3)
            raise AssertionError("reached the outside")
        except OSError as exc:
            assert "unreachable" in str(exc), exc"""
    t = measure(tmp_path, revisions, hook)
    host.close()
    assert t["status"] == "ok", (t["error"], t["stderr_tail"])
    assert (
        t["sandbox"]["network_isolated"] and t["sandbox"]["own_loopback"] and not t["sandbox"]["tcp_blocked"]
    )


@pytest.mark.parametrize("backend", ["bubblewrap", "unshare"])
def test_cache_variables_pass_secrets_never(tmp_path, revisions, monkeypatch, backend):
    models = tmp_path / "models"
    (models / "models--org--tiny").mkdir(parents=True)
    (models / "models--org--tiny" / "config.json").write_text("{}")
    (tmp_path / "hf-home").mkdir()
    (tmp_path / "hf-home" / "token").write_text("hf_" + "x7" * 17)  # `huggingface-cli login` writes it here
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", SECRET)
    monkeypatch.setenv("HF_API_KEY", SECRET)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    hook = f"""e = os.environ
        assert e.get("HF_HOME") == {str(tmp_path / "hf-home")!r}, e.get("HF_HOME")
        assert e["HF_HUB_CACHE"] == e["TRANSFORMERS_CACHE"] == {str(models)!r}
        assert e["HF_HUB_OFFLINE"] == "1"
        assert e["CUDA_VISIBLE_DEVICES"] == "3", e.get("CUDA_VISIBLE_DEVICES")
        leaked = [k for k in e if "TOKEN" in k or "API_KEY" in k]
        assert not leaked, leaked
        try:
            open(os.path.join(e["HF_HOME"], "token")).read()
            raise AssertionError("the Hub token file is readable")
        except PermissionError:
            pass
        open(os.path.join(e["HF_HUB_CACHE"], "models--org--tiny", "config.json")).read()
        try:
            open(os.path.join(e["HF_HUB_CACHE"], "written"), "w")
            raise AssertionError("the model cache is writable")
        except OSError as exc:  # refused (Landlock), or a read-only mount (bubblewrap)
            assert exc.errno in (13, 30), exc"""
    t = measure(
        tmp_path,
        revisions,
        hook,
        sandbox=SandboxSettings(model_cache=str(models), backend=backend, require_isolation=False),
        device_env={"CUDA_VISIBLE_DEVICES": "3"},
    )
    assert t["status"] == "ok", (t["error"], t["stderr_tail"])
    assert t["sandbox"]["model_cache"] == str(models) and t["sandbox"]["hf_offline"] == "1"
    env = {
        "HF_HOME": "/h",
        "HF_HUB_CACHE": "/c",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_CACHE": "/t",
        "HF_TOKEN": "x",
        "HF_TOKEN_PATH": "/x",
        "HUGGING_FACE_HUB_TOKEN": "x",
    }
    assert allowed_env(SandboxSettings(env_allow=("HF_*",)), env) == {
        "HF_HOME": "/h",
        "HF_HUB_CACHE": "/c",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_CACHE": "/t",
    }


def test_compile_caches_persist_across_rounds_per_revision(tmp_path, revisions):
    """Each round is a fresh process with a fresh HOME; the compile caches are the revision's own and outlive it."""
    hook = """for name in ("TRITON_CACHE_DIR", "TORCHINDUCTOR_CACHE_DIR"):
            folder = os.environ[name]
            assert "/head/compile_cache/" in folder, folder
            os.makedirs(folder, exist_ok=True)
            seen = len(os.listdir(folder))
            open(os.path.join(folder, "kernel%d" % seen), "w").write("compiled")"""
    gen = tmp_path / "generator.py"
    gen.write_text(TEST.replace("HOOK", hook))
    three = Settings(
        rounds=3, max_rounds=3, warmup=1, warmup_ms=0, repeat=2, timeout_s=5, interleave="rounds"
    )
    timings = measure_commit(gen, revisions, tmp_path / "scratch", three)
    assert timings["head"]["status"] == "ok", timings["head"]["error"]
    triton = tmp_path / "scratch" / "data" / "head" / "compile_cache" / "triton"
    assert sorted(p.name for p in triton.iterdir()) == [
        "kernel0",
        "kernel1",
        "kernel2",
    ]  # one per round, kept
    facts = timings["head"]["sandbox"]["compile_cache"]
    assert (
        facts["persistent_across_rounds"] and facts["files"] == 6 and "TRITON_CACHE_DIR" in facts["variables"]
    )
    assert timings["base"]["sandbox"]["compile_cache"]["files"] == 0  # never shared with another revision
    timings = measure_commit(
        gen, revisions, tmp_path / "scratch2", three, sandbox=SandboxSettings(compile_cache=False)
    )
    assert timings["head"]["category"] == "setup_error" and "TRITON_CACHE_DIR" in timings["head"]["error"]
    assert timings["head"]["sandbox"]["compile_cache"] is None


def test_without_bubblewrap_landlock_hides_secrets_and_disks(tmp_path, revisions):
    """The unshare fallback (no mount namespace): Landlock rules made from the same view refuse reads outside
    it and writes to any device but a few; what it cannot hide is said (host sockets, shared /dev/shm)."""
    key = tmp_path / "home" / ".ssh" / "id_ed25519"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n")
    disk = next((d for d in ("/dev/loop0", "/dev/vda", "/dev/sda", "/dev/nvme0n1") if Path(d).exists()), None)
    hook = f"""got = {{}}
        for name, path, mode in (("shadow", "/etc/shadow", "rb"), ("key", {str(key)!r}, "rb"),
                                 ("disk", {disk!r}, "r+b")):
            try:
                open(path, mode).close() if path else None  # opened, never written
                got[name] = "opened"
            except OSError as exc:
                got[name] = type(exc).__name__
        open("/etc/hostname").read()  # the rest of /etc is there
        assert got == {{"shadow": "PermissionError", "key": "PermissionError",
                        "disk": "PermissionError" if {disk!r} else "opened"}}, got"""
    settings = SandboxSettings(backend="unshare", require_isolation=False)
    t = measure(tmp_path, revisions, hook, sandbox=settings)
    if not t["sandbox"]["fs_write_restricted"]:
        pytest.skip("this kernel has no Landlock")
    assert t["status"] == "ok", (t["error"], t["stderr_tail"])
    p = t["sandbox"]
    assert p["backend"] == "unshare" and p["fs_read_restricted"] and not p["host_sockets_hidden"]
    assert not p["private_dev_shm"] and p["minimal_dev"]
    gaps = sandbox.isolation_gaps(settings, Runner())
    assert any("unix sockets are reachable" in g for g in gaps)  # refused unless require_isolation: false


def test_the_revisions_environment_never_chooses_what_is_shown(tmp_path):
    """The revision's environment is built from its code: finding its interpreter's folders runs none of it
    (a .pth file there would run as the workflow's user, outside the sandbox), and no folder that would bring
    the host's sockets or homes along is ever bound."""
    venv = tmp_path / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    ran = tmp_path / "the-pth-ran"
    (site / "evil.pth").write_text(f"/run\n/.\nimport os; open({str(ran)!r}, 'w')\n")
    folders = view.python_folders(str(venv / "bin" / "python"))
    assert not ran.exists()
    assert venv.resolve() in folders and Path(sys.base_prefix).resolve() in folders
    assert not any(str(f) in ("/", "/run", "/var", "/root", "/home", "/tmp") for f in folders)
    for bad in ("/", "/.", "/run", "/var", "/root", "/home/", "/tmp", "/etc", "/nonexistent"):
        assert view.bindable(bad) is None, bad
    assert view.bindable(tmp_path) == tmp_path.resolve()


def test_the_launcher_ends_the_test_when_its_job_is_gone(tmp_path):
    """The lifeline: the measure job holds the only writer of a pipe the launcher inside reads; when the job
    dies, however (kill -9 gives it no last word), the launcher kills the test, whatever the namespaces did."""
    marker = "4747.474747"
    read_end, write_end = os.pipe()
    launcher = subprocess.Popen(
        [sys.executable, sandbox_exec.__file__, "--report", str(tmp_path / "report.json"), "--token", "t0"]
        + ["--write", str(tmp_path), "--lifeline", str(read_end), "--", "sleep", marker],
        pass_fds=(read_end,),
    )
    os.close(read_end)
    time.sleep(0.5)
    assert processes_with(marker)
    os.close(write_end)  # what the kernel does when the job dies
    assert launcher.wait(timeout=10) == 137  # the test was killed (128 + SIGKILL)
    assert json.loads((tmp_path / "report.json").read_text())["lifeline_cut"] is True
    assert processes_with(marker) == []
