"""Build the demo target repository ``demokit`` deterministically.

Fixed author, committer, dates and contents: the same SHAs on every machine.
"""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

from ..errors import IsobenchError
from ..git import git
from .history import STEPS, Step

AUTHOR = ("Demo Author", "demo@isobench.invalid")
COMMITTER = ("Demo Committer", "ci@isobench.invalid")
START = datetime(2024, 3, 1, 9, 0, 0, tzinfo=timezone.utc)


def _apply(root: Path, step: Step) -> None:
    for rel, content in step.writes.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    for rel, old, new in step.replaces:
        target = root / rel
        text = target.read_text(encoding="utf-8")
        if old not in text:
            raise IsobenchError(f"demo history step {step.key}: {rel} lacks the text to replace: {old[:40]!r}")
        target.write_text(text.replace(old, new, 1), encoding="utf-8")


def commit_env(index: int) -> dict[str, str]:
    when = (START + timedelta(days=index, hours=index % 5)).isoformat()
    return {
        "GIT_AUTHOR_NAME": AUTHOR[0],
        "GIT_AUTHOR_EMAIL": AUTHOR[1],
        "GIT_AUTHOR_DATE": when,
        "GIT_COMMITTER_NAME": COMMITTER[0],
        "GIT_COMMITTER_EMAIL": COMMITTER[1],
        "GIT_COMMITTER_DATE": when,
    }


def build_demo_repo(path: str | Path) -> dict[str, str]:
    """Create the demo repository at ``path``; return {step key: commit SHA}.

    An existing directory is replaced only when it is not already the demo repo.
    """
    path = Path(path)
    if path.exists():
        if (path / ".git").exists() and git("rev-parse", "--verify", "--quiet", "main", cwd=path, check=False).strip():
            shas = step_shas(path)
            if shas is not None:
                return shas
        shutil.rmtree(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    git("init", "--quiet", "--initial-branch=main", cwd=tmp)
    for index, step in enumerate(STEPS):
        _apply(tmp, step)
        git("add", "--all", cwd=tmp)
        git("-c", "commit.gpgsign=false", "commit", "--quiet", "--no-verify", "-m", step.message, cwd=tmp, env=commit_env(index))
    tmp.rename(path)
    shas = step_shas(path)
    assert shas is not None
    return shas


def step_shas(repo: Path) -> dict[str, str] | None:
    """Map each history step to its SHA in ``repo`` (None when the history differs)."""
    lines = git("log", "--reverse", "--format=%H %s", "main", cwd=repo).splitlines()
    if len(lines) != len(STEPS):
        return None
    result = {}
    for line, step in zip(lines, STEPS):
        sha, subject = line.split(" ", 1)
        if subject != step.message.splitlines()[0]:
            return None
        result[step.key] = sha
    return result


def measured_steps() -> list[Step]:
    """The steps that the demo dataset holds one record for."""
    return [s for s in STEPS if s.kind in ("perf", "wrong", "noop")]
