"""Where a revision's tests run: one class per runner kind, found by name in ``KINDS``.

A kind says its command line (what the sandboxed command of isobench/measure/sandbox.py is appended to), its
GPU flags, how its image is checked and what the timing file records of the container. ``local`` runs on this
machine (the sandbox's own bubblewrap or unshare); the container kinds run the same command inside the
revision's image: the test's code and the worktree mounted read-only, its data folder read-write, only the
sandbox's environment variables passed (``--env``), no network under ``network: isolate`` (the container's own
loopback only), the host's user. ``docker`` and ``podman`` add a read-only root file system, ``--init`` as PID 1,
a private /tmp and /dev/shm, a process limit and a name per run, so that a run past its time limit is removed
with everything in it. GPU flags appear only when the job holds a GPU (isobench/measure/gpu.py): docker
``--gpus device=N``, podman's CDI device ``nvidia.com/gpu=N``, apptainer ``--nv``; never on a box without one.

``image`` may name the revision: ``myorg/vllm:{sha}`` (the 40-hex SHA) or ``{sha12}``; the environment step
checks that the image exists and has the configured Python before anything is measured, and records its ID
and digest, so a timing file names exactly what ran, not only a tag.

A new kind is a subclass of ``RunnerKind`` (or ``Container``) decorated with ``@register``, plus its name in the
config schema's ``runner.kind`` enum (tests/test_config.py holds the two equal).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from ..errors import IsobenchError
from ..settings import schema_settings

KINDS: dict[str, RunnerKind] = {}

HOST_ONLY = (
    "PATH",
    "LD_LIBRARY_PATH",
    "CUDA_HOME",
    "CUDA_PATH",
)  # this machine's folders: the image has its own


def register(cls):
    """Class decorator: the kind becomes known by its ``name``."""
    KINDS[cls.name] = cls()
    return cls


def kind_of(name: str) -> RunnerKind:
    """The registered kind called ``name``, else IsobenchError (one line naming the known ones)."""
    try:
        return KINDS[name]
    except (KeyError, TypeError):
        raise IsobenchError(f"runner.kind: unknown kind {name!r} (known: {', '.join(KINDS)})") from None


@schema_settings("runner")
class Runner:
    """Where tests run (the config's ``runner`` block; defaults in the schema)."""

    kind: str  # a name in KINDS: local, docker, podman or apptainer
    image: str | None  # may hold {sha} or {sha12}: an image per revision
    gpus: str | None  # "all": the container gets the GPU the job holds (none when it holds none); null: never
    options: tuple[str, ...]

    def __post_init__(self):
        kind_of(self.kind)

    @property
    def impl(self) -> RunnerKind:
        return KINDS[self.kind]

    @property
    def engine(self) -> str | None:
        return self.impl.engine

    def image_for(self, sha: str | None) -> str | None:
        """The image of one revision (the template filled with its SHA)."""
        if not self.image or not sha:
            return self.image
        return self.image.replace("{sha12}", sha[:12]).replace("{sha}", sha)

    def gpu_flags(self, device: str | None) -> list[str]:
        """The engine's flags that give the container the job's GPU (``device``), or [] without one."""
        return self.impl.gpu_flags(device) if self.gpus and device else []

    def prefix(
        self,
        workdir: Path,
        mounts: list[tuple[Path, bool | None]],
        env: dict,
        network: str,
        image: str | None = None,
        name: str | None = None,
        device: str | None = None,
        limits=None,
    ) -> list[str]:
        """The command the sandboxed command is appended to (empty for ``local``).

        ``mounts`` are (path, writable) pairs, mounted at the same path inside (writable None: a file hidden
        under an empty one); ``env`` is passed explicitly (nothing else of the host's environment goes in);
        ``name`` names the container; ``limits`` (the sandbox settings) size the private /tmp and /dev/shm and
        cap the processes."""
        if not self.impl.container:
            return []
        image = image or self.image
        if not image:
            raise ValueError(f"runner {self.kind} needs an image")
        env = self.impl.environment(self, env, device)
        return self.impl.command(self, workdir, mounts, env, network, image, name, device, limits)

    def protections(self, image, name, mounts, network, device, limits=None) -> dict:
        """What the container enforced, for the timing file."""
        return self.impl.protections(self, image, name, mounts, network, device, limits)

    def inspect_image(self, image: str, python: str) -> dict:
        """The image's ID, digest and engine version, once its Python answers; else IsobenchError (one line)."""
        return self.impl.inspect(self, image, python)


class RunnerKind:
    """One way of running a revision's tests. Class attributes say what the sandbox and the record need."""

    name: ClassVar[str]
    engine: ClassVar[str | None] = None  # the command that starts the container
    container: ClassVar[bool] = False  # tests run in the revision's image (config: env mode image, an image)
    named: ClassVar[bool] = False  # one named container per run, removed when the run is killed
    own_pid_namespace: ClassVar[bool] = False  # recorded as the run's PID namespace
    enforces_limits: ClassVar[bool] = False  # a read-only root, a private /tmp of a size and a process limit

    def gpu_flags(self, device: str) -> list[str]:
        return []

    def environment(self, runner: Runner, env: dict, device: str | None) -> dict:
        return env

    def command(self, runner, workdir, mounts, env, network, image, name, device, limits) -> list[str]:
        return []

    def container_name(self, token: str) -> str | None:
        return f"isobench-{token[:20]}" if self.named else None

    def protections(self, runner, image, name, mounts, network, device, limits) -> dict:
        enforced = limits is not None and self.enforces_limits
        return {
            "private_tmp_mb": limits.tmpfs_mb if enforced else None,
            "pids_limit": limits.max_processes if enforced else None,
            "engine": self.name,
            "image": image,
            "name": name,
            "network": "none" if network == "isolate" else "host",
            "user": f"{os.getuid()}:{os.getgid()}",
            "read_only_root": self.enforces_limits,
            "read_only_mounts": [str(p) for p, writable in mounts if writable is False],
            "writable_mounts": [str(p) for p, writable in mounts if writable],
            "hidden_files": [str(p) for p, writable in mounts if writable is None],
            "gpu_flags": runner.gpu_flags(device),
        }

    def inspect(self, runner: Runner, image: str, python: str) -> dict:
        raise IsobenchError(f"runner {self.name} runs no image")

    def remove(self, name: str | None) -> None:
        """Remove a run's container and everything running in it (killing the engine's client does not)."""


@register
class Local(RunnerKind):
    """This machine, through the sandbox's own backend (bubblewrap or unshare)."""

    name = "local"


class Container(RunnerKind):
    """A kind that runs the command in the revision's image."""

    container = True
    bind: ClassVar[str] = "--volume"  # the engine's flag that mounts a host path

    def mounts_env_image(self, runner: Runner, mounts, env: dict, image: str) -> list[str]:
        """The command line's tail: each mount at its own path (writable None: a file hidden under an empty one),
        each variable passed explicitly, the runner's options, the image."""
        cmd = []
        for path, writable in mounts:
            source = "/dev/null" if writable is None else path
            cmd += [self.bind, f"{source}:{path}:{'rw' if writable else 'ro'}"]
        for k, v in sorted(env.items()):
            cmd += ["--env", f"{k}={v}"]
        return cmd + list(runner.options) + [image]

    def environment(self, runner: Runner, env: dict, device: str | None) -> dict:
        """No variable naming this machine's program folders (the image's own PATH stays in force)."""
        return {k: v for k, v in env.items() if k not in HOST_ONLY}

    def image_facts(self, image: str) -> dict:
        """The image's ID, digest and the engine's version (IsobenchError when the image is missing)."""
        return {}

    def inspect(self, runner: Runner, image: str, python: str) -> dict:
        if not shutil.which(self.engine):
            raise IsobenchError(
                f"runner {self.name}: the {self.engine} command is not installed on this host"
            )
        facts = {
            "engine": self.engine,
            "image": image,
            "image_id": None,
            "image_digest": None,
            "engine_version": None,
        }
        facts.update(self.image_facts(image))
        probe = [
            *runner.prefix(Path("/"), [], {}, "isolate", image=image),
            python,
            "-c",
            "import platform; print(platform.python_version())",
        ]
        code, out = _engine_out(probe, timeout=300)
        if code != 0:
            raise IsobenchError(
                f"runner {self.name}: image {image} cannot run {python} "
                f"({out.splitlines()[-1][:200] if out else f'exit {code}'})"
            )
        facts["python_version"] = out.splitlines()[-1] if out else None
        return facts


@register
class Docker(Container):
    """docker's command line; a container per run, named, removed by name at the time limit."""

    name = engine = "docker"
    named = own_pid_namespace = enforces_limits = True

    def gpu_flags(self, device: str) -> list[str]:
        return ["--gpus", f"device={device}"]

    def environment(self, runner: Runner, env: dict, device: str | None) -> dict:
        """As a container's, and the container sees only its GPU, as device 0."""
        env = super().environment(runner, env, device)
        if device and runner.gpus:
            env.pop("CUDA_VISIBLE_DEVICES", None)
        return env

    def command(self, runner, workdir, mounts, env, network, image, name, device, limits) -> list[str]:
        cmd = [self.engine, "run", "--rm", "--init", "--user", f"{os.getuid()}:{os.getgid()}"]
        cmd += ["--workdir", str(workdir), "--read-only"]
        cmd += ["--name", name] if name else []
        if limits is not None:
            size = f"{int(limits.tmpfs_mb)}m"
            cmd += ["--shm-size", size, "--tmpfs", f"/tmp:rw,nosuid,nodev,size={size}"]
            cmd += ["--pids-limit", str(limits.max_processes)]
        cmd += runner.gpu_flags(device)
        cmd += ["--network", "none"] if network == "isolate" else []
        return cmd + self.mounts_env_image(runner, mounts, env, image)

    def image_facts(self, image: str) -> dict:
        code, out = _engine_out([self.engine, "image", "inspect", "--format", "{{.Id}} {{.Digest}}", image])
        if code != 0:
            raise IsobenchError(
                f"runner {self.name}: image {image} not found ({out.splitlines()[-1][:200] if out else code}); "
                f"build it or pull it first"
            )
        parts = out.split()
        return {
            "image_id": parts[0] if parts else None,
            "image_digest": parts[1] if len(parts) > 1 and parts[1] not in ("", "<none>") else None,
            "engine_version": _engine_out([self.engine, "version", "--format", "{{.Client.Version}}"])[1][:40]
            or None,
        }

    def remove(self, name: str | None) -> None:
        if name and shutil.which(self.engine):
            subprocess.run([self.engine, "rm", "--force", name], capture_output=True, timeout=120)


@register
class Podman(Docker):
    """podman takes docker's command line; its GPU is a CDI device."""

    name = engine = "podman"

    def gpu_flags(self, device: str) -> list[str]:
        return ["--device", f"nvidia.com/gpu={device}"]


@register
class Apptainer(Container):
    """apptainer exec of a SIF file (or a URL), everything contained, the environment cleaned."""

    name = engine = "apptainer"
    bind = "--bind"

    def gpu_flags(self, device: str) -> list[str]:
        return ["--nv"]

    def command(self, runner, workdir, mounts, env, network, image, name, device, limits) -> list[str]:
        cmd = [self.engine, "exec", "--containall", "--cleanenv", "--no-home", "--pwd", str(workdir)]
        cmd += runner.gpu_flags(device)
        cmd += ["--net", "--network", "none"] if network == "isolate" else []
        return cmd + self.mounts_env_image(runner, mounts, env, image)

    def image_facts(self, image: str) -> dict:
        if not Path(image).exists() and "://" not in image:
            raise IsobenchError(f"runner apptainer: image {image} not found")
        return {}


def remove(kind: str | None, name: str | None) -> None:
    """Remove the container ``name`` of a run of ``kind`` (as the sandbox recorded them), if it has one."""
    if kind in KINDS and name:
        KINDS[kind].remove(name)


def _engine_out(argv: list[str], timeout: float = 120) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]} did not answer within {timeout:g} s"
    return proc.returncode, (proc.stdout if proc.returncode == 0 else proc.stderr).strip()
