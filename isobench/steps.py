"""The work of each rule, called by the thin scripts in ``scripts/`` with Snakemake's ``snakemake`` object."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import traceback
from pathlib import Path

from . import generators, git, gpu
from .config import llm_settings
from .containers import Runner
from .costs import llm_summary, summary_line
from .dataset import write_dataset
from .envs import build_env
from .errors import CommitFailure, IsobenchError
from .extraction import failed_extraction, normalize
from .generate import Cache, Generator, Policy
from .gpu import GpuSettings
from .jsonio import load_json, sha256_file, validate, write_json, write_text_atomic
from .llm import LLMSettings, redact, secrets
from .mcache import MeasurementCache, fingerprint, measurement_key, ran_on
from .measure import REVISIONS, Revision, Settings, measure_commit, not_run, smoke_run
from .prompt import render
from .record import build_record, tampered_timings
from .sandbox import SandboxSettings, isolation_refusal

log = logging.getLogger("isobench")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def schema_of(smk) -> Path:
    """The workflow's config schema, found from the step script's folder: never a param, since a param holding
    the checkout's absolute path would re-run every job of a copied or moved project."""
    return Path(smk.scriptdir).parent / "config" / "schema.yaml"


def run_step(smk, step) -> None:
    """Run ``step(smk)``: log to the rule's log file; an error is one line on stderr and exit 1."""
    log_path = Path(smk.log[0]) if smk.log else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=handlers, force=True)
    try:
        step(smk)
    except IsobenchError as exc:
        log.error("isobench: %s", exc)
        sys.exit(1)
    except Exception as exc:  # a bug of ours: the traceback goes to the log only
        if log_path:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        sys.stderr.write(
            f"isobench: internal error in rule {smk.rule}: {type(exc).__name__}: {exc} (traceback in {log_path})\n"
        )
        sys.exit(1)


def extraction_step(smk) -> None:
    """extraction.json; a commit whose inputs are unusable gets a failed one (it still ends as a record)."""
    p = smk.params
    try:
        if p.problem:  # found at planning, e.g. two extraction files naming this commit
            raise CommitFailure(p.problem[0], p.problem[1])
        data = normalize(
            source=p.source,
            repo_name=p.repo_name,
            mirror=Path(p.mirror),
            commit=p.commit,
            extraction_file=p.extraction_file,
            origin=p.origin,
        )
    except CommitFailure as exc:
        data = failed_extraction(
            source=p.source,
            repo_name=p.repo_name,
            commit=p.commit,
            head=p.head,
            base=p.base,
            extraction_file=p.extraction_file,
            origin=p.origin,
            category=exc.category,
            error=str(exc),
        )
        validate(data, "extraction", smk.output.extraction)
        write_json(smk.output.extraction, data)
        log.error(
            "isobench: %s (%s: the commit's record says so; the other commits go on)", exc, exc.category
        )
        return
    if p.base and data["base_commit"] != p.base:
        raise IsobenchError(
            f"{p.origin or p.extraction_file}: field parent_hash: changed since the run was planned; "
            "run again"
        )
    validate(data, "extraction", smk.output.extraction)
    for warning in data["warnings"]:
        log.warning("warning: %s", warning)
    write_json(smk.output.extraction, data)
    log.info(
        "extraction %s: base %s, %d files, %d APIs",
        data["head_commit"][:12],
        data["base_commit"][:12],
        len(data["files_changed"]),
        len(data["affected_apis"]),
    )


def prompt_step(smk) -> None:
    extraction = load_json(smk.input.extraction)
    if (
        extraction.get("status") == "failed"
    ):  # a marker, never sent to an LLM (the generator step checks prompt.json)
        text = (
            f"# isobench: no prompt: the commit's inputs are unusable ({extraction['category']}).\n"
            f"# {extraction['error'][:300]}\n"
        )
        facts = {
            "skipped": extraction["category"],
            "diff_truncated": False,
            "diff_budget": smk.params.diff_budget,
        }
    else:
        text, facts = render(smk.input.template, extraction, smk.params.diff_budget)
    write_text_atomic(smk.output.prompt, text)
    facts.update(
        template=str(smk.input.template),
        template_sha256=sha256_file(smk.input.template),
        prompt_sha256=sha256_file(smk.output.prompt),
        chars=len(text),
    )
    write_json(smk.output.meta, facts)
    log.info("prompt: %d characters%s", len(text), " (diff truncated)" if facts["diff_truncated"] else "")


def _write_generator(smk, text: str, meta: dict) -> None:
    """generator.py, generator.json and an empty transcript of a test that no LLM wrote."""
    write_text_atomic(smk.output.generator, text)
    write_json(
        smk.output.transcript,
        {"schema_version": 1, "status": meta["status"], "origin": meta["origin"], "attempts": []},
    )
    write_json(smk.output.meta, {**meta, "sha256": sha256_file(smk.output.generator)})


