"""``pr_analysis``: ``commit_hash``, ``commit_subject``, ``commit_message``, ``diff_text``, ``files_changed`` as
paths, ``apis``, ``pr_url``, ``perf_command``, ``models``; no ``parent_hash`` (the parent comes from git).
ISO-Bench also ships these as one JSON Lines file (one record a line)."""

from __future__ import annotations

from .base import Format, register

_NOT_A_MODEL = {"n/a", "na", "none", "null", "-", ""}  # "not model-specific", never a model name


def models(values) -> list[str]:
    return [m for m in values or [] if isinstance(m, str) and m.strip().lower() not in _NOT_A_MODEL]


@register
class PrAnalysis(Format):
    name = "pr_analysis"
    schema = "extraction_pr"
    markers = ("commit_subject",)
    extra_keys = ("pr_url", "pr_date", "perf_command", "models", "lm_eval_commands", "test_details", "stats")

    def rank(self, data: dict) -> int | None:
        if "commit_subject" in data or "pr_url" in data:
            return 1
        return 3 if "diff_text" in data else None

    def extra(self, data: dict) -> dict:
        extra = super().extra(data)
        if "models" in extra:
            extra["models"] = models(extra["models"])
            if not extra["models"]:
                del extra["models"]
        return extra

    def message(self, data: dict) -> str | None:
        return None  # commit_message is the PR's text, not necessarily the commit's
