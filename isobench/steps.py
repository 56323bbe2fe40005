"""The work of each rule, called by the thin scripts in ``scripts/`` with Snakemake's ``snakemake`` object."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import sys
import traceback
from pathlib import Path

from . import generators, git
from .costs import llm_summary, summary_line
from .dataset import write_dataset
from .envs import build_env
from .errors import IsobenchError
from .extraction import normalize
from .generate import Cache, Generator, Policy
from .jsonio import load_json, sha256_file, validate, write_json, write_text_atomic
from .llm import LLMSettings, redact, secrets
from .mcache import MeasurementCache, fingerprint, measurement_key, ran_on
from .measure import REVISIONS, Revision, Settings, measure_commit, not_run, smoke_run
from .prompt import render
from .sandbox import Runner, SandboxSettings
from .record import build_record
from .workflow import llm_settings

log = logging.getLogger("isobench")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


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
        sys.stderr.write(f"isobench: internal error in rule {smk.rule}: {type(exc).__name__}: {exc} (traceback in {log_path})\n")
        sys.exit(1)


def extraction_step(smk) -> None:
    p = smk.params
    data = normalize(source=p.source, repo_name=p.repo_name, mirror=Path(p.mirror), commit=p.commit,
                     extraction_file=p.extraction_file, origin=p.origin)
    if p.base and data["base_commit"] != p.base:
        raise IsobenchError(f"{p.origin or p.extraction_file}: field parent_hash: changed since the run was planned; "
                            "run again")
    validate(data, "extraction", smk.output.extraction)
    for warning in data["warnings"]:
        log.warning("warning: %s", warning)
    write_json(smk.output.extraction, data)
    log.info("extraction %s: base %s, %d files, %d APIs", data["head_commit"][:12], data["base_commit"][:12],
             len(data["files_changed"]), len(data["affected_apis"]))


def prompt_step(smk) -> None:
    extraction = load_json(smk.input.extraction)
    text, facts = render(smk.input.template, extraction, smk.params.diff_budget)
    write_text_atomic(smk.output.prompt, text)
    facts.update(template=str(smk.input.template), template_sha256=sha256_file(smk.input.template),
                 prompt_sha256=sha256_file(smk.output.prompt), chars=len(text))
    write_json(smk.output.meta, facts)
    log.info("prompt: %d characters%s", len(text), " (diff truncated)" if facts["diff_truncated"] else "")


def generator_step(smk) -> None:
    p = smk.params
    pre = generators.find_pregenerated(p.generators, p.commit)
    if pre is None:
        return _generate_with_llm(smk)
    text = pre.read_text(encoding="utf-8")
    contract = generators.check_script(text, str(pre))
    write_text_atomic(smk.output.generator, text)
    origin = f"pregenerated:{pre}"
    write_json(smk.output.transcript, {"schema_version": 1, "status": "pregenerated", "origin": origin, "attempts": []})
    write_json(smk.output.meta, {"origin": origin, "status": "pregenerated", "sha256": sha256_file(smk.output.generator),
                                 "contract": contract, "error": None, "llm": None})
    log.info("generator: pre-generated %s (%s contract)", pre, contract)


def _generate_with_llm(smk) -> None:
    p = smk.params
    cfg = {**llm_settings(smk.config, p.source, p.schema), **p.llm}
    smoke = None
    if cfg["smoke_run"] and p.commit:
        head = revision_of("head", p.commit, Path(p.mirror), smk.input.worktree_head, smk.input.env_head)
        candidate = Path(p.scratch + ".candidate.py")

        def smoke(script: str) -> str | None:
            write_text_atomic(candidate, script)
            try:
                return smoke_run(candidate, head, Path(p.scratch), cfg["smoke_timeout_s"],
                                 extra_path=tuple(p.python_path), sandbox=SandboxSettings.from_config(
                                     p.isolation["sandbox"]), runner=Runner.from_config(p.isolation["runner"]))
            finally:
                candidate.unlink(missing_ok=True)

    gen = Generator(LLMSettings.from_config(cfg), Policy.from_config(cfg), Cache(cfg["cache_dir"], read=cfg["cache"]),
                    system=Path(smk.input.system_prompt).read_text(encoding="utf-8"),
                    repair_template=Path(smk.input.repair_prompt).read_text(encoding="utf-8"), smoke=smoke)
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
        write_text_atomic(smk.output.generator, f"# isobench: no usable test was generated for this commit.\n"
                                                f"# {reason[:300]}\n# See llm_transcript.json beside this file.\n")
    write_json(smk.output.transcript, outcome.transcript)
    status = outcome.status
    meta = {"origin": f"{outcome.origin}:{cfg['provider']}/{cfg['model']}", "status": status, "contract": outcome.contract,
            "sha256": sha256_file(smk.output.generator), "error": outcome.error,
            "llm": {"provider": cfg["provider"], "model": cfg["model"], "base_url": cfg["base_url"],
                    "accepted_key": outcome.transcript.get("accepted_key"),
                    "transcript_sha256": sha256_file(smk.output.transcript), **outcome.totals}}
    write_json(smk.output.meta, meta)
    t = outcome.totals
    log.info("generator: %s via %s/%s: %d API requests, %d cached replies%s, %d+%d tokens", status, cfg["provider"],
             cfg["model"], t["api_requests"], t["cached_replies"], " (accepted script from cache)" if t["cache_hit"] else "",
             t["input_tokens"], t["output_tokens"])
    if outcome.error:
        log.warning("generation failed: %s", outcome.error)


def env_step(smk) -> None:
    p = smk.params
    wt = load_json(smk.input.worktree)
    worktree = git.ensure_worktree(Path(p.mirror), smk.wildcards.sha, Path(wt["path"]))
    marker = build_env(sha=smk.wildcards.sha, worktree=worktree, env_dir=Path(p.path), cfg=p.env,
                       setup_commands=list(p.setup_commands), install_commands=list(p.install_commands),
                       runner=Runner.from_config(p.runner), log_path=Path(smk.log[0]).with_suffix(".build.log"))
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
    return Revision(name, sha, path, python=env["python"], env_error=error,
                    read_only=tuple(Path(x) for x in [env.get("path")] if x), on_path=env["worktree_on_path"])


def worktree_step(smk) -> None:
    path = git.ensure_worktree(Path(smk.params.mirror), smk.wildcards.sha, Path(smk.params.path))
    write_json(smk.output.marker, {"sha": smk.wildcards.sha, "path": str(path)})
    log.info("worktree %s at %s", smk.wildcards.sha[:12], path)


def measure_step(smk) -> None:
    p = smk.params
    extraction = load_json(smk.input.extraction)
    shas = {"base": extraction["base_commit"], "head": extraction["head_commit"], "main": p.main_sha}
    settings = Settings.from_config(p.settings)
    generator_meta = load_json(smk.input.generator_meta)
    if generator_meta["status"] == "generation_failed":
        for name in REVISIONS:
            t = not_run(Revision(name, shas[name], Path(".")), "generation_failed", generator_meta["error"], settings)
            validate(t, "timing", f"timing_{name}")
            write_json(getattr(smk.output, name), t)
        log.info("not measured: no test was generated (%s)", generator_meta["error"])
        return
    # A marker may outlive its folder (deleted by hand): revision_of makes sure the checkout is there and clean.
    revisions = [revision_of(name, shas[name], Path(p.mirror), getattr(smk.input, f"worktree_{name}"),
                             getattr(smk.input, f"env_{name}")) for name in REVISIONS]
    cache = MeasurementCache(smk.config.get("measure_cache_dir", ".isobench-cache/measure"),
                             read=smk.config.get("measure_cache", True))
    key = None
    if all(r.env_error is None for r in revisions):
        envs = {name: load_json(getattr(smk.input, f"env_{name}")) for name in REVISIONS}
        key = measurement_key(generator_sha256=sha256_file(smk.input.generator), shas=shas,
                              fingerprints={name: fingerprint(envs[name]) for name in REVISIONS},
                              settings=settings.as_dict(), contract=p.settings.get("contract", "auto"),
                              python_path=list(p.python_path), epoch=p.settings.get("epoch", 0))
    timings = cache.get(key) if key else None
    if timings is not None:
        log.info("measurement: from the measurement cache (key %s; measure.epoch forces a new one)", key[:16])
        timings = {name: {**t, "measurement": {**t["measurement"], "cached": True}} for name, t in timings.items()}
    else:
        log.info("measurement: fresh, %s: %d rounds x (%d warm-up + %d timed calls) per revision", shas["head"][:12],
                 settings.rounds, settings.warmup, settings.repeat)
        timings = measure_commit(Path(smk.input.generator), revisions, Path(p.scratch), settings,
                                 extra_path=tuple(p.python_path), contract=p.settings.get("contract", "auto"),
                                 sandbox=SandboxSettings.from_config(p.isolation["sandbox"]),
                                 runner=Runner.from_config(p.isolation["runner"]))
        stamp = {"key": key, "cached": False, "measured_at": now_iso(), "epoch": p.settings.get("epoch", 0),
                 "ran_on": ran_on()}
        timings = {name: {**redact(t, secrets()), "measurement": stamp} for name, t in timings.items()}
        if key:
            cache.put(key, timings)
    for name in REVISIONS:
        marker = load_json(getattr(smk.input, f"env_{name}"))
        timings[name]["revision_env"] = {"mode": marker.get("mode"), "image": marker.get("image"),
                                         "python": marker.get("python")}
        t = redact(timings[name], secrets())  # a key the sandbox did not let in cannot be printed, but be sure
        validate(t, "timing", f"timing_{name}")
        write_json(getattr(smk.output, name), t)
        if t["status"] == "ok":
            log.info("  %s %s: median %.3f ms (n=%d)", name, t["sha"][:12], t["stats"]["median"], t["stats"]["n"])
        else:
            log.info("  %s %s: failed, %s: %s", name, t["sha"][:12], t["category"], (t["error"] or "")[:300])
    shutil.rmtree(p.scratch, ignore_errors=True)


def record_step(smk) -> None:
    extraction = load_json(smk.input.extraction)
    timings = {name: load_json(getattr(smk.input, f"timing_{name}")) for name in REVISIONS}
    prompt_meta = load_json(smk.input.prompt_meta)
    generator_meta = load_json(smk.input.generator_meta)
    hashes = {
        "extraction": sha256_file(smk.input.extraction),
        "template": prompt_meta["template_sha256"],
        "prompt": sha256_file(smk.input.prompt),
        "generator": sha256_file(smk.input.generator),
        "llm_transcript": sha256_file(smk.input.transcript),
        **{f"timing_{name}": sha256_file(getattr(smk.input, f"timing_{name}")) for name in REVISIONS},
    }
    # the PR that merged the commit, when its extraction names none: here, not in the extraction step, since it
    # depends on main (a moved main must not re-run extraction, prompt and generation)
    merged = None if extraction.get("pr_number") else git.merged_pr(Path(smk.params.mirror), extraction["head_commit"],
                                                                     timings["main"]["sha"])
    record = build_record(extraction=extraction, source_cfg=smk.params.source_cfg, merged_pr=merged,
                          generator_text=Path(smk.input.generator).read_text(encoding="utf-8"), timings=timings,
                          main_sha=timings["main"]["sha"], hashes=hashes, generator_meta=generator_meta,
                          template=prompt_meta["template"], analysis=smk.params.analysis)
    validate(record, "record", smk.output.record)
    write_json(smk.output.record, record)
    cmp = record["comparisons"]["base_head"]
    log.info("record %s: %s, %s", record["instance_id"], record["status"],
             "no comparison" if cmp is None else
             f"speedup {cmp['speedup']:.3f} [{cmp['ci_low']:.3f}, {cmp['ci_high']:.3f}] {cmp['verdict']}")


def dataset_step(smk) -> None:
    n = write_dataset(list(smk.input.records), smk.output.dataset)
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

    report = audit(smk.params.config, Path(smk.params.schema))
    log.info("%s", format_audit(report))
    write_json(smk.params.report, report)
    if not report["ok"]:
        raise IsobenchError(f"audit failed: integrity problems (listed above, in {smk.log[0]} and {smk.params.report})")


def export_step(smk) -> None:
    from .dataset import read_dataset
    from .export import export

    rows = read_dataset(smk.input.dataset)
    for view, files in export(rows, smk.output.folder).items():
        log.info("%s view: %s, %s", view, files["hf"], files["parquet"])
