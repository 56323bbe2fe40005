"""Run one command of a generated test inside isobench's sandbox (standard library only).

    python sandbox_exec.py --report R --token T --write DIR [--write DIR ...] [--read DIR ...] [--dev PATH ...]
        [--block-tcp | --loopback] [--timeout S] [--nproc N] [--fsize BYTES] [--pid-namespace] -- CMD ...

Copied next to the harness and run by the revision's own Python, inside bubblewrap's mount namespace (or
``unshare``'s namespaces where bubblewrap is missing; isobench/measure/view.py decides what the test sees).
With Landlock, where the kernel has it, it restricts the filesystem writes of itself and everything it starts
to the ``--write`` folders and the ``--dev`` device files (never the rest of /dev: no raw disk), and, when
``--read`` folders are given (no mount namespace of our own), reads to those folders too, so a secret file of
the host gives PermissionError; it blocks TCP connect/bind where Landlock can (ABI >= 4) or, in a network
namespace of its own (``--loopback``), brings that namespace's loopback up instead. It limits the processes
(``--nproc``, RLIMIT_NPROC: enforced for a user that is not the host's root) and the size of any one file
written (``--fsize``, RLIMIT_FSIZE), runs CMD as its child, kills CMD at ``--timeout`` seconds even when
whatever started the sandbox is gone, and when CMD ends kills every process still carrying the sandbox token
in its environment (children that outlived the test). It writes what was in force, and the count of
processes left behind, to R, and exits with CMD's status (128 + signal when CMD was killed by a signal). In a
PID namespace of its own, whatever is left when it exits is killed by the kernel, even processes that dropped
the token.
"""

import argparse
import ctypes
import fcntl
import json
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import threading

# Landlock (linux/landlock.h); x86_64 and aarch64 syscall numbers.
_SYSCALLS = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}
_FS_WRITE = 0
for _bit in (
    1,
    4,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    12,
):  # write file, remove dir/file, make char/dir/reg/sock/fifo/block/sym
    _FS_WRITE |= 1 << _bit
