"""The measure rule: the three revisions of a commit measured in one job (or restored from the measurement
cache), each on its worktree and environment, holding a GPU slot; the timing files and their seal."""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import worktrees
from ..categories import REVISIONS
from ..envs import revision_env
from ..errors import IsobenchError
from ..jsonio import load_json, sha256_file, validate, write_json, write_valid
from ..measure import gpu
from ..measure.cache import MeasurementCache, fingerprint, forced, measurement_key
from ..measure.coverage import Change
from ..measure.gpu import GpuSettings
from ..measure.job import Revision, Settings
from ..measure.machine import ran_on
from ..measure.rounds import measure_commit, not_run
from ..measure.runners import Runner
from ..measure.sandbox import SandboxSettings
from ..measure.stats import Analysis
from ..secrecy import redact, secret_values
from .common import log, now_iso


def revision_of(name: str, sha: str, mirror: Path, worktree_marker: str, env: dict) -> Revision:
    """A revision ready to run: its worktree (made again if deleted) and its environment (``env``: the
    marker the env rule wrote)."""
    marker = load_json(worktree_marker)
    if marker["sha"] != sha:
        raise IsobenchError(f"{worktree_marker}: {name} is {sha} but its worktree holds {marker['sha']}")
    path = worktrees.ensure_worktree(mirror, sha, worktrees.folder_of(worktree_marker))
    error = None if env["status"] == "ok" else f"{env['error']} (log: {env['log']})"
    return Revision(
        name,
        sha,
        path,
        python=env["python"],
        env_error=error,
        read_only=tuple(Path(x) for x in [env.get("path")] if x),
        on_path=env["worktree_on_path"],
        image=env.get("image"),
    )


def not_measurable(extraction: dict, generator_meta: dict) -> tuple[str, str] | None:
    """(category, error) of a commit that cannot be measured: unusable inputs, no test, an invalid script.
    (A ``not_generated`` test only follows a failed extraction, caught first.)"""
    if extraction.get("status") == "failed":
        return extraction["category"], extraction["error"]
    if generator_meta["status"] in ("generation_failed", "invalid_script"):
        return generator_meta["status"], generator_meta["error"] or "no test"
    return None


def measure_step(smk) -> None:
    p = smk.params
    extraction = load_json(smk.input.extraction)
    shas = {"base": extraction["base_commit"], "head": extraction["head_commit"], "main": p.main_sha}
    settings = Settings.from_config(p.settings)
    generator_meta = load_json(smk.input.generator_meta)
    unusable = not_measurable(extraction, generator_meta)
    if unusable:
        category, error = unusable
        for name in REVISIONS:
            t = not_run(Revision(name, shas[name], Path(".")), category, error, settings)
            validate(t, "timing", f"timing_{name}")
            write_json(getattr(smk.output, name), t)
        write_seal(smk)
        log.debug("not measured: %s: %s", category, error)
        return
    envs = {name: load_json(getattr(smk.input, f"env_{name}")) for name in REVISIONS}
    # A marker may outlive its folder (deleted by hand): revision_of makes sure the checkout is there and clean.
    revisions = [
        revision_of(
            name,
            shas[name],
            Path(p.mirror),
            getattr(smk.input, f"worktree_{name}"),
            envs[name],
        )
        for name in REVISIONS
    ]
    # --forcerun measure (or one of this job's files): measure again, never restore what the cache holds
    force = forced(smk.rule, [getattr(smk.output, name) for name in (*REVISIONS, "seal")])
    cache = MeasurementCache(smk.config["measure_cache_dir"], read=smk.config["measure_cache"] and not force)
    key = None
    if all(r.env_error is None for r in revisions):
        key = measurement_key(
            generator_sha256=sha256_file(smk.input.generator),
            shas=shas,
            fingerprints={name: fingerprint(envs[name]) for name in REVISIONS},
            settings={**settings.as_dict(), "analysis": dict(p.analysis)},
            contract=settings.contract,
            python_path=list(p.python_path),
            epoch=settings.epoch,
        )
    timings = cache.get(key) if key else None
    if timings is not None:
        log.debug(
            "measurement: from the measurement cache (key %s; measure.epoch forces a new one)", key[:16]
        )
        timings = {
            name: {**t, "measurement": {**t["measurement"], "cached": True}} for name, t in timings.items()
        }
    else:
        log.debug(
            "measurement: fresh%s, %s: %d to %d rounds x (%d warm-up + %d timed calls) per revision, "
            "interleave %s",
            " (forced by --forcerun: the measurement cache is not read)" if force else "",
            shas["head"][:12],
            settings.rounds,
            settings.most_rounds,
            settings.warmup,
            settings.repeat,
            settings.interleave,
        )
        timings, placed = gpu.on_gpu(
            GpuSettings.from_config(smk.config.get("gpu")),
            f"measure {shas['head'][:12]}",
            lambda device_env: measure_commit(
                Path(smk.input.generator),
                revisions,
                Path(p.scratch),
                settings,
                extra_path=tuple(p.python_path),
                sandbox=SandboxSettings.from_config(p.isolation["sandbox"]),
                runner=Runner.from_config(p.isolation["runner"]),
                analysis=Analysis.from_config(p.analysis),
                device_env=device_env,
                change=Change.of(extraction),
            ),
        )
        for warning in placed["warnings"]:
            log.warning("warning: %s", warning)
        stamp = {
            "key": key,
            "cached": False,
            "measured_at": now_iso(),
            "epoch": settings.epoch,
            "ran_on": ran_on(),
        }
        timings = {
            name: {
                **redact(t, secret_values()),
                "measurement": stamp,
                "gpu_slot": placed["gpu_slot"],
                "gpu_state": placed["gpu_state"],
                "warnings": t["warnings"] + placed["warnings"],
            }
            for name, t in timings.items()
        }
        if key:
            cache.put(key, timings)
    for name in REVISIONS:
        timings[name]["revision_env"] = revision_env(envs[name])
        # a key the sandbox did not let in cannot be printed, but be sure
        t = redact(timings[name], secret_values())
        validate(t, "timing", f"timing_{name}")
        write_json(getattr(smk.output, name), t)
        if t["status"] == "ok":
            log.debug(
                "  %s %s: median %.3f ms (n=%d)", name, t["sha"][:12], t["stats"]["median"], t["stats"]["n"]
            )
        else:
            log.debug("  %s %s: failed, %s: %s", name, t["sha"][:12], t["category"], (t["error"] or "")[:300])
    write_seal(smk)
    shutil.rmtree(p.scratch, ignore_errors=True)


def write_seal(smk) -> None:
    """timing_seal.json: the sha256 of each timing file as this measure job wrote it. A record is built only from
    timing files that still match (a hand-edited one makes its revision ``tampered``; the audit checks it too)."""
    write_valid(
        smk.output.seal,
        {
            "schema_version": 1,
            "written_at": now_iso(),
            "sha256": {name: sha256_file(getattr(smk.output, name)) for name in REVISIONS},
        },
        "seal",
    )
