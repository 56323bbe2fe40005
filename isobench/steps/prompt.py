"""The prompt rule: the generation prompt rendered from the extraction (or a marker for a failed one)."""

from __future__ import annotations

from ..jsonio import load_json, sha256_file, write_text_atomic, write_valid
from ..prompt import render
from .common import log


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
    write_valid(smk.output.meta, facts, "prompt")
    log.debug("prompt: %d characters%s", len(text), " (diff truncated)" if facts["diff_truncated"] else "")
