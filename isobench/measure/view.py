"""What a test sees of the host: the folders it may read and write, the device files it may open, and the files
of the host it must not read.

With bubblewrap (Debian's ``bubblewrap``, Flatpak's sandbox) the view is a mount namespace of its own
(``bwrap_argv``): the system folders and /etc read-only, every file of /etc that the host keeps from other
users (not world-readable: shadow, gshadow, private keys, ...) covered so that reading it gives
PermissionError, the revision's worktree, environment and interpreter read-only, the job's data folder (its
round folders, references and compile caches) writable, a private /tmp and /dev/shm of a fixed size, gone with
the round, a minimal /dev (null, zero, full, random, urandom, tty; the NVIDIA devices and /dev/dri only when the
job holds a GPU), a /proc of its own PID namespace and the parts of /sys that drivers read. No home folder,
/root, /run, /var/run or host socket exists in it. Without bubblewrap (``unshare``) the same lists become
Landlock rules (``landlock_args``): reads and writes outside them give PermissionError, but host sockets stay
reachable and /tmp and /dev/shm are the host's (the run's first lines say so).
"""

from __future__ import annotations

import glob
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
SYSFS = ("/sys/block", "/sys/bus", "/sys/class", "/sys/dev", "/sys/devices")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
GPU_DEVICES = ("/dev/nvidia*", "/dev/dri")


@dataclass(frozen=True)
class View:
    """The test's file system: ``read`` and ``write`` folders (bound at the same path), GPU ``devices``."""

    read: tuple[Path, ...]
    write: tuple[Path, ...]
    devices: tuple[str, ...] = ()
    tmpfs_bytes: int = 1 << 30  # the private /tmp and /dev/shm, each
    network: bool = False  # network: allow (the host's resolver configuration is needed)
    hidden: tuple[str, ...] = ()  # files inside the read folders the test must not read (a Hub token)