_FS_REFER, _FS_TRUNCATE = 1 << 13, 1 << 14
_FS_READ = (1 << 2) | (1 << 3)  # read file, read dir
_FILE_RIGHTS = (1 << 0) | (1 << 1) | (1 << 2) | _FS_TRUNCATE  # what a rule on a file (not a folder) may name
_NET_BIND_TCP, _NET_CONNECT_TCP = 1, 2
_PR_SET_NO_NEW_PRIVS = 38


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi():
    """The kernel's Landlock ABI version (0 where there is none): asked without restricting anything."""
    numbers = _SYSCALLS.get(os.uname().machine)
    if numbers is None or not sys.platform.startswith("linux"):
        return 0
    abi = ctypes.CDLL(None, use_errno=True).syscall(numbers[0], None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    return max(abi, 0)


def _rule(libc, add_rule, ruleset, path, access):
    """Add one path-beneath rule; a missing path is skipped (None), an error is returned as text."""
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not os.path.isdir(path):
            access &= _FILE_RIGHTS  # a rule on a file may only name file rights
        rule = _PathBeneath(access, fd)
        ok = libc.syscall(
            add_rule, ctypes.c_int(ruleset), ctypes.c_int(1), ctypes.byref(rule), ctypes.c_uint32(0)
        )
        return None if ok >= 0 else "landlock_add_rule %s: %s" % (path, os.strerror(ctypes.get_errno()))
    finally:
        os.close(fd)


def landlock(write_dirs, block_tcp, read_dirs=(), devices=("/dev",)):
    """Restrict writes to ``write_dirs`` and the ``devices`` (files or folders under /dev), reads too when
    ``read_dirs`` are given (then only they, the write folders and the devices are readable), TCP when asked;
    returns what is in force."""
    state = {
        "landlock_abi": 0,
        "fs_write_restricted": False,
        "fs_read_restricted": False,
        "tcp_blocked": False,
        "landlock_error": None,
    }
    numbers = _SYSCALLS.get(os.uname().machine)
    if numbers is None or not sys.platform.startswith("linux"):
        state["landlock_error"] = "not available on this platform"
        return state
    create, add_rule, restrict = numbers
    libc = ctypes.CDLL(None, use_errno=True)
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        state["landlock_error"] = "kernel without Landlock: " + os.strerror(ctypes.get_errno())
        return state
    state["landlock_abi"] = abi
    write = _FS_WRITE | (_FS_REFER if abi >= 2 else 0) | (_FS_TRUNCATE if abi >= 3 else 0)
    read = _FS_READ if read_dirs else 0
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if (block_tcp and abi >= 4) else 0
    attr = (ctypes.c_uint64 * 2)(write | read, net)
    ruleset = libc.syscall(create, ctypes.byref(attr), ctypes.c_size_t(16 if net else 8), ctypes.c_uint32(0))
    if ruleset < 0:
        state["landlock_error"] = "landlock_create_ruleset: " + os.strerror(ctypes.get_errno())
        return state
    rules = [(d, read) for d in read_dirs] + [(d, write | read) for d in list(write_dirs) + list(devices)]
    try:
        for path, access in rules:
            error = _rule(libc, add_rule, ruleset, path, access)
            if error:
                state["landlock_error"] = error
                return state
        if (
            libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
            or libc.syscall(restrict, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0
        ):
            state["landlock_error"] = "landlock_restrict_self: " + os.strerror(ctypes.get_errno())
            return state
    finally:
        os.close(ruleset)
    state["fs_write_restricted"], state["tcp_blocked"] = True, bool(net)
    state["fs_read_restricted"] = bool(read)
    return state


def limits(nproc, fsize):
    """RLIMIT_NPROC and RLIMIT_FSIZE for this process and what it starts; returns what was set."""
    done = {"max_processes": None, "max_file_bytes": None}
    for key, which, value in (
        ("max_processes", resource.RLIMIT_NPROC, nproc),
        ("max_file_bytes", resource.RLIMIT_FSIZE, fsize),
    ):
        if value:
            try:
                resource.setrlimit(which, (value, value))
                done[key] = value
            except (OSError, ValueError):
                pass
    return done


_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up():
    """Bring up ``lo`` of this (new, empty) network namespace: the test's own 127.0.0.1. Returns an error or None."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            flags = struct.unpack(
                "16sH14s", fcntl.ioctl(sock, _SIOCGIFFLAGS, struct.pack("16sH14s", b"lo", 0, b""))
            )[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | _IFF_UP, b""))
        return None
    except OSError as exc:
        return "loopback: %s" % exc


def _local_pid(entry):
    """The PID of /proc/<entry> as this process's PID namespace numbers it (the last of NSpid)."""
    try:
        with open("/proc/%s/status" % entry) as fh:
            for line in fh:
                if line.startswith("NSpid:"):
                    return int(line.split()[-1])
    except (OSError, ValueError):
        pass
    return int(entry)


def carriers(token):
    """PIDs (as this process sees them) of live processes, not this one, whose environment holds the token.

    /proc may be the host's while this process is in a new PID namespace: its entries are then
    host PIDs, which os.kill would not find here."""
    needle = ("ISOBENCH_SANDBOX=" + token).encode()
    me = os.readlink("/proc/self") if os.path.exists("/proc/self") else str(os.getpid())
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or entry == me:
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(_local_pid(entry))
        except OSError:
            continue
    return found


def sweep(token):
    """Kill every process carrying the token; return how many there were."""
    killed = set()
    for _ in range(3):  # a process may fork while we kill: look again
        pids = [p for p in carriers(token) if p not in killed]
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except OSError:
                pass
    return len(killed)


def watch_lifeline(fd, child, state):
    """Kill the test when the measure job is gone, however it died (``kill -9`` included): the job holds the
    only writer of this pipe, so its end is the end of file here."""
    try:
        while os.read(fd, 64):
            pass
    except OSError:
        pass
    state["lifeline_cut"] = True
    try:
        child.kill()
    except OSError:
        pass


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--report", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--write", action="append", default=[])
    parser.add_argument("--read", action="append", default=[], help="restrict reads to these (and --write)")
    parser.add_argument("--dev", action="append", default=None, help="device files the test may use")
    parser.add_argument("--block-tcp", action="store_true")
    parser.add_argument(
        "--loopback", action="store_true", help="bring up lo of this process's network namespace"
    )
    parser.add_argument("--cpu", type=int, help="pin the test (and what it starts) to this CPU")
    parser.add_argument("--timeout", type=float, help="kill the test after this many seconds")
    parser.add_argument("--nproc", type=int, help="RLIMIT_NPROC of the test")
    parser.add_argument("--fsize", type=int, help="RLIMIT_FSIZE of the test (bytes)")
    parser.add_argument("--pid-namespace", action="store_true", help="this launcher has a PID namespace")
    parser.add_argument(
        "--lifeline", type=int, help="a pipe whose writer is the measure job: its end ends the test"
    )
    parser.add_argument("cmd", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    loopback_error = loopback_up() if args.loopback else None  # before Landlock; needs the namespace's root
    state = landlock(
        [os.path.abspath(d) for d in args.write],
        args.block_tcp,
        [os.path.abspath(d) for d in args.read],
        ["/dev"] if args.dev is None else args.dev,
    )
    state["loopback"] = bool(args.loopback) and loopback_error is None
    state["loopback_error"] = loopback_error
    state["pid_namespace"] = os.getpid() == 1 or args.pid_namespace
    state.update(limits(args.nproc, args.fsize))
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        try:
            os.sched_setaffinity(0, {args.cpu})
        except OSError:
            pass
    # Only the test and what it starts carry the token (not this launcher, nor what started it).
    child = subprocess.Popen(cmd, env={**os.environ, "ISOBENCH_SANDBOX": args.token})
    forward = lambda signum, frame: child.send_signal(signum)  # noqa: E731
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    state["lifeline_cut"] = False
    if args.lifeline is not None:
        threading.Thread(target=watch_lifeline, args=(args.lifeline, child, state), daemon=True).start()
    state["timed_out"] = False
    try:
        returncode = child.wait(timeout=args.timeout)
    except subprocess.TimeoutExpired:  # the round's limit, enforced here too: nothing outside may be left
        child.kill()
        returncode = child.wait()
        state["timed_out"] = True
    state["left_processes"] = sweep(args.token)
    state["returncode"] = returncode
    with open(args.report, "w") as fh:
        json.dump(state, fh)
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
