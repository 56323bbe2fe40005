"""The plan of a run, made once per run in the main Snakemake process: its sources and their commits (what the
process does at a run's start and end is isobench/run_bounds.py).

Each source's mirror is fetched, ``main_ref`` is resolved to one SHA, and every commit's head and base SHAs are
resolved in a few git processes. A commit that cannot be resolved stays in the plan (its extraction step reports
the error for that commit alone).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from . import formats, git
from .demo import build_demo_repo
from .errors import IsobenchError
from .extraction import bundle_lines, commit_id_of_file, is_extraction
from .failures import missing_commit_lines
from .formats import commit_collection
from .jsonio import write_text_atomic
from .pregenerated import unmatched
from .untrusted import commit_key, is_commit_hash, read_input, shown

DEMO_REPO = "isobench:demo"


RESULTS = Path("results")


@dataclass
class CommitPlan:
    key: str
    head: str | None
    base: str | None
    extraction_file: str | None
    origin: str | None = None  # where the extraction came from when not a file of its own: bundle.jsonl:LINE
    # (category, error) found at planning: the commit ends as a failed record
    problem: tuple[str, str] | None = None
    commit_id: str | None = None  # the commit as its input named it (data: the key is what names files)


@dataclass
class SourcePlan:
    name: str
    repo: str
    mirror: Path
    main_sha: str
    commits: dict[str, CommitPlan] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # files and lines skipped at planning

    def shas(self) -> set[str]:
        out = {self.main_sha}
        for c in self.commits.values():
            out |= {s for s in (c.head, c.base) if s}
        return out


def _head_of_file(path: Path) -> tuple[str | None, str | None, str | None, str | None, bool]:
    """(commit, parent, why it is skipped, why its commit fails, whether it may be a collection) read cheaply: from
    the name and the file's first 64 KiB; only a regular file of bounded size is read
    (isobench.untrusted.read_input).

    A file whose name carries no commit id is read whole: an extraction names its commit at its top
    level, a summary or an index of a run does not (and is then skipped, never a failing commit), a collection
    lists its commits under ``performance_commits``. A file that cannot be read (a folder, a FIFO, a device, too
    large) is skipped, or, when its name names a commit, that commit fails."""
    commit = commit_id_of_file(path)
    try:
        head_text = read_input(path, head=65536 if commit else None).decode("utf-8", "replace")
        parent, known = formats.peek(head_text)
        if commit and not known:
            head_text = read_input(path).decode("utf-8", "replace")  # rare: the keys come late in the file
            parent = formats.peek(head_text)[0]
    except IsobenchError as exc:
        return (
            (commit, None, None, str(exc), False) if commit else (None, None, f"{exc}; skipped", None, False)
        )
    if commit is None:
        try:
            data = json.loads(head_text)
        except (json.JSONDecodeError, RecursionError):
            return None, None, f"{path}: not JSON, and its name names no commit; skipped", None, False
        if isinstance(data, dict) and isinstance(data.get(commit_collection.LIST_KEY), list):
            return None, None, None, None, True
        if not is_extraction(data) or not isinstance(data["commit_hash"], str):
            why = "not an extraction of any known format (no commit_hash at its top level)"
            return None, None, f"{path}: {why}; skipped", None, False
        commit = data["commit_hash"].lower()
    # a name with a hex run may still be a collection's (vllm_commits_20240115.json): its entries decide
    maybe_collection = commit_collection.may_be_collection(head_text)
    return commit, parent, None, None, maybe_collection


def _extraction_entries(name: str, cfg: dict, prepare: bool, warnings: list[str]):
    """(commit id, parent id, extraction file, origin, problem) of every extraction the source names. A line of
    a JSON Lines bundle becomes its own file under results/<source>/_extractions/, named by the commit's safe
    key (rewritten only when its text changes), so that editing one line re-runs that commit alone. A file that
    cannot be read gives no extraction file: its commit fails (the problem) and ``origin`` names the file."""
    places = cfg.get("extractions") or []
    for place in [places] if isinstance(places, str) else places:
        path = Path(place)
        field = f"config: field sources.{name}.extractions"
        if path.is_dir():
            files = sorted(path.glob("*.json"))
            if not files:
                warnings.append(f"{path}: no extraction files (*.json) in this folder")
        elif path.is_file() and path.suffix == ".jsonl":
            entries, problems = bundle_lines(path)
            warnings.extend(problems)
            split = RESULTS / name / "_extractions"
            for number, commit, line in entries:
                target = split / f"{commit_key(commit)}.json"  # a key, never a path: one name in split
                if prepare and (not target.is_file() or target.read_text(encoding="utf-8") != line):
                    write_text_atomic(target, line)
                yield commit, formats.peek(line)[0], str(target), f"{path}:{number}", None
            continue
        elif path.is_file():
            files = [path]
        else:
            raise IsobenchError(f"{field}: {path} is not a directory, a .json file or a .jsonl file")
        for file in files:
            commit, parent, skip, unreadable, maybe_collection = _head_of_file(file)
            collection = _collection(name, cfg, file, prepare, warnings) if maybe_collection else None
            if collection is not None:
                yield from collection
                continue
            if maybe_collection and commit is None:
                warnings.append(f"{file}: not a commit collection (unreadable performance_commits); skipped")
            elif skip:
                warnings.append(skip)
            elif unreadable:
                yield commit, None, None, str(file), ("extraction_invalid", unreadable)
            else:
                yield commit, parent, str(file), None, None


def _collection(name: str, cfg: dict, path: Path, prepare: bool, warnings: list[str]) -> list | None:
    """The entries of an ISO-Bench collection file (``performance_commits``), each its own file under
    results/<source>/_extractions/ as a bundle's lines are, or None when ``path`` is not one (a file whose name
    names a commit is an extraction of its own). A file of another repository (its repo_url or repo_name): each
    of its commits fails, extraction_invalid, naming the file and the field."""
    try:
        found = commit_collection.entries(path)
    except IsobenchError:
        return None
    if found is None:
        return None
    repo, entries, problems = found
    warnings.extend(problems)
    problem = commit_collection.problem(path, repo, name, [cfg["repo"], cfg.get("repo_name") or name])
    split = RESULTS / name / "_extractions"
    out = []
    for index, commit, text in entries:
        target = split / f"{commit_key(commit)}.json"
        if prepare and (not target.is_file() or target.read_text(encoding="utf-8") != text):
            write_text_atomic(target, text)
        origin = f"{path}:performance_commits[{index}]"
        out.append((commit, None, str(target), origin, ("extraction_invalid", problem) if problem else None))
    return out


def source_repo(name: str, cfg: dict, prepare: bool) -> str:
    """The repo path or URL; the demo repository is built here when missing."""
    repo = cfg["repo"]
    if repo == DEMO_REPO:
        path = RESULTS / "_demo" / "demokit"
        if prepare:
            build_demo_repo(path)
        return str(path)
    return repo


def plan_source(name: str, cfg: dict, prepare: bool) -> SourcePlan:
    repo = source_repo(name, cfg, prepare)
    mirror = RESULTS / name / "_git" / "mirror.git"
    if prepare or not (mirror / "HEAD").exists():
        try:
            git.ensure_mirror(repo, mirror, fetch=True, identity=cfg["repo"])
        except IsobenchError as exc:
            raise IsobenchError(f"config: field sources.{name}.repo: {exc}") from None
    main_sha = git.resolve(mirror, cfg["main_ref"])
    if main_sha is None:
        raise IsobenchError(
            f"config: field sources.{name}.main_ref: {cfg['main_ref']!r} is not a commit in {repo}"
        )
    if cfg.get("generators") and not Path(cfg["generators"]).is_dir():
        raise IsobenchError(
            f"config: field sources.{name}.generators: {cfg['generators']} is not a directory"
        )
    if cfg.get("prompt_template") and not Path(cfg["prompt_template"]).is_file():
        raise IsobenchError(
            f"config: field sources.{name}.prompt_template: {cfg['prompt_template']} is not a file"
        )
    warnings: list[str] = []
    entries = [_checked_id(*entry) for entry in _extraction_entries(name, cfg, prepare, warnings)]
    entries += [(commit, None, None, None, None) for commit in cfg["commits"]]
    ids = {e[0] for e in entries if _resolvable(*e)} | {e[1] for e in entries if e[1]}
    resolved = git.resolve_many(mirror, sorted(ids))
    parents = git.first_parents(mirror, sorted({s for s in resolved.values() if s}))
    plan = SourcePlan(name=name, repo=repo, mirror=mirror, main_sha=main_sha, warnings=warnings)
    problems: dict[str, int] = {}  # a problem's text: how many commits it fails
    missing: list[tuple[str, str]] = []  # (where it is named, the commit) of commits the repository lacks
    for commit, parent, extraction_file, origin, problem in entries:
        head = resolved.get(commit) if _resolvable(commit, parent, extraction_file, origin, problem) else None
        key = head or commit_key(commit)  # a SHA or a safe key: what names the commit's folder and files
        named = extraction_file or origin  # by an extraction (a file, or a bundle's line), not by the config
        if key in plan.commits:
            known = plan.commits[key]
            if named and not (known.extraction_file or known.origin):
                known.extraction_file, known.origin, known.problem = extraction_file, origin, problem
            elif named and not known.problem:
                first = known.origin or known.extraction_file
                known.problem = (
                    "duplicate_extraction",
                    f"{first} and {origin or extraction_file} both name commit {key}: keep one of them",
                )
                warnings.append(f"{known.problem[1]} (the commit ends as a failed record)")
            continue
        if problem:  # said once per problem, after the loop: a collection's is every one of its commits'
            problems[problem[1]] = problems.get(problem[1], 0) + 1
        elif head is None:
            missing.append(
                (origin or extraction_file or f"config: field sources.{name}.commits", shown(commit))
            )
        base = resolved.get(parent) if parent else (parents.get(head) if head else None)
        plan.commits[key] = CommitPlan(
            key=key,
            head=head,
            base=base,
            extraction_file=extraction_file,
            origin=origin,
            problem=problem,
            commit_id=commit,
        )
    warnings += missing_commit_lines(name, repo, missing, len(entries))
    for text, count in problems.items():
        warnings.append(
            f"{text} (the commit ends as a failed record)"
            if count == 1
            else f"{text}: its {count} commits end as failed records"
        )
    left = unmatched(cfg.get("generators"), {c.head for c in plan.commits.values() if c.head})
    if left:
        shown_names = ", ".join(left[:10]) + (f" and {len(left) - 10} more" if len(left) > 10 else "")
        warnings.append(
            f"{cfg['generators']}: {len(left)} of its scripts match no planned commit (never run): {shown_names}"
        )
    return plan


def _checked_id(commit: str, parent, extraction_file, origin, problem) -> tuple:
    """An extraction's entry whose commit id is not a commit hash (a path, a ref, anything else) gets its
    problem: the commit fails as extraction_invalid; its id is data, never resolved nor used as a name."""
    if problem is None and not is_commit_hash(commit):
        where = origin or extraction_file
        problem = (
            "extraction_invalid",
            f"{where}: field commit_hash: {shown(commit)} is not a commit hash (7 to 40 hex digits)",
        )
    return commit, parent, extraction_file, origin, problem


def _resolvable(commit: str, parent, extraction_file, origin, problem) -> bool:
    """Whether git may resolve the id: any ref of the config's ``commits:``, only a hash from an extraction."""
    return not (extraction_file or origin) or is_commit_hash(commit)


def plan_sources(config: dict, prepare: bool) -> dict[str, SourcePlan]:
    """Plan every source; ``prepare`` (main process only) builds, clones and fetches."""
    if not Path(config["prompt_template"]).is_file():
        raise IsobenchError(f"config: field prompt_template: {config['prompt_template']} is not a file")
    plans = {name: plan_source(name, cfg, prepare) for name, cfg in config["sources"].items()}
    if prepare:  # once per run, in the main process, before any work: every problem found, one line each
        for plan in plans.values():
            for warning in plan.warnings:
                sys.stderr.write(f"isobench: warning: {warning}\n")
    if not any(plan.commits for plan in plans.values()):
        raise IsobenchError(
            "config: field sources: no commit to measure (no extraction file found and no commits "
            "listed); nothing was done and the dataset was left as it is"
        )
    return plans