@cache
def bwrap_works() -> str | None:
    """Why bubblewrap cannot sandbox a test here (None: it can): missing, refused by the kernel, or too old for
    the options ``bwrap_argv`` uses (``--size`` and ``--perms`` with ``--tmpfs``: bubblewrap 0.8)."""
    exe = shutil.which("bwrap")
    if not exe:
        return "bubblewrap (bwrap) is not installed"
    argv = [
        exe,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--cap-drop",
        "ALL",
        "--ro-bind",
        "/",
        "/",
    ]
    argv += ["--proc", "/proc", "--dev", "/dev", "--size", "1048576", "--tmpfs", "/tmp"]
    argv += ["--perms", "0000", "--tmpfs", "/tmp/hidden", "--remount-ro", "/tmp/hidden", "true"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap does not run: {exc}"
    if proc.returncode != 0:
        why = (proc.stderr.strip().splitlines() or ["?"])[-1][:200]
        return f"bwrap cannot make isobench's sandbox here ({why}; bubblewrap 0.8 or newer is needed)"
    return None


def hub_tokens(folders) -> tuple[str, ...]:
    """The Hugging Face token files inside the cache folders a test may read (hidden from it)."""
    names = ("token", "stored_tokens")
    return tuple(str(Path(f) / n) for f in folders for n in names if (Path(f) / n).is_file())


def _kept_from_others(st: os.stat_result) -> bool:
    """A file others may not read, or a folder they may not list and enter."""
    if stat.S_ISDIR(st.st_mode):
        return st.st_mode & 0o005 != 0o005
    if stat.S_ISREG(st.st_mode):
        return not st.st_mode & 0o004
    return False


@cache
def hidden_system_files(root: str = "/etc") -> tuple[str, ...]:
    """Entries under ``root`` the host keeps from other users (the test never reads them, even when the run is
    root, whose files a user namespace would otherwise hand to the test): /etc/shadow, /etc/ssl/private, ..."""
    hidden = []
    for folder, dirs, files in os.walk(root):
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(folder, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if _kept_from_others(st):
                hidden.append(path)
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in hidden]
    return tuple(hidden)


def readable_parts(root: str, hidden: tuple[str, ...]) -> list[str]:
    """The entries of ``root`` that hold nothing hidden, descending only into folders that do (Landlock rules
    allow, never deny: /etc less /etc/shadow is every other entry of /etc)."""
    if os.path.islink(root):  # a rule would follow it to its target; Landlock checks the target when used
        return []
    if not any(h == root or h.startswith(root + "/") for h in hidden):
        return [root]
    if root in hidden or not os.path.isdir(root):
        return []
    out = []
    for name in sorted(os.listdir(root)):
        out += readable_parts(os.path.join(root, name), hidden)
    return out


# Folders never bound whole (a folder above one of them neither): what holds the host's sockets, homes, devices.
NEVER_WHOLE = (
    "/",
    "/run",
    "/var",
    "/home",
    "/root",
    "/proc",
    "/sys",
    "/dev",
    "/tmp",
    "/etc",
    "/mnt",
    "/media",
)


def bindable(path: str | Path) -> Path | None:
    """``path`` as it may be shown to a test (its real path), or None: missing, or one of ``NEVER_WHOLE`` or a
    folder above one (binding ``/``, ``/var`` or ``/root`` would bring the host's sockets and homes along)."""
    real = os.path.realpath(path)
    if not os.path.exists(real):
        return None
    if any(real == n or n.startswith(real.rstrip("/") + "/") for n in NEVER_WHOLE):
        return None
    return Path(real)


@cache
def python_folders(python: str) -> tuple[Path, ...]:
    """The folders the revision's interpreter needs, found without running it (its environment was built from
    the revision's code: running it outside the sandbox would run that code): its own prefix (a venv's, by
    ``pyvenv.cfg``) and the installation its real executable belongs to (``<prefix>/bin/python3.x``)."""
    exe = Path(os.path.abspath(python))
    folders = {exe.parent.parent, Path(os.path.realpath(exe)).parent.parent}
    cfg = exe.parent.parent / "pyvenv.cfg"
    try:
        for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                folders.add(Path(value.strip()).parent)  # home = <base prefix>/bin
    except OSError:
        pass
    return tuple(sorted({b for f in folders if (b := bindable(f))}))


def program_folders(env: dict) -> list[Path]:
    """Folders the test's variables name for programs and libraries (CUDA_HOME, LD_LIBRARY_PATH)."""
    names = [env.get("CUDA_HOME"), env.get("CUDA_PATH"), *env.get("LD_LIBRARY_PATH", "").split(os.pathsep)]
    return [b for p in names if p and os.path.isdir(p) and (b := bindable(p))]


def gpu_devices() -> tuple[str, ...]:
    """The NVIDIA device files and /dev/dri of this host (bound only for a job that holds a GPU)."""
    return tuple(sorted(p for pattern in GPU_DEVICES for p in glob.glob(pattern)))


def _depth_sorted(view: View) -> list[tuple[Path, bool]]:
    """The binds, parents before what lies inside them (a writable folder inside a read-only one stays
    writable), each path once (writable wins)."""
    binds: dict[Path, bool] = {}
    for path in view.read:
        binds.setdefault(Path(os.path.abspath(path)), False)
    for path in view.write:
        binds[Path(os.path.abspath(path))] = True
    ordered = sorted(binds.items(), key=lambda kv: (len(kv[0].parts), str(kv[0])))
    kept: list[tuple[Path, bool]] = []
    for path, writable in ordered:
        nearest = next((w for a, w in reversed(kept) if path.is_relative_to(a)), None)
        if nearest is None or nearest != writable:  # inside a bind of the same kind: nothing to add
            kept.append((path, writable))
    return kept


def bwrap_argv(view: View, workdir: Path) -> list[str]:
    """bubblewrap's command line for ``view`` (the launcher and the test follow it after ``--``)."""
    argv = ["bwrap", "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    argv += ["--share-net"] if view.network else []
    argv += ["--hostname", "isobench"]
    for folder in SYSTEM:
        if os.path.islink(folder):
            argv += ["--symlink", os.readlink(folder), folder]
        elif os.path.isdir(folder):
            argv += ["--ro-bind", folder, folder]
    resolver = os.path.realpath("/etc/resolv.conf")
    if view.network and not resolver.startswith(
        "/etc/"
    ):  # systemd's: the file alone, not its folder's sockets
        argv += ["--ro-bind-try", resolver, resolver]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for folder in SYSFS:
        argv += ["--ro-bind-try", folder, folder]
    size = str(view.tmpfs_bytes)
    argv += ["--size", size, "--tmpfs", "/dev/shm", "--size", size, "--tmpfs", "/tmp"]
    for device in view.devices:
        argv += ["--dev-bind-try", device, device]
    for path, writable in _depth_sorted(view):
        argv += ["--bind-try" if writable else "--ro-bind-try", str(path), str(path)]
    for path in (*hidden_system_files(), *view.hidden):
        if os.path.isdir(path) and not os.path.islink(path):
            argv += ["--perms", "0000", "--tmpfs", path, "--remount-ro", path]
        else:
            argv += ["--ro-bind", "/dev/null", path]  # a device on a nodev mount: PermissionError
    # the root bubblewrap builds its view in is a tmpfs without a size: read-only once built
    return argv + ["--remount-ro", "/", "--chdir", str(workdir)]


def landlock_args(view: View) -> list[str]:
    """The launcher's arguments that make ``view`` Landlock rules (no mount namespace of our own): reads and
    writes outside it refused, the devices narrowed to ``DEVICES`` (and the GPU's)."""
    reads: list[str] = []
    for folder in SYSTEM:
        reads += readable_parts(folder, hidden_system_files()) if folder == "/etc" else [folder]
    reads += ["/proc", "/sys"]
    for folder in view.read:
        reads += readable_parts(str(folder), view.hidden)
    devices = [f"/dev/{d}" for d in DEVICES] + ["/dev/pts", "/dev/ptmx", "/dev/shm", *view.devices]
    args = [a for path in reads for a in ("--read", path)]
    args += [a for path in devices for a in ("--dev", path)]
    return args


def bwrap_devices(view: View) -> list[str]:
    """The launcher's ``--dev`` arguments inside bubblewrap or a container: /dev is minimal there, /dev/shm and
    /tmp private."""
    devices = [f"/dev/{d}" for d in DEVICES] + ["/dev/pts", "/dev/ptmx", "/dev/shm", "/tmp", *view.devices]
    return [a for path in devices for a in ("--dev", path)]
