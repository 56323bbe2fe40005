"""The Python environment of one revision SHA, built once and shared by every commit that needs it.

Modes:
- ``none``: the workflow's own Python; the worktree goes on PYTHONPATH (the demo's default).
  setup_commands and install_commands are recorded, not run (they would change the workflow's Python).
- ``venv``: a virtualenv per SHA (optionally seeing the system site-packages, so that a large torch
  is not copied), then the source's setup_commands and install_commands run in the worktree,
  templated with {sha}, {commit} (the same SHA), {worktree} and {python} (the venv's interpreter).
  The worktree is not put on PYTHONPATH: the install decides what is imported (a wheel with compiled
  extensions must not be shadowed by the sources).
- ``image``: the source's container image is the environment (runner docker, podman or apptainer): its
  Python runs the test, with its packages, and the worktree (mounted read-only) on PYTHONPATH. The image
  may name the revision (``myorg/vllm:{sha}``); it must exist and run its Python before anything is
  measured (else the marker says failed, with one line: engine missing, image not found, no Python), and
  the marker records its ID and digest and the engine (isobench/measure/runners.py).

An optional verify_command (same placeholders; run outside the worktree, so that it imports what
was installed) checks the result, e.g. that the installed version is the SHA's. A failing command makes
the marker say ``failed`` with the error; its output is in the log,
and the revisions measured with it get category ``env_failed`` while everything else goes on.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .errors import IsobenchError
from .measure.runners import Runner
from .measure.sandbox import SandboxSettings
from .settings import schema_settings


@schema_settings("env")
class EnvSettings:
    """How a revision's environment is made (the config's ``env`` block; defaults in the schema)."""

    mode: str  # none, venv or image
    system_site_packages: bool  # venv: see the base interpreter's packages
    python: str | None  # venv: the interpreter that creates it; image: the image's python
    verify_command: str | None  # checks the install
    timeout_s: float  # limit of each setup, install or verify command


def expand(command: str, *, sha: str, worktree: Path, python: str) -> str:
    """Fill the placeholders (plain replacement: other braces in shell code stay as they are)."""
    for key, value in (
        ("{sha}", sha),
        ("{commit}", sha),
        ("{worktree}", str(worktree)),
        ("{python}", python),
    ):
        command = command.replace(key, value)
    return command


def _run(
    command: str, cwd: Path, log, timeout_s: float, argv: list[str] | None = None, env: dict | None = None
) -> tuple[int | None, str]:
    """Run a shell command (or ``argv``), its output appended to the log; (exit code or None on timeout, tail)."""
    log.write(f"$ {command}\n")
    log.flush()
    try:
        proc = subprocess.run(
            argv or ["bash", "-c", command],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired as exc:
        log.write((exc.stdout or b"").decode(errors="replace") + f"\n[timed out after {timeout_s:g} s]\n")
        return None, ""
    out = proc.stdout.decode(errors="replace")
    log.write(out + f"[exit {proc.returncode}]\n")
    log.flush()
    return proc.returncode, out[-1500:]


# What a timing file records of its revision's environment (its ``revision_env``), from the environment's marker.
REVISION_ENV = (
    "mode",
    "python",
    "image",
    "image_id",
    "image_digest",
    "engine",
    "engine_version",
    "python_version",
)


def revision_env(marker: dict) -> dict:
    """The marker's part that a timing file records (``revision_env``)."""
    return {key: marker.get(key) for key in REVISION_ENV}


def build_env(
    *,
    sha: str,
    worktree: Path,
    env_dir: Path,
    cfg: dict,
    setup_commands: list[str],
    install_commands: list[str],
    runner: Runner,
    log_path: Path,
    build_in_tree: bool = False,
) -> dict:
    """Build (or rebuild) the environment of ``sha`` (``cfg``: the config's env block); returns its marker
    (status ok or failed). ``build_in_tree`` (image mode): the setup and install commands run in the image with
    the worktree writable, so that what they build stays in the tree (an evaluation's candidate that changes
    compiled sources)."""
    settings = EnvSettings.from_config(cfg)
    mode = settings.mode
    worktree = Path(worktree).resolve()
    marker = {
        "sha": sha,
        "mode": mode,
        "status": "ok",
        "error": None,
        "python": sys.executable,
        "path": None,
        "worktree_on_path": mode != "venv",
        "commands": [],
        "built_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "log": str(log_path),
    }
    if mode == "none":
        marker["commands_not_run"] = list(setup_commands) + list(install_commands)
        return marker
    timeout = float(settings.timeout_s)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        if mode == "venv":
            venv = Path(env_dir).resolve() / "venv"
            if venv.exists():
                shutil.rmtree(venv)  # a rebuild starts clean: never measure a half-installed environment
            base = settings.python or sys.executable
            argv = [
                base,
                "-m",
                "venv",
                *(["--system-site-packages"] if settings.system_site_packages else []),
                str(venv),
            ]
            code, tail = _run(" ".join(argv), worktree, log, timeout, argv)
            if code != 0:
                return {
                    **marker,
                    "status": "failed",
                    "error": f"creating the virtualenv failed: {tail.strip()[-300:]}",
                }
            python = str(venv / "bin" / "python")
            marker.update(python=python, path=str(venv))
            # the commands run in the venv, as if activated: a bare `pip install -e .` installs there
            activated = {k: v for k, v in os.environ.items() if k != "PYTHONHOME"}
            activated.update(
                VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
            )
            commands = [("setup", c) for c in setup_commands] + [("install", c) for c in install_commands]
            inside = None
        else:  # image: the container is the environment
            python = settings.python or "python3"
            image = runner.image_for(sha)
            marker.update(python=python, image=image)
            try:
                marker.update(runner.inspect_image(image, python))
            except IsobenchError as exc:
                log.write(f"{exc}\n")
                return {**marker, "status": "failed", "error": str(exc)}
            commands, activated = [], None
            if build_in_tree:
                commands = [("setup", c) for c in setup_commands] + [("install", c) for c in install_commands]
            # building in the tree: the tree writable, and a writable /tmp and HOME for the build's tools
            mounts = [(worktree, build_in_tree)]
            env = {"HOME": "/tmp"} if build_in_tree else {}
            limits = SandboxSettings.from_config({}) if build_in_tree else None
            inside = runner.prefix(worktree, mounts, env, "allow", image=image, limits=limits)
        if settings.verify_command:
            commands.append(("verify", settings.verify_command))
        for kind, template in commands:
            command = expand(template, sha=sha, worktree=worktree, python=python)
            marker["commands"].append({"kind": kind, "command": command})
            argv = [*inside, "bash", "-c", command] if inside else None
            # setup and install run in the worktree; verify runs elsewhere, so that it sees the install, not the sources
            cwd = worktree if kind != "verify" else Path(env_dir).resolve()
            cwd.mkdir(parents=True, exist_ok=True)
            code, tail = _run(command, cwd, log, timeout, argv, env=activated)
            if code != 0:
                what = "timed out" if code is None else f"exited with {code}"
                last = tail.strip().splitlines()[-1][:300] if tail.strip() else ""
                return {
                    **marker,
                    "status": "failed",
                    "error": f"{kind} command {what}: {command}" + (f" ({last})" if last else ""),
                }
    return marker
