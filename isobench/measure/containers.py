"""Container runners: a revision's tests run inside its image (docker, podman, apptainer).

The sandboxed command (isobench/measure/sandbox.py) is appended to the engine's command line: the test's code and
the worktree mounted read-only, its data folder read-write, only the sandbox's environment variables passed
(``--env``), no network under ``network: isolate`` (the container's own loopback only), the host's user, a
read-only root file system, ``--init`` as PID 1, and a name per run so that a run past its time limit is
removed with everything in it. GPU flags appear only when the job holds a GPU (isobench/measure/gpu.py): docker
``--gpus device=N``, podman's CDI device ``nvidia.com/gpu=N``, apptainer ``--nv``; never on a box without one.

``image`` may name the revision: ``myorg/vllm:{sha}`` (the 40-hex SHA) or ``{sha12}``; the environment step
checks that the image exists and has the configured Python before anything is measured, and records its ID
and digest, so a timing file names exactly what ran, not only a tag.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import IsobenchError
from ..settings import schema_settings

KINDS = ("local", "docker", "podman", "apptainer")
OCI = ("docker", "podman")  # docker's command line


@schema_settings("runner")
class Runner:
    """Where tests run (the config's ``runner`` block; defaults in the schema)."""

    kind: str  # local, docker, podman or apptainer
    image: str | None  # may hold {sha} or {sha12}: an image per revision
    gpus: str | None  # "all": the container gets the GPU the job holds (none when it holds none); null: never
    options: tuple[str, ...]

    @property
    def engine(self) -> str | None:
        return None if self.kind == "local" else self.kind

    def image_for(self, sha: str | None) -> str | None:
        """The image of one revision (the template filled with its SHA)."""
        if not self.image or not sha:
            return self.image
        return self.image.replace("{sha12}", sha[:12]).replace("{sha}", sha)


def gpu_flags(runner: Runner, device: str | None) -> list[str]:
    """The engine's flags that give the container the job's GPU (``device``), or [] without one."""
    if not runner.gpus or not device:
        return []
    if runner.kind == "docker":
        return ["--gpus", f"device={device}"]
    if runner.kind == "podman":
        return ["--device", f"nvidia.com/gpu={device}"]
    return ["--nv"] if runner.kind == "apptainer" else []


HOST_ONLY = (
    "PATH",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
)  # this machine's folders: the image has its own


def container_env(runner: Runner, env: dict, device: str | None) -> dict:
    """The variables passed into the container: none naming this machine's program folders (the image's own
    PATH stays in force); docker and podman show the container only its GPU, as device 0."""
    drop = set(HOST_ONLY)
    if runner.kind in OCI and device and runner.gpus:
        drop.add("CUDA_VISIBLE_DEVICES")
    return {k: v for k, v in env.items() if k not in drop}


def runner_prefix(
    runner: Runner,
    workdir: Path,
    mounts: list[tuple[Path, bool]],
    env: dict,
    network: str,
    image: str | None = None,
    name: str | None = None,
    device: str | None = None,
    limits=None,
) -> list[str]:
    """The container command the sandboxed command is appended to (empty for ``local``).

    ``mounts`` are (path, writable) pairs, mounted at the same path inside; ``env`` is passed explicitly
    (nothing else of the host's environment goes in); ``name`` names the container (docker, podman);
    ``limits`` (the sandbox settings) size the private /tmp and /dev/shm and cap the processes."""
    if runner.kind == "local":
        return []
    image = image or runner.image
    if not image:
        raise ValueError(f"runner {runner.kind} needs an image")
    env = container_env(runner, env, device)
    if runner.kind in OCI:
        cmd = [
            runner.kind,
            "run",
            "--rm",
            "--init",
            "--user",
            f"{os.getuid()}:{os.getgid()}",
            "--workdir",
            str(workdir),
            "--read-only",
        ]
        cmd += ["--name", name] if name else []
        if limits is not None:
            size = f"{int(limits.tmpfs_mb)}m"
            cmd += ["--shm-size", size, "--tmpfs", f"/tmp:rw,nosuid,nodev,size={size}"]
            cmd += ["--pids-limit", str(limits.max_processes)]
        cmd += gpu_flags(runner, device)
        cmd += ["--network", "none"] if network == "isolate" else []
        for path, writable in mounts:  # writable None: a file hidden under an empty one
            source = "/dev/null" if writable is None else path
            cmd += ["--volume", f"{source}:{path}:{'rw' if writable else 'ro'}"]
        for k, v in sorted(env.items()):
            cmd += ["--env", f"{k}={v}"]
        return cmd + list(runner.options) + [image]
    cmd = ["apptainer", "exec", "--containall", "--cleanenv", "--no-home", "--pwd", str(workdir)]
    cmd += gpu_flags(runner, device)
    cmd += ["--net", "--network", "none"] if network == "isolate" else []
    for path, writable in mounts:
        source = "/dev/null" if writable is None else path
        cmd += ["--bind", f"{source}:{path}:{'rw' if writable else 'ro'}"]
    for k, v in sorted(env.items()):
        cmd += ["--env", f"{k}={v}"]
    return cmd + list(runner.options) + [image]


def protections(
    runner: Runner,
    image: str | None,
    name: str | None,
    mounts: list[tuple[Path, bool]],
    network: str,
    device: str | None,
    limits=None,
) -> dict:
    """What the container enforced, for the timing file."""
    return {
        "private_tmp_mb": limits.tmpfs_mb if limits is not None and runner.kind in OCI else None,
        "pids_limit": limits.max_processes if limits is not None and runner.kind in OCI else None,
        "engine": runner.kind,
        "image": image,
        "name": name,
        "network": "none" if network == "isolate" else "host",
        "user": f"{os.getuid()}:{os.getgid()}",
        "read_only_root": runner.kind in OCI,
        "read_only_mounts": [str(p) for p, writable in mounts if writable is False],
        "writable_mounts": [str(p) for p, writable in mounts if writable],
        "hidden_files": [str(p) for p, writable in mounts if writable is None],
        "gpu_flags": gpu_flags(runner, device),
    }


def remove(engine: str | None, name: str | None) -> None:
    """Remove a container and everything running in it (a run past its time limit): killing the engine's
    client does not stop the container."""
    if engine in OCI and name and shutil.which(engine):
        subprocess.run([engine, "rm", "--force", name], capture_output=True, timeout=120)


def _engine_out(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} did not answer within {timeout:g} s"
    return proc.returncode, (proc.stdout if proc.returncode == 0 else proc.stderr).strip()


def inspect_image(runner: Runner, image: str, python: str) -> dict:
    """The image's ID, digest and engine version, once its Python answers; else IsobenchError (one line)."""
    engine = runner.engine
    if not shutil.which(engine):
        raise IsobenchError(f"runner {runner.kind}: the {engine} command is not installed on this host")
    facts = {"engine": engine, "image": image, "image_id": None, "image_digest": None, "engine_version": None}
    if runner.kind in OCI:
        code, out = _engine_out([engine, "image", "inspect", "--format", "{{.Id}} {{.Digest}}", image])
        if code != 0:
            raise IsobenchError(
                f"runner {runner.kind}: image {image} not found ({out.splitlines()[-1][:200] if out else code}); "
                f"build it or pull it first"
            )
        parts = out.split()
        facts["image_id"] = parts[0] if parts else None
        facts["image_digest"] = parts[1] if len(parts) > 1 and parts[1] not in ("", "<none>") else None
        facts["engine_version"] = (
            _engine_out([engine, "version", "--format", "{{.Client.Version}}"])[1][:40] or None
        )
    elif not Path(image).exists() and "://" not in image:
        raise IsobenchError(f"runner apptainer: image {image} not found")
    probe = [
        *runner_prefix(runner, Path("/"), [], {}, "isolate", image=image),
        python,
        "-c",
        "import platform; print(platform.python_version())",
    ]
    code, out = _engine_out(probe, timeout=300)
    if code != 0:
        raise IsobenchError(
            f"runner {runner.kind}: image {image} cannot run {python} "
            f"({out.splitlines()[-1][:200] if out else f'exit {code}'})"
        )
    facts["python_version"] = out.splitlines()[-1] if out else None
    return facts
