"""The worktree rule: a worktree per SHA, checked out from the source's mirror."""

from __future__ import annotations

from pathlib import Path

from .. import worktrees
from ..jsonio import write_valid
from .common import log


def worktree_step(smk) -> None:
    path = worktrees.ensure_worktree(Path(smk.params.mirror), smk.wildcards.sha, Path(smk.params.path))
    write_valid(smk.output.marker, {"sha": smk.wildcards.sha, "path": str(path)}, "worktree_marker")
    log.debug("worktree %s at %s", smk.wildcards.sha[:12], path)
