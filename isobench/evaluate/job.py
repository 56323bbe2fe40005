"""One evaluation job: base, head (main when asked) and one model's candidates on one instance, measured together.

The revisions are the measure job's (isobench.measure): base and head from worktrees of the record's SHAs, each
candidate a fresh tree of base with its patch applied strictly (isobench.evaluate.apply); the environment by the
config's ``env`` mode (none, image: base's environment runs the tree from source, a changed compiled source
built in base's image; venv: built for the tree and verified; ``build_failed`` otherwise); the record's own test
and measurement settings (its provenance), with the evaluation's ``measure`` block over them. Identical patches are one
candidate.
"""

from __future__ import annotations

import logging
import shlex
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from .. import envs, worktrees
from ..git import diff, ensure_mirror, locked, resolve_many
from ..jsonio import load_json, write_valid
from ..measure import gpu
from ..measure.gpu import GpuSettings
from ..measure.job import Job, Revision, Settings
from ..measure.rounds import measure_commit
from ..measure.runners import Runner
from ..measure.sandbox import SandboxSettings
from ..measure.stats import Analysis
from . import apply
from .check import CANDIDATE_PREFIX, EvaluationRounds

log = logging.getLogger("isobench")
SHARED = Path("results/evaluations")


class RepositoryUnavailable(RuntimeError):
    """The record's repository or commits cannot be had here (no network, a wrong ``repos`` entry)."""


@dataclass
class Candidate:
    name: str  # the revision's name, cand_<digest>
    digest: str
    patch: str
    attempts: list[int]
    applied: apply.Applied | None = None
    revision: Revision | None = None
    build_error: str | None = None
    flags: dict | None = None


def candidates_of(spec: dict, mirror: Path) -> list[Candidate]:
    """The job's distinct patches (calibration: the empty change and the human's own diff)."""
    rec = spec["record"]
    if spec["calibration"]:
        gold = diff(mirror, rec["base_commit"], rec["head_commit"]) if rec.get("head_commit") else ""
        return [
            Candidate(f"{CANDIDATE_PREFIX}aa", "aa", "", []),
            Candidate(f"{CANDIDATE_PREFIX}gold", "gold", gold, []),
        ]
    out: dict[str, Candidate] = {}
    for a in spec["attempts"]:
        c = out.setdefault(
            a["digest"], Candidate(f"{CANDIDATE_PREFIX}{a['digest'][:12]}", a["digest"], a["patch"], [])
        )
        c.attempts.append(a["attempt"])
    return list(out.values())


def settings_of(spec: dict) -> tuple[Settings, dict, dict]:
    """The record's measurement settings with the evaluation's over them: (settings, the record's, overrides)."""
    prov = spec["record"].get("provenance") or {}
    recorded = dict(prov.get("measure_settings") or {})
    if prov.get("contract"):
        recorded["contract"] = prov["contract"]
    known = set(Settings.__dataclass_fields__)
    recorded = {k: v for k, v in recorded.items() if k in known}
    overrides = {k: v for k, v in (spec["settings"].get("measure") or {}).items() if recorded.get(k) != v}
    settings = Settings.from_config({**recorded, **overrides, "coverage": False})
    return settings, recorded, overrides


def analysis_of(spec: dict, config_analysis: dict) -> Analysis:
    prov = spec["record"].get("provenance") or {}
    return Analysis.from_config({**(prov.get("analysis") or {}), **config_analysis})


def ensure_repository(spec: dict) -> Path:
    """The mirror holding the record's commits (a source's, or one made for the evaluation)."""
    repo = spec["repository"]
    mirror = Path(repo["mirror"])
    rec = spec["record"]
    needed = [s for s in (rec.get("base_commit"), rec.get("head_commit")) if s]
    if (mirror / "HEAD").exists() and all(resolve_many(mirror, needed).values()):
        return mirror
    try:
        ensure_mirror(repo["location"], mirror, fetch=(mirror / "HEAD").exists())
    except Exception as exc:  # git's own words: no network, no such repository, ...
        raise RepositoryUnavailable(f"{repo['location']}: {exc}") from None
    missing = [s[:12] for s, found in resolve_many(mirror, needed).items() if not found]
    if missing:
        raise RepositoryUnavailable(f"{repo['location']}: commits {', '.join(missing)} not found")
    return mirror


