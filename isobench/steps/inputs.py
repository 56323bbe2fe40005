"""The steps around the measurement: extraction, prompt, worktree and environment before it; record, dataset,
summary, figures, audit and export after it."""

from __future__ import annotations

from pathlib import Path

from .. import git, worktrees
from ..audit import audit, format_audit
from ..categories import REVISIONS
from ..config import SCHEMA
from ..costs import llm_summary, summary_line
from ..dataset import dataset_of, read_dataset, write_dataset, write_record
from ..envs import build_env
from ..errors import CommitFailure, IsobenchError
from ..extraction import failed_extraction, normalize
from ..failures import outcome_line
from ..front_page import front_page
from ..jsonio import load_json, sha256_file, validate, write_json, write_text_atomic
from ..measure.containers import Runner
from ..prompt import render
from ..record import build_record, tampered, tampered_timings
from ..report import plot_samples, plot_speedups, summary_html
from .common import log


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
        # the record's line says it on the console, and the run's end lists it
        log.debug(
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
    log.debug(
        "extraction %s: base %s, %d files, %d APIs",
        data["head_commit"][:12],
        data["base_commit"][:12],
        len(data["files_changed"]),
        len(data["affected_apis"]),
    )


def prompt_step(smk) -> None:
    extraction = load_json(smk.input.extraction)
    # a failed extraction gets a marker, never sent to an LLM (the generator step checks prompt.json)
    if extraction.get("status") == "failed":
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
    log.debug("prompt: %d characters%s", len(text), " (diff truncated)" if facts["diff_truncated"] else "")


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
    write_json(smk.output.marker, marker)
    if marker["status"] == "ok":
        log.debug("env %s: %s, python %s", smk.wildcards.sha[:12], marker["mode"], marker["python"])
    else:
        log.warning("env %s: failed: %s (log: %s)", smk.wildcards.sha[:12], marker["error"], marker["log"])


def worktree_step(smk) -> None:
    path = worktrees.ensure_worktree(Path(smk.params.mirror), smk.wildcards.sha, Path(smk.params.path))
    write_json(smk.output.marker, {"sha": smk.wildcards.sha, "path": str(path)})
    log.debug("worktree %s at %s", smk.wildcards.sha[:12], path)


def record_step(smk) -> None:
    extraction = load_json(smk.input.extraction)
    timings = {name: load_json(getattr(smk.input, f"timing_{name}")) for name in REVISIONS}
    timing_sha256 = {name: sha256_file(getattr(smk.input, f"timing_{name}")) for name in REVISIONS}
    paths = {name: getattr(smk.input, f"timing_{name}") for name in REVISIONS}
    for name, problem in tampered_timings(smk.input.timing_seal, paths, timing_sha256).items():
        log.error("isobench: %s (the record says tampered; measure again with --forcerun measure)", problem)
        timings[name] = tampered(timings[name], problem)
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
    write_record(smk.output.record, record, smk.output.seal)
    log.info("%s", outcome_line(record))


def dataset_step(smk) -> None:
    dataset = dataset_of(smk.output.complete)  # not an output: never deleted by Snakemake (rules/dataset.smk)
    n = write_dataset(list(smk.input.records), dataset, smk.output.complete)
    log.info("dataset %s: %d records", dataset, n)


def llm_summary_step(smk) -> None:
    summary = llm_summary(list(smk.input.metas), prices=dict(smk.params.prices))
    write_json(smk.output.summary, summary)
    log.debug("%s", summary_line(summary, "all commits of the dataset"))


def report_figures_step(smk) -> None:

    rows = read_dataset(smk.input.dataset)
    plot_speedups(rows, smk.output.speedups)
    plot_samples(rows, smk.output.samples)
    write_text_atomic(smk.output.table, summary_html(rows))
    page = front_page(
        rows,
        load_json(smk.input.llm_summary),
        Path(smk.output.speedups).read_text(encoding="utf-8"),
        dataset_of(smk.input.dataset),
    )
    write_text_atomic(smk.output.front, page)
    log.info("report figures of %d records in %s", len(rows), Path(smk.output.table).parent)


def audit_step(smk) -> None:

    report = audit(smk.params.config, SCHEMA)
    log.info("%s", format_audit(report))
    write_json(smk.params.report, report)
    if not report["ok"]:
        raise IsobenchError(
            f"audit failed: integrity problems (listed above, in {smk.log[0]} and {smk.params.report})"
        )