def generator_step(smk) -> None:
    p = smk.params
    pre = generators.find_pregenerated(p.generators, p.commit) if p.commit else None
    if pre is None:
        skipped = load_json(smk.input.prompt_meta).get("skipped")
        if skipped:  # the extraction failed: nothing to ask an LLM about
            _write_generator(
                smk,
                f"# isobench: no test: the commit's inputs are unusable ({skipped}).\n",
                {
                    "origin": "none",
                    "status": "not_generated",
                    "contract": None,
                    "error": skipped,
                    "llm": None,
                },
            )
            log.info("generator: not generated (%s)", skipped)
            return
        return _generate_with_llm(smk)
    text = pre.read_text(encoding="utf-8", errors="replace")
    origin = f"pregenerated:{pre}"
    try:
        contract = generators.check_script(text, str(pre))
    except IsobenchError as exc:  # kept as it is (the record shows it) and never run: category invalid_script
        _write_generator(
            smk,
            text,
            {"origin": origin, "status": "invalid_script", "contract": None, "error": str(exc), "llm": None},
        )
        log.error("isobench: %s (invalid_script: the commit's record says so; the other commits go on)", exc)
        return
    _write_generator(
        smk,
        text,
        {"origin": origin, "status": "pregenerated", "contract": contract, "error": None, "llm": None},
    )
    log.info("generator: pre-generated %s (%s contract)", pre, contract)


def _generate_with_llm(smk) -> None:
    p = smk.params
    cfg = {**llm_settings(smk.config, p.source, schema_of(smk)), **p.llm}
    smoke = None
    refusal = isolation_refusal(
        SandboxSettings.from_config(p.isolation["sandbox"]), Runner.from_config(p.isolation["runner"])
    )
    if refusal and cfg["smoke_run"]:
        log.warning("warning: no smoke run of the generated test: %s", refusal)
    if cfg["smoke_run"] and p.commit and not refusal:
        head = revision_of("head", p.commit, Path(p.mirror), smk.input.worktree_head, smk.input.env_head)
        candidate = Path(p.scratch + ".candidate.py")

        def smoke(script: str) -> str | None:  # a smoke run holds a GPU slot too (never beside a measurement)
            write_text_atomic(candidate, script)
            try:
                return gpu.on_gpu(
                    GpuSettings.from_config(smk.config.get("gpu")),
                    f"smoke run {p.commit[:12]}",
                    lambda device_env: smoke_run(
                        candidate,
                        head,
                        Path(p.scratch),
                        cfg["smoke_timeout_s"],
                        extra_path=tuple(p.python_path),
                        sandbox=SandboxSettings.from_config(p.isolation["sandbox"]),
                        runner=Runner.from_config(p.isolation["runner"]),
                        device_env=device_env,
                    ),
                )[0]
            finally:
                candidate.unlink(missing_ok=True)

    gen = Generator(
        LLMSettings.from_config(cfg),
        Policy.from_config(cfg),
        Cache(cfg["cache_dir"], read=cfg["cache"]),
        system=Path(smk.input.system_prompt).read_text(encoding="utf-8"),
        repair_template=Path(smk.input.repair_prompt).read_text(encoding="utf-8"),
        smoke=smoke,
    )
    try:
        outcome = gen.generate(Path(smk.input.prompt).read_text(encoding="utf-8"))
    except BaseException:
        # Snakemake deletes a failed job's outputs: what was paid for stays on record beside the log.
        crash = Path(smk.log[0]).with_name("generator.failed_transcript.json")
        write_json(crash, redact({"attempts": gen.attempts, "written_at": "failure"}, secrets(gen.settings)))
        raise
    if outcome.script is not None:
        write_text_atomic(smk.output.generator, outcome.script)
    else:  # an explicit marker, never mistaken for a test: the record says generation_failed
        reason = (outcome.error or "").splitlines()[0] if outcome.error else "unknown"
        write_text_atomic(
            smk.output.generator,
            f"# isobench: no usable test was generated for this commit.\n"
            f"# {reason[:300]}\n# See llm_transcript.json beside this file.\n",
        )
    write_json(smk.output.transcript, outcome.transcript)
    status = outcome.status
    meta = {
        "origin": f"{outcome.origin}:{cfg['provider']}/{cfg['model']}",
        "status": status,
        "contract": outcome.contract,
        "sha256": sha256_file(smk.output.generator),
        "error": outcome.error,
        "llm": {
            "provider": cfg["provider"],
            "model": cfg["model"],
            "base_url": cfg["base_url"],
            "accepted_key": outcome.transcript.get("accepted_key"),
            "transcript_sha256": sha256_file(smk.output.transcript),
            **outcome.totals,
        },
    }
    write_json(smk.output.meta, meta)
    t = outcome.totals
    log.info(
        "generator: %s via %s/%s: %d API requests, %d cached replies%s, %d+%d tokens",
        status,
        cfg["provider"],
        cfg["model"],
        t["api_requests"],
        t["cached_replies"],
        " (accepted script from cache)" if t["cache_hit"] else "",
        t["input_tokens"],
        t["output_tokens"],
    )
    if outcome.error:
        log.warning("generation failed: %s", outcome.error)


