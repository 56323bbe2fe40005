"""The sandbox every run of a generated test goes through (measurement rounds and smoke runs).

- file system: what the test sees is isobench/measure/view.py's ``View``: with bubblewrap a mount namespace of
  its own (system folders and /etc read-only less the host's secret files, the revision's tree, environment
  and interpreter read-only, the job's data folder writable, a private size-limited /tmp and /dev/shm, a
  minimal /dev, no home folder, /root, /run or host socket); without it (``unshare``) the same lists as
  Landlock rules. Either way Landlock narrows writes to the data folder and a few device files (never a disk);
- environment: an allow-list (locale, PATH, CUDA/NVIDIA and thread-count variables, the Hugging Face cache
  and offline variables, plus what the config adds); a name that looks like a secret (KEY, TOKEN, SECRET,
  PASSWORD, CREDENTIAL, HF_..., AWS_...) never passes, even when allowed, except the few Hugging Face
  variables known to hold no secret (``NOT_SECRET``); HOME, TMPDIR and caches point into the round's own
  folder, except the compile caches (Triton, Inductor, CUDA, vLLM), which persist across the rounds of
  one job in a folder per revision (``compile_cache``), and a configured read-only ``model_cache``;
- network: a new network (and PID, IPC, UTS and user) namespace, with its own loopback up: a server the test
  starts on 127.0.0.1 is reachable by the test, the host's services and the outside are not. Where no network
  namespace can be had, Landlock blocks TCP (ABI >= 4);
- processes and lifetime: the run is its own session, killed as a group at the time limit, which the launcher
  inside enforces too; the sandbox dies with the measure job that started it (bubblewrap's
  ``--die-with-parent``, ``setpriv --pdeathsig`` for unshare), and in its PID namespace nothing outlives it; a
  process limit (RLIMIT_NPROC, or a pids cgroup for a root run: isobench/measure/cgroups.py), a largest file
  (RLIMIT_FSIZE), and a floor of free disk below which the run is stopped (isobench/measure/process.py);
- output: stdout and stderr kept up to a cap (the head and the tail), the rest counted and dropped
  (isobench/measure/process.py: the ``Run`` of one sandboxed process and its ``SandboxOutcome``).

What was in force is recorded in every timing file (``sandbox``). Runners ``docker``, ``podman`` and
``apptainer`` put the same command in the revision's container (isobench/measure/runners.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..secrecy import NOT_SECRET, looks_secret
from ..settings import schema_settings
from . import cgroups, sandbox_exec, view
from .process import Run
from .runners import Runner

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
    backend: (
        str  # auto (bubblewrap where it works, else unshare), bubblewrap or unshare: a local run's sandbox
    )
    read_allow: tuple[str, ...]  # more folders the test may read (e.g. a dataset the tests load)
    tmpfs_mb: float  # the private /tmp and /dev/shm, each
    max_processes: int  # processes and threads of one run
    max_file_mb: float  # the largest file a test may write
    min_free_disk_mb: float  # a run is stopped when the disk holding its folder has less free

    @property
    def cap_bytes(self) -> int:
        return int(self.output_cap_mb * 1024 * 1024)

    def local_backend(self) -> str:
        """bubblewrap or unshare: what isolates a local run here (auto: bubblewrap where it works)."""
        if self.backend == "auto":
            return "bubblewrap" if view.bwrap_works() is None else "unshare"
        return self.backend


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
    if runner.impl.container:
        return []
    if settings.local_backend() == "bubblewrap":
        why = view.bwrap_works()
        return [f"sandbox.backend bubblewrap: {why}"] if why else []
    gaps = []
    if not namespace_prefix(settings.network == "isolate"):
        gaps.append(
            "no PID" + (" and network" if settings.network == "isolate" else "") + " namespace (unshare)"
        )
    if sandbox_exec.landlock_abi() < 1:
        gaps.append("no Landlock (filesystem writes not restricted)")
    gaps.append(
        f"no bubblewrap ({view.bwrap_works() or 'sandbox.backend: unshare'}): the host's unix sockets are "
        "reachable and /tmp and /dev/shm are shared; install bubblewrap (apt-get install bubblewrap)"
    )
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


# The launcher's own limit is the backstop of the measure job's: a little later, for when the job is gone.
INSIDE_GRACE_S = 5.0


class Sandbox:
    """Runs commands of one measure job or smoke run; ``data`` is the writable folder for references."""

    def __init__(
        self, settings: SandboxSettings, runner: Runner, code: Path, data: Path, device: str | None = None
    ):
        """``code``: the test and the workers, with ``sandbox_exec.py`` (read-only to the test); ``data``: where
        it may write; ``device``: the GPU the job holds (isobench/measure/gpu.py): a container gets it, and
        only it; a local run sees the GPU's device files only then."""
        self.settings, self.runner, self.code, self.data = settings, runner, code, data
        self.device = device
        self.backend = runner.kind if runner.impl.container else settings.local_backend()
        self.namespaces = namespace_prefix(settings.network == "isolate") if self.backend == "unshare" else ()

    @property
    def own_loopback(self) -> bool:
        """Network isolation by a namespace of our own (bubblewrap, local unshare --net, or a container's
        ``none`` network): its loopback is the test's, so TCP on 127.0.0.1 stays allowed."""
        if self.settings.network != "isolate":
            return False
        return "--net" in self.namespaces or self.backend != "unshare"

    def environment(self, workdir: Path, extra_env: dict) -> dict:
        home = workdir / "home"
        env = {
            **allowed_env(self.settings),
            **extra_env,
            "HOME": str(home),
            "TMPDIR": "/tmp" if self.backend == "bubblewrap" else str(workdir / "tmp"),
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

    def view(self, command: Command, env: dict) -> view.View:
        """What the test of ``command`` sees of the host (isobench/measure/view.py); every folder by its real
        path, none that would bring the host's sockets or homes along (``view.bindable``)."""
        s = self.settings
        caches = cache_mounts(env)
        read = [self.code, *command.read_only, *caches, *view.program_folders(env), *s.read_allow]
        read += [s.model_cache] if s.model_cache else []
        if not self.runner.impl.container:
            read += view.python_folders(command.python)
        write = [self.data, *s.write_allow]  # the round's folder is in data
        return view.View(
            read=tuple(b for p in read if (b := view.bindable(p))),
            write=tuple(b for p in write if (b := view.bindable(p))),
            devices=view.gpu_devices() if self.device else (),
            tmpfs_bytes=int(s.tmpfs_mb * 2**20),
            network=s.network != "isolate",
            hidden=view.hub_tokens(caches),
        )

    def prepare(self, command: Command, limit_s: float, cpu: int | None = None):
        """(argv, env, token, container facts or None, cgroup or None) of ``command`` in the sandbox (in its
        image with a container runner), killed by the launcher inside after ``limit_s`` seconds."""
        token = uuid.uuid4().hex
        workdir = command.workdir
        for d in (workdir / "home", workdir / "tmp"):
            d.mkdir(parents=True, exist_ok=True)
        env = self.environment(workdir, command.env)
        seen = self.view(command, env)
        s = self.settings
        inner = [
            command.python,
            str(self.code / "sandbox_exec.py"),
            "--report",
            str(workdir / "sandbox.json"),
            "--token",
            token,
            "--timeout",
            f"{limit_s + INSIDE_GRACE_S:g}",
            "--nproc",
            str(s.max_processes),
            "--fsize",
            str(int(s.max_file_mb * 2**20)),
        ]
        inner += [a for folder in seen.write for a in ("--write", str(folder))]
        if self.backend == "unshare":
            inner += view.landlock_args(seen)
        else:  # bubblewrap and containers: a minimal /dev, a private /tmp and /dev/shm
            inner += view.bwrap_devices(seen) + (["--pid-namespace"] if self.backend == "bubblewrap" else [])
        if self.own_loopback:  # bubblewrap and container engines bring their loopback up themselves
            inner += ["--loopback"] if self.backend == "unshare" else []
        elif s.network == "isolate":
            inner += ["--block-tcp"]  # no namespace of our own: Landlock refuses TCP altogether
        inner += ["--cpu", str(cpu)] if cpu is not None else []
        group = None if self.runner.impl.container else cgroups.make(token, s.max_processes)
        if self.backend == "bubblewrap":
            outer = view.bwrap_argv(seen, workdir)
        elif self.backend == "unshare":
            outer = ["setpriv", "--pdeathsig", "KILL", *self.namespaces] if self.namespaces else []
        else:
            chosen = [*command.read_only, *cache_mounts(env), *s.read_allow]
            chosen += [s.model_cache] if s.model_cache else []
            mounts = [(self.code, False)] + [(p, True) for p in seen.write]
            mounts += [(b, False) for p in chosen if (b := view.bindable(p))]
            mounts += [(Path(h), None) for h in seen.hidden]  # covered: an empty file in its place
            name = self.runner.impl.container_name(token)
            outer = self.runner.prefix(workdir, mounts, env, s.network, command.image, name, self.device, s)
            facts = self.runner.protections(
                command.image or self.runner.image, name, mounts, s.network, self.device, s
            )
            return [*outer, *inner, "--", *command.argv], env, token, facts, group
        if group is not None:  # the first process joins the run's cgroup before it starts anything
            join = f'echo $$ > {shlex.quote(str(group / "cgroup.procs"))} && exec "$@"'
            outer = ["sh", "-c", join, "sh", *outer]
        return [*outer, *inner, "--", *command.argv], env, token, None, group

    def popen(
        self,
        command: Command,
        limit_s: float,
        stdin=None,
        stdout_pipe: bool = False,
        cpu: int | None = None,
    ) -> Run:
        """Start ``command`` sandboxed in its own session; stderr (and stdout unless piped) are captured.
        ``limit_s``: the launcher inside kills the test after it, even when this process is gone."""
        command.workdir.mkdir(parents=True, exist_ok=True)
        (command.workdir / "sandbox.json").unlink(missing_ok=True)
        argv, env, token, facts, group = self.prepare(command, limit_s, cpu)
        # The lifeline: this process holds the pipe's only writer, the launcher inside reads it; when this
        # process dies, however (kill -9), the launcher kills the test. Not through a container engine.
        lifeline = os.pipe() if facts is None else None
        if lifeline:
            at = argv.index("--report")
            argv = [*argv[:at], "--lifeline", str(lifeline[0]), *argv[at:]]
        # A container engine runs with this process's environment (its own configuration, storage, runtime);
        # the test inside gets only ``env``, passed with --env.
        popen = subprocess.Popen(
            argv,
            cwd=command.workdir,
            env=env if facts is None else dict(os.environ),
            stdin=subprocess.DEVNULL if stdin is None else stdin,  # never the job's terminal
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            bufsize=0 if stdout_pipe else -1,
            pass_fds=(lifeline[0],) if lifeline else (),
        )
        if lifeline:
            os.close(lifeline[0])
        return Run(
            popen,
            command.workdir,
            token,
            facts,
            self.settings.cap_bytes,
            self.protections,
            capture_stdout=not stdout_pipe,
            cgroup=group,
            disk_floor=(self.data, int(self.settings.min_free_disk_mb * 2**20)),
            lifeline=lifeline[1] if lifeline else None,
        )

    def run(self, command: Command, timeout_s: float) -> Run:
        """Run to the end or the time limit (``Run.returncode`` None: killed at the limit)."""
        return self.popen(command, timeout_s).wait(timeout_s)

    def protections(self, state: dict, container: dict | None, run: dict) -> dict:
        """What was in force for a run (``state``: what the launcher inside reported; ``run``: what the
        process watching it saw: its cgroup)."""
        s = self.settings
        local = not self.runner.impl.container
        mount_ns = self.backend == "bubblewrap" or not local
        return {
            "runner": self.runner.kind,
            "backend": self.backend,
            "env_allowlist": True,
            "network_isolated": (bool(self.namespaces) or self.backend != "unshare")
            and s.network == "isolate",
            "tcp_blocked": bool(state.get("tcp_blocked")),
            "own_loopback": bool(state.get("loopback")) or (self.own_loopback and self.backend != "unshare"),
            "compile_cache": s.compile_cache,
            "model_cache": s.model_cache,
            "hf_offline": os.environ.get("HF_HUB_OFFLINE") or ("1" if s.network == "isolate" else None),
            "pid_namespace": bool(state.get("pid_namespace")) or self.runner.impl.own_pid_namespace,
            "mount_namespace": mount_ns,
            "host_sockets_hidden": mount_ns,
            "private_tmp": mount_ns,
            "private_dev_shm": mount_ns,
            "tmpfs_mb": s.tmpfs_mb if mount_ns else None,
            "minimal_dev": mount_ns or bool(state.get("fs_write_restricted")),
            "gpu_devices": bool(self.device),
            "hidden_system_files": len(view.hidden_system_files()) if local else None,
            "fs_write_restricted": bool(state.get("fs_write_restricted")) or mount_ns,
            "fs_read_restricted": bool(state.get("fs_read_restricted")) or mount_ns,
            "own_home": True,
            "kills_process_group": True,
            "dies_with_job": local,
            "limit_inside": True,
            "max_processes": s.max_processes,
            "max_processes_by": run.get("max_processes_by")
            or ("rlimit" if state.get("max_processes") and os.geteuid() != 0 else None),
            "max_file_mb": s.max_file_mb,
            "min_free_disk_mb": s.min_free_disk_mb,
            "output_cap_bytes": s.cap_bytes,
            "landlock_abi": state.get("landlock_abi", 0),
            "container": container,
        }
