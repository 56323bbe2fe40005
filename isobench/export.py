"""The dataset for others: Hugging Face ``datasets`` (save_to_disk and Parquet) in three views.

- ``isobench``: the records as they are (dataset.jsonl);
- ``swe-perf``: SWE-Perf's field names (instance_id, repo, base_commit, patch, test_patch, problem_statement,
  created_at, version, efficiency_test, duration_changes as base/head pairs, human_performance, ...);
- ``gso``: GSO's field names (opt_commit, api, prob_script, tests, hints_text, gt_commit_message, gt_diff,
  setup/install commands, arch, instance_image_tag).
Views only rename and select: every value comes from the record.
"""

from __future__ import annotations

import re
from pathlib import Path

from .card import card_text
from .features import encode, view_features

VIEWS = ("isobench", "swe-perf", "gso")


def _arch(record: dict) -> str:
    platform = ((record.get("provenance") or {}).get("environment") or {}).get("platform") or ""
    found = re.search(r"(x86_64|aarch64|arm64|ppc64le|s390x)", platform)
    return found.group(1) if found else "x86_64"


def swe_perf_view(r: dict) -> dict:
    samples = (r.get("duration_changes") or [{}])[0]
    return {
        "instance_id": r["instance_id"],
        "repo": r["repo"],
        "base_commit": r["base_commit"],
        "head_commit": r["head_commit"],
        "patch": r["patch"],
        "test_patch": r["test_patch"],
        "problem_statement": r.get("gt_commit_message") or "",
        "hints_text": "",
        "created_at": r["created_at"],
        "version": r.get("version"),
        "efficiency_test": r["efficiency_test"],
        "duration_changes": [{"base": samples.get("base") or [], "head": samples.get("head") or []}],
        "human_performance": r.get("human_performance"),
        "patch_functions": [r["api"]] if r.get("api") else [],
        "test_functions": [],
        "status": r["status"],
    }


def gso_view(r: dict) -> dict:
    message = r.get("gt_commit_message") or ""
    return {
        "instance_id": r["instance_id"],
        "repo": r["repo"],
        "base_commit": r["base_commit"],
        "opt_commit": r["head_commit"],
        "api": r.get("api") or "",
        "prob_script": r["efficiency_test"][0],
        "tests": list(r["efficiency_test"]),
        "hints_text": message,
        "setup_commands": r.get("setup_commands") or [],
        "install_commands": r.get("install_commands") or [],
        "created_at": r["created_at"],
        "gt_commit_message": message,
        "gt_diff": r["patch"],
        "arch": _arch(r),
        "instance_image_tag": "latest",
    }


def view(rows: list[dict], name: str) -> list[dict]:
    """The rows in view ``name``. SWE-Perf and GSO hold benchmark instances only: records whose base and head
    were both measured (status ok); the isobench view keeps every record, failures included."""
    if name not in VIEWS:
        raise ValueError(f"unknown view {name!r} (one of {', '.join(VIEWS)})")
    if name == "isobench":
        return [dict(r) for r in rows]
    convert = swe_perf_view if name == "swe-perf" else gso_view
    return [convert(r) for r in rows if r["status"] == "ok"]


def to_dataset(rows: list[dict], name: str = "isobench"):
    """The rows in view ``name`` as a ``datasets.Dataset`` whose Features come from the record schema (the same
    columns and types for every run, so that exports concatenate; isobench/features.py)."""
    from datasets import Dataset

    features = view_features(name)
    return Dataset.from_list(encode(view(rows, name), features), features=features)


def export(rows: list[dict], out: str | Path, views=VIEWS, split: str = "test") -> dict[str, dict[str, str]]:
    """Each view under ``out/<view>/``: ``hf/`` (Dataset.save_to_disk) and ``<split>.parquet``; the isobench
    view also its dataset card, ``README.md`` (isobench/card.py)."""
    written = {}
    for name in views:
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        dataset = to_dataset(rows, name)
        dataset.save_to_disk(str(folder / "hf"))
        dataset.to_parquet(str(folder / f"{split}.parquet"))
        written[name] = {"hf": str(folder / "hf"), "parquet": str(folder / f"{split}.parquet")}
        if name == "isobench":  # the card describes the record's own fields
            card = card_text(rows, split, [], view_features(name), "isobench dataset")
            (folder / "README.md").write_text(card, encoding="utf-8")
            written[name]["card"] = str(folder / "README.md")
    return written
