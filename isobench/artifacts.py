"""Every JSON file the workflow writes, and the schema it is written and audited against (isobench/schemas/).

Each step validates what it writes (``jsonio.write_valid``); ``isobench audit`` validates them again
(``check``). A new artifact is a schema file and its pattern here; tests/test_artifacts.py walks a demo run's
and an evaluation's results and fails on any JSON file without a pattern.
"""

from __future__ import annotations

import os
from fnmatch import fnmatchcase
from pathlib import Path

from .errors import IsobenchError
from .jsonio import load_json, validate

# A commit's folder, results/<source>/<commit>/ (rules extraction to record).
COMMIT_FILES = {
    "extraction.json": "extraction",
    "prompt.json": "prompt",
    "generator.json": "generator",
    "llm_transcript.json": "llm_transcript",
    "timing_base.json": "timing",
    "timing_head.json": "timing",
    "timing_main.json": "timing",
    "timing_seal.json": "seal",
    "record.json": "record",
    "record_seal.json": "seal",
}

# Paths under results/ (fnmatch patterns; ``*`` also crosses folders), first match wins.
RESULTS_FILES = (
    ("*/_worktrees/*.json", "worktree_marker"),
    ("*/_envs/*.json", "env_marker"),
    *((f"*/{name}", schema) for name, schema in COMMIT_FILES.items()),
    ("llm_summary.json", "llm_summary"),
    ("audit.json", "audit"),
    ("publish.json", "publish"),
    ("evaluations/*/planned.json", "evaluation_planned"),
    ("evaluations/*/calibration.json", "evaluation_calibration"),
    ("evaluations/*/report/leaderboard.json", "evaluation_leaderboard"),
    ("evaluations/*/report/*.report.json", "evaluation_gso_report"),
    ("evaluations/*/spec.json", "evaluation_spec"),
    ("evaluations/*/job.json", "evaluation_job"),
    ("evaluations/*/candidates/*/evaluation.json", "evaluation"),
    ("evaluations/*/timing*.json", "timing"),
    ("evaluations/*/envs/*/marker.json", "env_marker"),
)

# Files under results/ that are not the workflow's artifacts: other people's (the mirror, checkouts, installed
# environments), logs, and what a run set aside.
# A bundle's lines split into _extractions/ are inputs (a broken one is kept so that its commit fails).
NOT_ARTIFACTS = (
    "*/_git/*",
    "_demo/*",
    "*/_worktrees/*/*",
    "*/_envs/*/*",
    "*/_extractions/*",
    "*/scratch/*",
    "evaluations/*/trees/*",  # candidates' trees: the repository's files with a patch applied
    "evaluations/*/envs/*/*/*",  # a candidate's installed environment (its marker sits one level up)
    "*/logs/*",
    "logs/*",
    "export/*",
)


def schema_of(relative: str) -> str | None:
    """The schema of a file by its path under results/ (None: not an artifact of ours, or unknown)."""
    if any(fnmatchcase(relative, p) for p in NOT_ARTIFACTS):
        return None
    return next((schema for pattern, schema in RESULTS_FILES if fnmatchcase(relative, pattern)), None)


def check(path: Path, schema: str) -> str | None:
    """Why the artifact at ``path`` is not valid (one line), or None."""
    try:
        data = load_json(path)
        validate(data, schema, str(path))
    except IsobenchError as exc:
        return str(exc)
    except (OSError, UnicodeDecodeError) as exc:
        return f"{path}: unreadable: {exc}"
    return None


# Folders under results/ that hold other people's files, never entered: the mirror and the demo repository; and
# below _worktrees/ and _envs/ the checkouts and installed environments (their markers and logs sit beside them;
# the evaluation's shared environments keep theirs inside, so they are not walked).
_NOT_OURS = ("_git", "_demo")
_NOT_OURS_CHILD_DIRS = ("_worktrees", "_envs")


def ours(results: Path):
    """The files under ``results`` the workflow wrote (not the mirror, checkouts or environments)."""
    for root, dirs, files in os.walk(results):
        here = Path(root)
        if here.name in _NOT_OURS_CHILD_DIRS:
            dirs[:] = []
        else:
            dirs[:] = [d for d in dirs if d not in _NOT_OURS]
        for name in files:
            yield here / name


def walk(results: Path):
    """(path, schema or None) of every JSON file under ``results`` that is not another program's."""
    for path in sorted(p for p in ours(results) if p.suffix == ".json"):
        relative = path.relative_to(results).as_posix()
        if any(fnmatchcase(relative, p) for p in NOT_ARTIFACTS) or not path.is_file():
            continue
        yield path, schema_of(relative)
