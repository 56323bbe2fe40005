"""The env rule: a revision's environment (none, venv or image) built on its worktree."""

from __future__ import annotations

from pathlib import Path

from .. import worktrees
from ..envs import build_env
from ..jsonio import write_valid
from ..measure.runners import Runner
from .common import log


def env_step(smk) -> None:
    p = smk.params
    # the worktree's folder is where the worktree rule put it, beside its marker: never a path read from a file
    worktree = worktrees.ensure_worktree(
        Path(p.mirror), smk.wildcards.sha, worktrees.folder_of(smk.input.worktree)
    )
    marker = build_env(
        sha=smk.wildcards.sha,
        worktree=worktree,
        env_dir=Path(p.path),
        cfg=p.env,
        setup_commands=list(p.setup_commands),
        install_commands=list(p.install_commands),
        runner=Runner.from_config(p.runner),
        log_path=Path(smk.log[0]).with_suffix(".build.log"),
    )
    write_valid(smk.output.marker, marker, "env_marker")
    if marker["status"] == "ok":
        log.debug("env %s: %s, python %s", smk.wildcards.sha[:12], marker["mode"], marker["python"])
    else:
        log.warning("env %s: failed: %s (log: %s)", smk.wildcards.sha[:12], marker["error"], marker["log"])
