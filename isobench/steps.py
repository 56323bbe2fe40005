"""The work of each rule, called by the thin scripts in ``scripts/`` with Snakemake's ``snakemake`` object."""

from __future__ import annotations

import logging
import shutil
import sys
import traceback
from pathlib import Path

from . import generators, git
from .costs import llm_summary, summary_line
from .dataset import write_dataset
from .errors import IsobenchError
from .extraction import normalize
from .generate import Cache, Generator, Policy
from .jsonio import load_json, sha256_file, validate, write_json, write_text_atomic
from .llm import LLMSettings
from .measure import REVISIONS, Revision, Settings, measure_commit, not_run, smoke_run
from .prompt import render
from .record import build_record

log = logging.getLogger("isobench")


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
                     extraction_file=p.extraction_file)
    if p.base and data["base_commit"] != p.base:
        raise IsobenchError(f"{p.extraction_file}: field parent_hash: changed since the run was planned; run again")
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
    p, cfg = smk.params, smk.params.llm
    smoke = None
    if cfg["smoke_run"] and p.commit:
        marker = load_json(smk.input.worktree_head)
        worktree = git.ensure_worktree(Path(p.mirror), p.commit, Path(marker["path"]))
        candidate = Path(p.scratch + ".candidate.py")

        def smoke(script: str) -> str | None:
            write_text_atomic(candidate, script)
            try:
                return smoke_run(candidate, worktree, Path(p.scratch), cfg["smoke_timeout_s"],
                                 extra_path=tuple(p.python_path))
            finally:
                candidate.unlink(missing_ok=True)

    gen = Generator(LLMSettings.from_config(cfg), Policy.from_config(cfg), Cache(cfg["cache_dir"], read=cfg["cache"]),
                    system=Path(smk.input.system_prompt).read_text(encoding="utf-8"),
                    repair_template=Path(smk.input.repair_prompt).read_text(encoding="utf-8"), smoke=smoke)
    outcome = gen.generate(Path(smk.input.prompt).read_text(encoding="utf-8"))
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
    revisions = []
    for name in REVISIONS:
        marker = load_json(getattr(smk.input, f"worktree_{name}"))
        if marker["sha"] != shas[name]:
            raise IsobenchError(f"{smk.input.extraction}: {name} is {shas[name]} but its worktree holds {marker['sha']}")
        # The marker may outlive its folder (deleted by hand): make sure the checkout is there and clean.
        path = git.ensure_worktree(Path(p.mirror), shas[name], Path(marker["path"]))
        revisions.append(Revision(name, shas[name], path))
    log.info("measuring %s: %d rounds x (%d warm-up + %d timed calls) per revision", shas["head"][:12],
             settings.rounds, settings.warmup, settings.repeat)
    timings = measure_commit(Path(smk.input.generator), revisions, Path(p.scratch), settings,
                             extra_path=tuple(p.python_path), contract=p.settings.get("contract", "auto"))
    for name in REVISIONS:
        t = timings[name]
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
    record = build_record(extraction=extraction, source_cfg=smk.params.source_cfg,
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