def environment(
    name: str,
    sha: str,
    tree: Path,
    env_dir: Path,
    spec: dict,
    cfg: dict,
    runner: Runner,
    build_in_tree: bool = False,
) -> Revision:
    """A revision on ``tree`` with its environment built (mode none: nothing to build)."""
    rec = spec["record"]
    marker_path = env_dir / "marker.json"
    with locked(env_dir.with_name(env_dir.name + ".lock")):
        marker = (
            load_json(marker_path) if marker_path.exists() and not name.startswith(CANDIDATE_PREFIX) else None
        )
        if marker is None or marker.get("status") != "ok" or marker.get("mode") != cfg.get("mode", "none"):
            marker = envs.build_env(
                sha=sha,
                worktree=tree,
                env_dir=env_dir,
                cfg=cfg,
                setup_commands=list(rec.get("setup_commands") or []),
                install_commands=list(rec.get("install_commands") or []),
                runner=runner,
                log_path=env_dir / "build.log",
                build_in_tree=build_in_tree,
            )
            write_valid(marker_path, marker, "env_marker")
    error = None if marker["status"] == "ok" else f"{marker['error']} (log: {marker['log']})"
    return Revision(
        name,
        sha,
        tree.resolve(),
        python=marker["python"],
        env_error=error,
        read_only=tuple(Path(x) for x in [marker.get("path")] if x),
        on_path=marker["worktree_on_path"],
        image=marker.get("image"),
        env=envs.revision_env(marker),
    )


def prepare(
    spec: dict, folder: Path, mirror: Path, env_cfg: dict, runner: Runner
) -> tuple[list[Revision], list[Candidate]]:
    """Base, head (main) and the candidates, each a tree and an environment; candidates applied strictly."""
    rec = spec["record"]
    shas = {"base": rec["base_commit"], "head": rec["head_commit"]}
    if spec["settings"]["include_main"] and rec.get("main_commit"):
        shas["main"] = rec["main_commit"]
    revisions = []
    for name, sha in shas.items():
        tree = worktrees.ensure_worktree(mirror, sha, SHARED / "_worktrees" / sha)
        revisions.append(environment(name, sha, tree, SHARED / "_envs" / sha, spec, env_cfg, runner))
    tests = apply.test_files(rec)
    cands = candidates_of(spec, mirror)
    for c in cands:
        tree = (folder / "trees" / c.name).resolve()
        c.flags = apply.flags_of(c.patch, tests)
        if c.patch:
            c.applied = apply.apply_patch(
                mirror, rec["base_commit"], c.patch, tree, spec["settings"]["apply"]
            )
        else:  # the A/A candidate: a fresh tree of base, nothing applied
            apply.fresh_tree(mirror, rec["base_commit"], tree)
            c.applied = apply.Applied("applied", None, "no change (A/A)", [])
        if c.applied.status != "applied":
            continue
        out = folder / "candidates" / c.name
        out.mkdir(parents=True, exist_ok=True)
        (out / "applied.diff").write_text(
            apply.applied_diff(tree), encoding="utf-8", errors="surrogateescape"
        )
        c.revision, c.build_error = candidate_env(c, tree, revisions[0], folder, spec, env_cfg, runner)
    return revisions, cands


