"""Render prompt.txt from a template and a normalized extraction.

Templates use ``{{ name }}`` placeholders (see prompts/test_generator.md for the
list); an unknown placeholder is an error naming the template.
"""

from __future__ import annotations

import re
from pathlib import Path

from .errors import IsobenchError

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+)\s*\}\}")
FIELDS = (
    "repo",
    "commit",
    "base_commit",
    "subject",
    "message",
    "files_changed",
    "affected_apis",
    "diff",
    "extra_context",
)


def budget_diff(patch: str, test_patch: str, budget: int) -> tuple[str, bool]:
    """The code diff then the test diff, cut at a line boundary to ``budget`` characters.

    A cut is marked visibly, with how much was left out.
    """
    full = patch + (("\n" if patch and not patch.endswith("\n") else "") + test_patch if test_patch else "")
    if len(full) <= budget:
        return full, False
    cut = full.rfind("\n", 0, budget)
    kept = full[: cut + 1 if cut > 0 else budget]
    marker = f"\n[... diff truncated by isobench: {len(kept)} of {len(full)} characters shown ...]\n"
    return kept + marker, True


def context(extraction: dict, diff_budget: int) -> tuple[dict, bool]:
    files = (
        "\n".join(
            f"- {f['file_path']} ({f['change_type']}, +{f['lines_added']} -{f['lines_removed']}"
            f"{', test' if f['is_test'] else ''})"
            for f in extraction["files_changed"]
        )
        or "(none)"
    )
    diff, truncated = budget_diff(extraction["patch"], extraction["test_patch"], diff_budget)
    extra = extraction.get("extra") or {}
    extra_lines = [
        f"- {k}: {v}" for k, v in sorted(extra.items()) if k in ("perf_command", "models", "pr_url")
    ]
    values = {
        "repo": extraction["repo"],
        "commit": extraction["head_commit"],
        "base_commit": extraction["base_commit"],
        "subject": extraction["subject"],
        "message": extraction["message"],
        "files_changed": files,
        "affected_apis": "\n".join(f"- {a}" for a in extraction["affected_apis"]) or "(none identified)",
        "diff": diff or "(empty diff)",
        "extra_context": "\n".join(extra_lines) or "(none)",
    }
    return values, truncated


def render(template_path: str | Path, extraction: dict, diff_budget: int) -> tuple[str, dict]:
    """The prompt text and facts about it (truncation, template)."""
    try:
        template = Path(template_path).read_text(encoding="utf-8")
    except OSError as exc:
        raise IsobenchError(f"{template_path}: cannot read the prompt template ({exc.strerror})") from None
    unknown = sorted({m.group(1) for m in PLACEHOLDER.finditer(template)} - set(FIELDS))
    if unknown:
        raise IsobenchError(
            f"{template_path}: unknown placeholder {{{{ {unknown[0]} }}}} (known: {', '.join(FIELDS)})"
        )
    values, truncated = context(extraction, diff_budget)
    text = PLACEHOLDER.sub(lambda m: values[m.group(1)], template)
    return text, {"diff_truncated": truncated, "diff_budget": diff_budget}
