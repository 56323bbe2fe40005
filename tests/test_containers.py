"""Container runners for real: podman (docker's command line) running an image built from Debian's packages.

tests/containers/image.sh installs the engine and builds the image once (cached by its recipe); the tests are
skipped, with the reason printed, only when it says an engine cannot run on this machine (exit 77).
"""

import dataclasses
import json
import os
import socket
import subprocess
import sys
import time

import pytest
import yaml
from conftest import container_image_build, copy_workflow, processes_with, snakemake, without_timings
from test_evaluate_workflow import Patches, jsonl, rows_of
from test_sandbox import SECRET, TEST

from isobench.dataset import read_dataset
from isobench.envs import build_env
from isobench.jsonio import validate
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit, smoke_run
from isobench.measure.runners import Runner
from isobench.measure.sandbox import SandboxSettings

pytestmark = pytest.mark.slow
FAST = Settings(
    rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=2, timeout_s=20, interleave="sequential"
)


@pytest.fixture(scope="session")
def image():
    """The test image's name, with CONTAINERS_CONF set for this session's podman commands."""
    code, out, err = container_image_build()
    if code == 77:
        reason = (err.strip().splitlines() or ["image.sh exited 77"])[-1]
        print(f"container tests skipped: {reason}", file=sys.stderr)
        pytest.skip(f"no container engine can run here: {reason}")
    assert code == 0, err[-3000:]
    conf, name = out.strip().splitlines()[-2:]
    os.environ["CONTAINERS_CONF"] = conf.split("=", 1)[1]
    return name


@pytest.fixture
def in_image(revisions, image):
    return [dataclasses.replace(r, python="python3", image=image) for r in revisions]


def containers_named(prefix="isobench-"):
    out = subprocess.run(
        ["podman", "ps", "--all", "--format", "{{.Names}}"], capture_output=True, text=True
    ).stdout
    return [n for n in out.split() if n.startswith(prefix)]


def measure(tmp_path, revisions, hook, settings=FAST, sandbox=None):
    gen = tmp_path / "generator.py"
    gen.write_text(TEST.replace("HOOK", hook))
    timings = measure_commit(
        gen,
        revisions,
        tmp_path / "scratch",
        settings,
        sandbox=sandbox,
        runner=Runner(kind="podman", image=revisions[0].image),
    )
    for t in timings.values():
        validate(t, "timing", t["revision"])
    assert timings["base"]["status"] == "ok", (timings["base"]["error"], timings["base"]["stderr_tail"])
    assert timings["main"]["status"] == "ok"
    return timings["head"]


def test_a_good_test_runs_in_the_container(tmp_path, in_image, image):
    t = measure(tmp_path, in_image, 'assert sys.executable.startswith("/usr/bin/python3"), sys.executable')
    assert t["status"] == "ok", (t["error"], t["stderr_tail"])
    box = t["sandbox"]
    assert (
        box["runner"] == "podman" and box["pid_namespace"] and box["network_isolated"] and box["own_loopback"]
    )
    c = box["container"]
    assert c["engine"] == "podman" and c["image"] == image and c["network"] == "none" and c["read_only_root"]
    assert (
        str(in_image[1].worktree.resolve()) in c["read_only_mounts"] and c["gpu_flags"] == []
    )  # no GPU here
    assert c["user"] == f"{os.getuid()}:{os.getgid()}"
    assert t["env"]["python_executable"] == "/usr/bin/python3"  # the image's Python, not this machine's