def candidate_env(
    c: Candidate, tree: Path, base_rev: Revision, folder: Path, spec: dict, cfg: dict, runner: Runner
) -> tuple[Revision | None, str | None]:
    """The candidate's environment, or why it has none. Modes none and image run the tree from source: base's
    environment serves, unless the patch changes compiled sources, which must be built, never dropped: image mode
    runs the record's setup and install commands in base's image with the tree writable (what they build stays in
    the tree); mode none builds nothing. Mode venv builds one per (base, patch) from the install commands."""
    mode = cfg.get("mode", "none")
    compiled = apply.compiled_paths(c.patch)
    rec = spec["record"]
    named = ", ".join(compiled[:3]) + (f" and {len(compiled) - 3} more" if len(compiled) > 3 else "")
    if mode != "venv" and not compiled:
        return replace(base_rev, name=c.name, worktree=tree.resolve()), None
    if mode == "none":
        return None, (
            f"compiled sources changed ({named}): env mode none runs the tree from source and builds nothing; "
            "use env mode venv or image"
        )
    if mode == "image" and not (rec.get("install_commands") or rec.get("setup_commands")):
        return (
            None,
            f"compiled sources changed ({named}) and the record has no install_commands to build them",
        )
    rev = environment(
        c.name, rec["base_commit"], tree, folder / "envs" / c.name, spec, cfg, runner, build_in_tree=True
    )
    return (None, rev.env_error) if rev.env_error else (rev, None)


def measure(
    spec: dict,
    folder: Path,
    revisions: list[Revision],
    cands: list[Candidate],
    *,
    settings: Settings,
    analysis: Analysis,
    sandbox: dict,
    runner: Runner,
    gpu_cfg: dict | None,
    python_path: list[str],
) -> tuple[dict[str, dict], dict]:
    """The job's rounds: {revision name: timing dict}, and where the GPU slot was."""
    scratch = folder / "scratch"
    generator = folder / "generator.py"
    generator.write_text(spec["record"]["efficiency_test"][0], encoding="utf-8")
    measured = revisions + [c.revision for c in cands if c.revision is not None]
    protocol = EvaluationRounds(scratch.with_name("vault"))
    try:
        timings, placed = gpu.on_gpu(
            GpuSettings.from_config(gpu_cfg),
            f"evaluate {spec['instance_id'][:40]}",
            lambda device_env: measure_commit(
                generator,
                measured,
                scratch,
                settings,
                extra_path=tuple(python_path),
                sandbox=SandboxSettings.from_config(sandbox),
                runner=runner,
                analysis=analysis,
                device_env=device_env,
                protocol=protocol,
            ),
        )
        for rev in measured:
            if rev.name in timings:
                timings[rev.name]["revision_env"] = rev.env
        return timings, placed
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(scratch.with_name("vault"), ignore_errors=True)


def guard_tests(
    selection: str,
    cand: Candidate,
    folder: Path,
    settings: Settings,
    sandbox: dict,
    runner: Runner,
    python_path,
) -> str | None:
    """The config's guard tests (a pytest selection, paths relative to the tree) run in the candidate's tree, in
    the sandbox: None when they pass, else pytest's last lines."""
    rev = cand.revision
    tree = rev.worktree
    args = [a if a.startswith("-") else str(tree / a) for a in shlex.split(selection)]
    generator = folder / "generator.py"
    job = Job(
        generator,
        folder / "guard" / cand.name,
        settings,
        tuple(python_path),
        SandboxSettings.from_config(sandbox),
        runner,
    )
    workdir = job.data / "guard"
    workdir.mkdir(parents=True, exist_ok=True)
    run = job.run_sandboxed(
        rev, [rev.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--rootdir={tree}", *args], workdir
    )
    try:
        if run.returncode == 0:
            return None
        out = (
            (workdir / "stdout.txt").read_text(errors="replace") if (workdir / "stdout.txt").exists() else ""
        )
        what = "timed out" if run.returncode is None else f"exit {run.exit_code()}"
        return f"guard tests {selection!r} failed ({what}): " + " | ".join(out.strip().splitlines()[-3:])
    finally:
        shutil.rmtree(folder / "guard" / cand.name, ignore_errors=True)