def env_step(smk) -> None:
    p = smk.params
    wt = load_json(smk.input.worktree)
    worktree = git.ensure_worktree(Path(p.mirror), smk.wildcards.sha, Path(wt["path"]))
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
    write_json(smk.output.marker, marker)
    if marker["status"] == "ok":
        log.info("env %s: %s, python %s", smk.wildcards.sha[:12], marker["mode"], marker["python"])
    else:
        log.warning("env %s: failed: %s (log: %s)", smk.wildcards.sha[:12], marker["error"], marker["log"])


def revision_of(name: str, sha: str, mirror: Path, worktree_marker: str, env_marker: str) -> Revision:
    """A revision ready to run: its worktree (made again if deleted) and its environment."""
    marker = load_json(worktree_marker)
    if marker["sha"] != sha:
        raise IsobenchError(f"{worktree_marker}: {name} is {sha} but its worktree holds {marker['sha']}")
    path = git.ensure_worktree(mirror, sha, Path(marker["path"]))
    env = load_json(env_marker)
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


def worktree_step(smk) -> None:
    path = git.ensure_worktree(Path(smk.params.mirror), smk.wildcards.sha, Path(smk.params.path))
    write_json(smk.output.marker, {"sha": smk.wildcards.sha, "path": str(path)})
    log.info("worktree %s at %s", smk.wildcards.sha[:12], path)


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
        log.info("not measured: %s: %s", category, error)
        return
    # A marker may outlive its folder (deleted by hand): revision_of makes sure the checkout is there and clean.
    revisions = [
        revision_of(
            name,
            shas[name],
            Path(p.mirror),
            getattr(smk.input, f"worktree_{name}"),
            getattr(smk.input, f"env_{name}"),
        )
        for name in REVISIONS
    ]
    cache = MeasurementCache(
        smk.config.get("measure_cache_dir", ".isobench-cache/measure"),
        read=smk.config.get("measure_cache", True),
    )
    envs = {name: load_json(getattr(smk.input, f"env_{name}")) for name in REVISIONS}
    key = None
    if all(r.env_error is None for r in revisions):
        key = measurement_key(
            generator_sha256=sha256_file(smk.input.generator),
            shas=shas,
            fingerprints={name: fingerprint(envs[name]) for name in REVISIONS},
            settings={**settings.as_dict(), "analysis": dict(p.analysis)},
            contract=p.settings.get("contract", "auto"),
            python_path=list(p.python_path),
            epoch=p.settings.get("epoch", 0),
        )
    timings = cache.get(key) if key else None
    if timings is not None:
        log.info("measurement: from the measurement cache (key %s; measure.epoch forces a new one)", key[:16])
        timings = {
            name: {**t, "measurement": {**t["measurement"], "cached": True}} for name, t in timings.items()
        }
    else:
        log.info(
            "measurement: fresh, %s: %d to %d rounds x (%d warm-up + %d timed calls) per revision, "
            "interleave %s",
            shas["head"][:12],
            settings.rounds,
            max(settings.rounds, settings.max_rounds),
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
                contract=p.settings.get("contract", "auto"),
                sandbox=SandboxSettings.from_config(p.isolation["sandbox"]),
                runner=Runner.from_config(p.isolation["runner"]),
                analysis=dict(p.analysis),
                device_env=device_env,
            ),
        )
        for warning in placed["warnings"]:
            log.warning("warning: %s", warning)
        stamp = {
            "key": key,
            "cached": False,
            "measured_at": now_iso(),
            "epoch": p.settings.get("epoch", 0),
            "ran_on": ran_on(),
        }
        timings = {
            name: {
                **redact(t, secrets()),
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
        timings[name]["revision_env"] = {key: envs[name].get(key) for key in REVISION_ENV}
        t = redact(
            timings[name], secrets()
        )  # a key the sandbox did not let in cannot be printed, but be sure
        validate(t, "timing", f"timing_{name}")
        write_json(getattr(smk.output, name), t)
        if t["status"] == "ok":
            log.info(
                "  %s %s: median %.3f ms (n=%d)", name, t["sha"][:12], t["stats"]["median"], t["stats"]["n"]
            )
        else:
            log.info("  %s %s: failed, %s: %s", name, t["sha"][:12], t["category"], (t["error"] or "")[:300])
    write_seal(smk)
    shutil.rmtree(p.scratch, ignore_errors=True)


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


def write_seal(smk) -> None:
    """timing_seal.json: the sha256 of each timing file as this measure job wrote it. A record is built only from
    timing files that still match (a hand-edited one makes its revision ``tampered``; the audit checks it too)."""
    write_json(
        smk.output.seal,
        {
            "schema_version": 1,
            "written_at": now_iso(),
            "sha256": {name: sha256_file(getattr(smk.output, name)) for name in REVISIONS},
        },
    )


def record_step(smk) -> None:
    extraction = load_json(smk.input.extraction)
    timings = {name: load_json(getattr(smk.input, f"timing_{name}")) for name in REVISIONS}
    timing_sha256 = {name: sha256_file(getattr(smk.input, f"timing_{name}")) for name in REVISIONS}
    paths = {name: getattr(smk.input, f"timing_{name}") for name in REVISIONS}
    for name, problem in tampered_timings(smk.input.timing_seal, paths, timing_sha256).items():
        log.error("isobench: %s (the record says tampered; measure again with --forcerun measure)", problem)
        timings[name] = {
            **timings[name],
            "status": "failed",
            "category": "tampered",
            "error": problem,
            "samples_ms": [],
            "rounds_ms": [],
            "stats": None,
            "equivalent": None,
        }
    prompt_meta = load_json(smk.input.prompt_meta)
    generator_meta = load_json(smk.input.generator_meta)
    hashes = {
        "extraction": sha256_file(smk.input.extraction),
        "template": prompt_meta["template_sha256"],
        "prompt": sha256_file(smk.input.prompt),
        "generator": sha256_file(smk.input.generator),
        "llm_transcript": sha256_file(smk.input.transcript),
        **{f"timing_{name}": timing_sha256[name] for name in REVISIONS},
    }
    # the PR that merged the commit, when its extraction names none: here, not in the extraction step, since it
    # depends on main (a moved main must not re-run extraction, prompt and generation)
    merged = None
    if not extraction.get("pr_number") and extraction.get("status") != "failed":
        merged = git.merged_pr(Path(smk.params.mirror), extraction["head_commit"], timings["main"]["sha"])
    record = build_record(
        extraction=extraction,
        source_cfg=smk.params.source_cfg,
        merged_pr=merged,
        generator_text=Path(smk.input.generator).read_text(encoding="utf-8"),
        timings=timings,
        main_sha=timings["main"]["sha"],
        hashes=hashes,
        generator_meta=generator_meta,
        template=prompt_meta["template"],
        analysis=smk.params.analysis,
    )
    validate(record, "record", smk.output.record)
    write_json(smk.output.record, record)
    cmp = record["comparisons"]["base_head"]
    log.info(
        "record %s: %s, %s",
        record["instance_id"],
        record["status"],
        "no comparison"
        if cmp is None
        else f"speedup {cmp['speedup']:.3f} [{cmp['ci_low']:.3f}, {cmp['ci_high']:.3f}] {cmp['verdict']}",
    )


def dataset_step(smk) -> None:
    n = write_dataset(list(smk.input.records), smk.output.dataset)
    if n is None:
        log.error(
            "isobench: dataset %s NOT replaced: a record was damaged (set aside); run again to rebuild it",
            smk.output.dataset,
        )
    else:
        log.info("dataset %s: %d records", smk.output.dataset, n)


def llm_summary_step(smk) -> None:
    summary = llm_summary(list(smk.input.metas))
    write_json(smk.output.summary, summary)
    log.info("%s", summary_line(summary, "all commits of the dataset"))


def report_figures_step(smk) -> None:
    from .dataset import read_dataset
    from .report import plot_samples, plot_speedups, summary_html

    rows = read_dataset(smk.input.dataset)
    plot_speedups(rows, smk.output.speedups)
    plot_samples(rows, smk.output.samples)
    write_text_atomic(smk.output.table, summary_html(rows))
    log.info("report figures of %d records in %s", len(rows), Path(smk.output.table).parent)


def audit_step(smk) -> None:
    from .audit import audit, format_audit

    report = audit(smk.params.config, schema_of(smk))
    log.info("%s", format_audit(report))
    write_json(smk.params.report, report)
    if not report["ok"]:
        raise IsobenchError(
            f"audit failed: integrity problems (listed above, in {smk.log[0]} and {smk.params.report})"
        )


def export_step(smk) -> None:
    from .dataset import read_dataset
    from .export import export

    rows = read_dataset(smk.input.dataset)
    for view, files in export(rows, smk.output.folder).items():
        log.info("%s view: %s, %s", view, files["hf"], files["parquet"])
