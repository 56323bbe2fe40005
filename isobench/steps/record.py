"""The record rule: one validated record per commit from its extraction, prompt, test and timings."""

from __future__ import annotations

from pathlib import Path

from .. import git
from ..categories import REVISIONS
from ..dataset import write_record
from ..failures import outcome_line
from ..jsonio import load_json, sha256_file, validate
from ..record import build_record, tampered, tampered_timings
from .common import log


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