def test_secrets_never_reach_the_container(tmp_path, in_image, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    t = measure(tmp_path, in_image, 'print(os.environ["OPENAI_API_KEY"])')
    assert (t["status"], t["category"]) == ("failed", "setup_error") and "OPENAI_API_KEY" in t["error"]
    t = measure(tmp_path, in_image, 'assert "HF_TOKEN" not in os.environ and "SECRET" not in str(os.environ)')
    assert t["status"] == "ok", t["error"]
    for path in (tmp_path / "scratch").rglob("*"):
        assert not path.is_file() or SECRET.encode() not in path.read_bytes(), path


def test_no_network_out_own_loopback_in(tmp_path, in_image):
    host = socket.create_server(("127.0.0.1", 0))
    hook = f"""import threading
        srv = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=lambda: srv.accept()[0].sendall(b"engine up"), daemon=True).start()
        assert socket.create_connection(srv.getsockname(), timeout=5).recv(64) == b"engine up"
        for where in (("127.0.0.1", {host.getsockname()[1]}), ("93.184.216.34", 80)):
            try:
                socket.create_connection(where, timeout=3)
                raise AssertionError("reached %s" % (where,))
            except OSError as exc:
                assert not isinstance(exc, socket.timeout), exc"""
    t = measure(tmp_path, in_image, hook)
    host.close()
    assert t["status"] == "ok", (t["error"], t["stderr_tail"])


def test_the_container_has_its_own_tmp_and_shm_and_no_host_socket(tmp_path, in_image):
    host_socket = tmp_path / "host.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(host_socket))
    server.listen(4)
    server.settimeout(0.2)
    shm = f"isobench-container-{os.getpid()}"
    hook = f"""open("/dev/shm/{shm}", "w").write("x")
        open("/tmp/{shm}", "w").write("x")
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect({str(host_socket)!r})
            raise AssertionError("reached the host's socket")
        except (FileNotFoundError, ConnectionRefusedError):
            pass
        import resource, subprocess
        limit = int(open("/sys/fs/cgroup/pids.max").read()) if os.path.exists("/sys/fs/cgroup/pids.max") else None
        assert limit in (None, 64), limit"""
    t = measure(tmp_path, in_image, hook, sandbox=SandboxSettings(max_processes=64, tmpfs_mb=64))
    try:
        server.accept()
        reached = True
    except OSError:
        reached = False
    server.close()
    assert t["status"] == "ok", (t["error"], t["stderr_tail"])
    assert not reached and not os.path.exists(f"/dev/shm/{shm}") and not os.path.exists(f"/tmp/{shm}")
    c = t["sandbox"]["container"]
    assert c["private_tmp_mb"] == 64 and c["pids_limit"] == 64


def test_writing_into_the_worktree_is_refused(tmp_path, in_image):
    target = in_image[1].worktree / "toy.py"
    before = target.read_text()
    t = measure(tmp_path, in_image, f'open({str(target)!r}, "a").write("# faster now")')
    assert t["category"] == "setup_error" and "Read-only file system" in t["error"], t["error"]
    assert target.read_text() == before


def test_processes_left_behind_are_killed(tmp_path, in_image):
    marker = "4545.454545"
    hook = (
        f'if os.fork() == 0:\n            os.setsid()\n            os.execvp("sleep", ["sleep", "{marker}"])\n'
        f"        time.sleep(0.2)"
    )
    t = measure(tmp_path, in_image, hook)
    assert (t["status"], t["category"]) == ("failed", "sandbox_violation") and "left 1 process" in t["error"]
    time.sleep(0.5)
    assert processes_with(marker) == [] and containers_named() == []


def test_100_mb_of_output_is_cut(tmp_path, in_image):
    t = measure(
        tmp_path,
        in_image,
        'sys.stdout.write("x" * 100_000_000)\n        sys.stdout.flush()',
        sandbox=SandboxSettings(output_cap_mb=1),
    )
    assert (t["status"], t["category"]) == ("failed", "sandbox_violation") and "output cap" in t["error"]


def test_past_the_time_limit_the_container_is_removed(tmp_path, in_image):
    marker = "4646.464646"
    hook = f'subprocess.Popen(["sleep", "{marker}"])\n        time.sleep(10 ** 6)'
    slow = dataclasses.replace(FAST, rounds=1, max_rounds=1, timeout_s=4)
    t = measure(tmp_path, in_image, hook, settings=slow)
    assert t["category"] == "timeout"
    time.sleep(0.5)
    assert processes_with(marker) == [] and containers_named() == []


def test_smoke_run_in_the_container(tmp_path, in_image):
    head, runner = in_image[1], Runner(kind="podman", image=in_image[1].image)
    good, bad = tmp_path / "good.py", tmp_path / "bad.py"
    good.write_text(TEST.replace("HOOK", 'assert sys.executable == "/usr/bin/python3", sys.executable'))
    bad.write_text(TEST.replace("HOOK", 'open("/etc/hostname", "w")'))
    assert smoke_run(good, head, tmp_path / "smoke", 60, runner=runner) is None
    problem = smoke_run(bad, head, tmp_path / "smoke", 60, runner=runner)
    assert problem.startswith("setup_error (reference run)") and "Read-only file system" in problem


def test_gpu_flags_only_with_a_gpu(tmp_path):
    mounts = [(tmp_path, False)]
    for kind, flags in (("docker", ["--gpus", "device=3"]), ("podman", ["--device", "nvidia.com/gpu=3"])):
        runner = Runner(kind=kind, image="img:{sha12}")
        with_gpu = runner.prefix(
            tmp_path,
            mounts,
            {"CUDA_VISIBLE_DEVICES": "3"},
            "isolate",
            image=runner.image_for("ab" * 20),
            device="3",
        )
        assert with_gpu[with_gpu.index(flags[0]) : with_gpu.index(flags[0]) + 2] == flags
        assert (
            with_gpu[-1] == "img:" + "ab" * 6 and "CUDA_VISIBLE_DEVICES=3" not in with_gpu
        )  # the container's only GPU
        without = runner.prefix(tmp_path, mounts, {}, "isolate", image="img:x", device=None)
        assert "--gpus" not in without and "--device" not in without
        never = dataclasses.replace(runner, gpus=None).prefix(
            tmp_path, mounts, {}, "isolate", image="img:x", device="3"
        )
        assert "--gpus" not in never and "--device" not in never


def test_bad_images_are_env_failed(tmp_path, image, monkeypatch):
    def build(runner):
        return build_env(
            sha="ab" * 20,
            worktree=tmp_path,
            env_dir=tmp_path / "env",
            cfg={"mode": "image"},
            setup_commands=[],
            install_commands=[],
            runner=runner,
            log_path=tmp_path / "env.log",
        )

    ok = build(Runner(kind="podman", image=image))
    assert (
        ok["status"] == "ok"
        and ok["image_id"]
        and ok["engine"] == "podman"
        and ok["python_version"].startswith("3.")
    )
    missing = build(Runner(kind="podman", image="isobench-test:{sha12}"))
    assert missing["status"] == "failed" and f"image isobench-test:{'ab' * 6} not found" in missing["error"]
    empty = build(Runner(kind="podman", image="isobench-test:empty"))
    assert empty["status"] == "failed" and "cannot run python3" in empty["error"]
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    assert (
        build(Runner(kind="docker", image=image))["error"]
        == "runner docker: the docker command is not installed on this host"
    )


def test_workflow_in_containers_matches_a_local_run(tmp_path, demo, demo_run, image):
    """Three demo commits in an image per revision (name:{sha12}), as a local run gives them; a fourth whose
    head has no image is env_failed at head alone, and the others go on."""
    repo, shas = demo
    work = copy_workflow(tmp_path)
    keys = ("primes", "moving-average", "topk")  # pure Python (the image has no torch), one of each outcome
    keep = {shas[k] for k in (*keys, "wordfreq")}
    for path in [*(work / "demo" / "extractions").iterdir(), *(work / "demo" / "generators").iterdir()]:
        if not any(path.name.startswith((sha, sha[:8])) for sha in keep):
            path.unlink()  # the same folders as the local run, so that the provenance is the same
    parent = {
        sha: subprocess.run(
            ["git", "rev-parse", f"{sha}^"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        for sha in keep
    }
    tagged = {shas["release"], *(parent[s] for s in keep), *(shas[k] for k in keys)}  # not wordfreq's head
    template = "isobench-test-rev:{sha12}"
    for sha in tagged:
        subprocess.run(["podman", "tag", image, template.replace("{sha12}", sha[:12])], check=True)
    try:
        config = yaml.safe_load((work / "config" / "config.yaml").read_text())
        config["sources"]["demo"].update(
            runner={"kind": "podman", "image": template},
            env={"mode": "image"},
            measure={"rounds": 3, "max_rounds": 3},
        )
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        proc = snakemake(work, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
        evaluate_in_images(work, repo, rows[shas["primes"]], template)
    finally:
        for sha in tagged:
            subprocess.run(["podman", "untag", image, "localhost/" + template.replace("{sha12}", sha[:12])])
    local = {
        r["head_commit"]: r
        for r in read_dataset(demo_run[0].with_name(demo_run[0].name + ".first-dataset.jsonl"))
    }
    assert sorted(rows) == sorted(keep)
    for key in keys:
        row = rows[shas[key]]
        mine, theirs = without_timings(row, work), without_timings(local[row["head_commit"]], demo_run[0])
        for r in (mine, theirs):  # where the tests ran: the image's Python against the worktree's
            r.pop("version")
            r["provenance"].pop("environment")
            r["provenance"].pop("measurement", None)
            r["provenance"].pop("measure_settings")  # 3 rounds here, to keep the suite short
        assert mine == theirs, key  # the coverage of the change included: traced in the container as locally
        if key != "topk":  # (topk fails its check round: never traced)
            assert (
                row["coverage"]["status"] == "exercised" and row["coverage"]["changed_lines_covered"] == 1.0
            )
            assert {r["place"] for r in row["coverage"]["imported_from"]} == {"worktree"}
        for name in ("base", "head", "main"):
            t = json.loads(
                (work / "results" / "demo" / row["head_commit"] / f"timing_{name}.json").read_text()
            )
            renv = t["revision_env"]
            assert renv["engine"] == "podman" and renv["image"] == template.replace("{sha12}", t["sha"][:12])
            assert renv["image_id"] and t["env"]["python_executable"] == "/usr/bin/python3"
            assert t["sandbox"]["container"]["network"] == "none"
    broken = rows[shas["wordfreq"]]["revisions"]
    assert broken["base"]["status"] == "ok" and broken["head"]["category"] == "env_failed"
    head = json.loads((work / "results" / "demo" / shas["wordfreq"] / "timing_head.json").read_text())
    assert f"image isobench-test-rev:{shas['wordfreq'][:12]} not found" in head["error"]
    assert containers_named() == []


def evaluate_in_images(work, repo, record, template):
    """`snakemake evaluate` on the run's dataset: the human's diff, a patch that changes the result and one that
    changes a compiled source, each candidate a tree of base run by base's image, as the source's revisions were
    (its runner and env mode); the compiled change built by the record's install command in base's image."""
    patches = Patches(repo, work.parent)
    wrong = patches.edit(
        record["base_commit"], ("demokit/numbers.py", "    primes = []\n", "    primes = [1]\n")
    )
    compiled = patches.edit(  # imports what only the build makes: measured only if it was built
        record["base_commit"],
        ("demokit/speed.c", "", "int fast;\n"),
        (
            "demokit/numbers.py",
            "    primes = []\n",
            "    from demokit.speed_built import BUILT\n    primes = []\n",
        ),
    )
    (work / "preds.jsonl").write_text(
        jsonl(
            {"instance_id": record["instance_id"], "model_name_or_path": "agent", "model_patch": patch}
            for patch in (record["patch"], wrong, compiled)
        )
    )
    build = (
        "python3 -c \"import pathlib; [pathlib.Path(str(c)[:-2] + '_built.py').write_text('BUILT = 1') "
        "for c in pathlib.Path('demokit').glob('*.c')]\""
    )
    dataset = work / "with-install.jsonl"
    dataset.write_text(json.dumps({**record, "install_commands": [build]}) + "\n")
    (work / "eval.yaml").write_text(
        f"evaluations:\n  boxed:\n    predictions: preds.jsonl\n    dataset: {dataset}\n    calibration: false\n"
        "    measure: {rounds: 3, max_rounds: 3}\n"
    )
    proc = snakemake(work, "evaluate", "--configfile", "eval.yaml", timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["attempt"]: r for r in rows_of(work, "boxed")}
    assert rows[1]["status"] == "evaluated" and rows[1]["timed"], rows[1]
    assert rows[2]["status"] == "not_equivalent", rows[2]
    assert rows[3]["status"] == "evaluated" and rows[3]["timed"], rows[3]
    job = work / "results" / "evaluations" / "boxed" / record["instance_id"] / "agent"
    log = (job / "envs" / rows[3]["candidate"] / "build.log").read_text()
    # the record's install command ran in base's image on the candidate's tree (without it, numbers.py's
    # import of demokit.speed_built fails and attempt 3 is not timed)
    assert "_built.py" in log and "[exit 0]" in log, log
    base_image = template.replace("{sha12}", record["base_commit"][:12])
    timings = sorted(job.glob("candidates/*/timing.json"))
    assert len(timings) == 3
    for path in [*timings, timings[0].parents[2] / "timing_base.json"]:
        t = json.loads(path.read_text())
        renv = t["revision_env"]
        assert renv["engine"] == "podman" and renv["image"] == base_image, renv
        assert t["env"]["python_executable"] == "/usr/bin/python3"
        assert t["sandbox"]["container"]["network"] == "none"
    assert containers_named() == []
