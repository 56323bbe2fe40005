"""The sandbox every run of a generated test goes through (measurement rounds and smoke runs).

- environment: an allow-list (locale, PATH, CUDA/NVIDIA and thread-count variables, the Hugging Face cache
  and offline variables, plus what the config adds); a name that looks like a secret (KEY, TOKEN, SECRET,
  PASSWORD, CREDENTIAL, HF_..., AWS_...) never passes, even when allowed, except the few Hugging Face
  variables known to hold no secret (``NOT_SECRET``); HOME, TMPDIR and caches point into the round's own
  folder, except the compile caches (Triton, Inductor, CUDA, vLLM), which persist across the rounds of
  one job in a folder per revision (``compile_cache``), and a configured read-only ``model_cache``;
- network: a new network (and PID, and user) namespace with ``unshare`` where the OS allows it, with its
  own loopback up: a server the test starts on 127.0.0.1 is reachable by the test, the host's services
  and the outside are not. Where no network namespace can be had, Landlock blocks TCP (ABI >= 4);
- filesystem: writes only under the round's folder, the data folder and /dev (Landlock);
- processes: the run is its own session, killed as a group at the time limit; in a PID namespace
  nothing outlives it; without one, processes still carrying the run's token are killed;
- output: stdout and stderr kept up to a cap (the head and the tail), the rest counted and dropped
  (isobench/measure/process.py: the ``Run`` of one sandboxed process and its ``SandboxOutcome``).

What was in force is recorded in every timing file (``sandbox``). Runners ``docker``, ``podman`` and
``apptainer`` put the same command in the revision's container (isobench/measure/containers.py).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..secrecy import NOT_SECRET, looks_secret
from ..settings import schema_settings
from . import containers, sandbox_exec
from .containers import Runner
from .process import Run

SAFE_ENV = (
    "PATH",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TERM",
    "CUDA_VISIBLE_DEVICES",
    "CUDA_HOME",
    "CUDA_PATH",
    "LD_LIBRARY_PATH",
    "NVIDIA_VISIBLE_DEVICES",
    "NVIDIA_DRIVER_CAPABILITIES",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "CUBLAS_WORKSPACE_CONFIG",
    *sorted(NOT_SECRET),  # the Hugging Face cache and offline variables
)
# The compile caches kept across the rounds of one job, one folder per revision (a variable -> its folder's name).
COMPILE_CACHES = {
    "TRITON_CACHE_DIR": "triton",
    "TORCHINDUCTOR_CACHE_DIR": "inductor",
    "CUDA_CACHE_PATH": "cuda",
    "VLLM_CACHE_ROOT": "vllm",
}


@schema_settings("sandbox")
class SandboxSettings:
    """What every run of a test is allowed (the config's ``sandbox`` block; defaults in the schema)."""

    network: str  # "isolate" or "allow"
    env_allow: tuple[str, ...]  # names, or prefixes ending in "*"
    write_allow: tuple[str, ...]  # more folders the test may write in (e.g. a shared compile cache)
    output_cap_mb: float
    require_isolation: bool  # refuse to run tests where namespaces or Landlock are missing
    compile_cache: bool  # Triton/Inductor/CUDA/vLLM caches persist across a job's rounds, per revision
    # a read-only Hugging Face hub cache (HF_HUB_CACHE) with the models the tests load
    model_cache: str | None

    @property
    def cap_bytes(self) -> int:
        return int(self.output_cap_mb * 1024 * 1024)


@dataclass(frozen=True)
class Command:
    """One command to run in the sandbox: for one revision (its Python, its image), in its round's folder."""

    argv: list[str]
    workdir: Path  # the round's own folder: HOME, TMPDIR, the captured output, the launcher's report
    env: dict  # the revision's variables (PYTHONPATH, the GPU slot, compile caches) over the allow-list
    read_only: list[Path]  # the worktree and environment a container runner mounts
    python: str  # the revision's interpreter, which runs the launcher too
    image: str | None = None  # the revision's container image


def allowed_env(settings: SandboxSettings, environ: dict | None = None) -> dict:
    environ = os.environ if environ is None else environ
    allow = SAFE_ENV + settings.env_allow

    def wanted(name: str) -> bool:
        return any(name == a or (a.endswith("*") and name.startswith(a[:-1])) for a in allow)

    return {k: v for k, v in environ.items() if wanted(k) and not looks_secret(k)}


def compile_cache_env(folder: Path) -> dict:
    """The variables that point the compilers' caches (Triton, Inductor, CUDA, vLLM) into ``folder``."""
    return {name: str(folder / sub) for name, sub in COMPILE_CACHES.items()}


def cache_mounts(env: dict) -> list[Path]:
    """Folders the Hugging Face variables name (a container runner mounts them read-only)."""
    names = ("HF_HOME", "HF_HUB_CACHE", "TRANSFORMERS_CACHE", "HF_DATASETS_CACHE")
    return sorted({Path(env[n]) for n in names if env.get(n) and Path(env[n]).is_dir()})


@cache
def namespace_prefix(net: bool = True) -> tuple[str, ...]:
    """The ``unshare`` command that gives a run a new PID namespace (and network namespace with ``net``) here,
    or () where none works. In its own PID namespace a test cannot see, nor read the environment of, the
    workflow's processes (which may hold API keys)."""
    if not shutil.which("unshare"):
        return ()
    flags = ("--net",) if net else ()
    for prefix in (
        ("unshare", "--user", "--map-root-user", *flags, "--pid", "--fork", "--kill-child"),
        ("unshare", *flags, "--pid", "--fork", "--kill-child"),
    ):
        try:
            if subprocess.run([*prefix, "true"], capture_output=True, timeout=20).returncode == 0:
                return prefix
        except (OSError, subprocess.TimeoutExpired):
            continue
    return ()


def isolation_gaps(settings: SandboxSettings, runner: Runner) -> list[str]:
    """What isolation this host cannot give a local run (a container runner isolates by itself)."""
    if runner.kind != "local":
        return []
    gaps = []
    if not namespace_prefix(settings.network == "isolate"):
        gaps.append(
            "no PID" + (" and network" if settings.network == "isolate" else "") + " namespace (unshare)"
        )
    if sandbox_exec.landlock_abi() < 1:
        gaps.append("no Landlock (filesystem writes not restricted)")
    return gaps


def isolation_refusal(settings: SandboxSettings, runner: Runner) -> str | None:
    """Why no test may run here (None: it may): isolation is missing and sandbox.require_isolation is on."""
    gaps = isolation_gaps(settings, runner)
    if not gaps or not settings.require_isolation:
        return None
    return (
        f"isolation unavailable on this host ({'; '.join(gaps)}): no test is run; set "
        "sandbox.require_isolation: false to run tests without it"
    )


class Sandbox:
    """Runs commands of one measure job or smoke run; ``data`` is the writable folder for references."""

    def __init__(
        self, settings: SandboxSettings, runner: Runner, code: Path, data: Path, device: str | None = None
    ):
        """``code``: the test and the workers, with ``sandbox_exec.py`` (read-only to the test); ``data``: where
        it may write; ``device``: the GPU the job holds (isobench/measure/gpu.py): a container gets it, and
        only it."""
        self.settings, self.runner, self.code, self.data = settings, runner, code, data
        self.device = device
        self.namespaces = namespace_prefix(settings.network == "isolate") if runner.kind == "local" else ()

    @property
    def own_loopback(self) -> bool:
        """Network isolation by a namespace of our own (local unshare --net, or a container's ``none`` network):
        its loopback is the test's, so TCP on 127.0.0.1 stays allowed."""
        if self.settings.network != "isolate":
            return False
        return "--net" in self.namespaces or self.runner.kind != "local"

    def environment(self, workdir: Path, extra_env: dict) -> dict:
        home = workdir / "home"
        env = {
            **allowed_env(self.settings),
            **extra_env,
            "HOME": str(home),
            "TMPDIR": str(workdir / "tmp"),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "PYTHONNOUSERSITE": "1",
        }
        if self.settings.model_cache:
            cache = str(Path(self.settings.model_cache).resolve())
            env.update(HF_HUB_CACHE=cache, TRANSFORMERS_CACHE=cache)
        if self.settings.network == "isolate":
            # nothing could be downloaded anyway: fail fast, read the cache
            env.setdefault("HF_HUB_OFFLINE", "1")
        return env

    def prepare(self, command: Command, cpu: int | None = None):
        """(argv, env, token, container facts or None) of ``command`` in the sandbox (in its image with a
        container runner)."""
        token = uuid.uuid4().hex
        workdir = command.workdir
        for d in (workdir / "home", workdir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        env = self.environment(workdir, command.env)
        inner = [
            command.python,
            str(self.code / "sandbox_exec.py"),
            "--report",
            str(workdir / "sandbox.json"),
            "--token",
            token,
            "--write",
            str(workdir),
            "--write",
            str(self.data),
        ]
        for folder in self.settings.write_allow:
            inner += ["--write", str(Path(folder).resolve())]
        if self.own_loopback:
            inner += ["--loopback"] if self.runner.kind == "local" else []  # a container's lo is up already
        elif self.settings.network == "isolate":
            inner += ["--block-tcp"]  # no namespace of our own: Landlock refuses TCP altogether
        inner += ["--cpu", str(cpu)] if cpu is not None else []
        mounts = [(self.code, False), (self.data, True)] + [(p, False) for p in command.read_only]
        mounts += [(p, False) for p in cache_mounts(env)]
        mounts += [(Path(f).resolve(), True) for f in self.settings.write_allow]
        name = f"isobench-{token[:20]}" if self.runner.kind in containers.OCI else None
        image = command.image
        prefix = containers.runner_prefix(
            self.runner, workdir, mounts, env, self.settings.network, image, name, self.device
        )
        facts = (
            None
            if self.runner.kind == "local"
            else containers.protections(
                self.runner, image or self.runner.image, name, mounts, self.settings.network, self.device
            )
        )
        return [*self.namespaces, *prefix, *inner, "--", *command.argv], env, token, facts

    def popen(self, command: Command, stdin=None, stdout_pipe: bool = False, cpu: int | None = None) -> Run:
        """Start ``command`` sandboxed in its own session; stderr (and stdout unless piped) are captured."""
        command.workdir.mkdir(parents=True, exist_ok=True)
        (command.workdir / "sandbox.json").unlink(missing_ok=True)
        argv, env, token, facts = self.prepare(command, cpu)
        # A container engine runs with this process's environment (its own configuration, storage, runtime);
        # the test inside gets only ``env``, passed with --env.
        popen = subprocess.Popen(
            argv,
            cwd=command.workdir,
            env=env if facts is None else dict(os.environ),
            stdin=stdin,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            bufsize=0 if stdout_pipe else -1,
        )
        cap = self.settings.cap_bytes
        return Run(
            popen, command.workdir, token, facts, cap, self.protections, capture_stdout=not stdout_pipe
        )

    def run(self, command: Command, timeout_s: float) -> Run:
        """Run to the end or the time limit (``Run.returncode`` None: killed at the limit)."""
        return self.popen(command).wait(timeout_s)

    def protections(self, state: dict, container: dict | None) -> dict:
        """What was in force for a run (``state``: what the launcher inside reported)."""
        return {
            "runner": self.runner.kind,
            "env_allowlist": True,
            "network_isolated": (bool(self.namespaces) or self.runner.kind != "local")
            and self.settings.network == "isolate",
            "tcp_blocked": bool(state.get("tcp_blocked")),
            "own_loopback": bool(state.get("loopback"))
            or (self.own_loopback and self.runner.kind != "local"),
            "compile_cache": self.settings.compile_cache,
            "model_cache": self.settings.model_cache,
            "hf_offline": os.environ.get("HF_HUB_OFFLINE")
            or ("1" if self.settings.network == "isolate" else None),
            "pid_namespace": bool(state.get("pid_namespace")) or self.runner.kind in containers.OCI,
            "fs_write_restricted": bool(state.get("fs_write_restricted")),
            "own_home": True,
            "kills_process_group": True,
            "output_cap_bytes": self.settings.cap_bytes,
            "landlock_abi": state.get("landlock_abi", 0),
            "container": container,
        }
