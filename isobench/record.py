"""Assemble and validate one dataset record from a commit's artifacts."""

from __future__ import annotations

import json
import re

from . import __version__
from .categories import REVISIONS
from .errors import IsobenchError
from .jsonio import load_json, sha256_file
from .measure import lockstep
from .measure.coverage import combine
from .measure.harness import HARNESS_VERSION
from .measure.stats import Analysis, compare
from .provenance import generator_of, origin_string

ENV_KEYS = (
    "python",
    "torch",
    "cuda",
    "gpu",
    "gpu_driver",
    "cpu",
    "cpu_count",
    "cpu_governor",
    "host",
    "platform",
)


_ARCH = re.compile(r"(x86_64|amd64|aarch64|arm64|ppc64le|s390x|riscv64|i[3-6]86)", re.IGNORECASE)


def instance_id(repo: str, head: str, pr: int | None = None) -> str:
    """As ISO-Bench builds it: ``owner__repo-PR-<n>`` when the pull request is known, else ``owner__repo-<sha7>``."""
    stem = repo.replace("/", "__")
    return f"{stem}-PR-{pr}" if pr else f"{stem}-{head[:7]}"


def human_performance(timings: dict, statistic: str = "median") -> float | None:
    """base time over head time (None unless both are usable). isobench publishes the ratio of medians;
    ISO-Bench's own is the ratio of means (``statistic="mean"``), kept beside it as human_performance_mean."""
    base, head = timings["base"], timings["head"]
    if base["status"] != "ok" or head["status"] != "ok":
        return None
    b, h = base["stats"][statistic], head["stats"][statistic]
    return b / h if h > 0 else None


def test_failed(status: str) -> str:
    """ISO-Bench's flag: "Yes" unless the test ran cleanly at base and head (main may fail: the API can be gone)."""
    return "No" if status == "ok" else "Yes"


def composed_version(timings: dict) -> str | None:
    """What was really measured, when the source's config gives no ``version``: the Python and architecture
    the test ran on, the environment (the worktree on PYTHONPATH, a venv, or an image) and the SHA installed
    there, e.g. ``python3.11-x86_64-venv@1981ab365373``."""
    for name in ("head", "base", "main"):
        t = timings[name]
        env = t.get("env") or {}
        if not env.get("python"):
            continue
        arch = env.get("machine") or next(iter(_ARCH.findall(env.get("platform") or "")), "unknown-arch")
        renv = t.get("revision_env") or {}
        mode = renv.get("mode") or "none"
        where = {"none": "worktree", "venv": "venv"}.get(mode) or f"image:{renv.get('image')}"
        python = ".".join(str(env["python"]).split(".")[:2])
        return f"python{python}-{arch}-{where}@{t['sha'][:12]}"
    return None


def comparisons(timings: dict, analysis: dict) -> dict:
    """base→head and base→main: speedup with its CI, p-values and verdict (None where a side failed)."""
    out = {}
    for other in ("head", "main"):
        base, t = timings["base"], timings[other]
        if base["status"] != "ok" or t["status"] != "ok":
            out[f"base_{other}"] = None
            continue
        paired = lockstep.paired(base, t)
        out[f"base_{other}"] = compare(
            base["rounds_ms"], t["rounds_ms"], analysis=Analysis.from_config(analysis), paired=paired
        )
    return out


def environment(timings: dict) -> dict:
    for name in ("head", "base", "main"):
        env = timings[name].get("env")
        if env:
            return {k: env.get(k) for k in ENV_KEYS}
    return {}


def efficiency_test(generator_text: str, generated: bool) -> list[str]:
    """The record's copy of the test: none when no test was generated (generator.py then holds a marker)."""
    return [generator_text] if generated else []


def recorded_samples(timing: dict) -> list[float]:
    """A revision's samples in the record: all of them when it succeeded, none when it failed (its timing file
    keeps what it measured before failing)."""
    return timing["samples_ms"] if timing["status"] == "ok" else []


def _json_text(value) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, ensure_ascii=False)


def revision_figures(timing: dict) -> dict:
    """A revision's entry in the record's ``revisions``: its state and statistics, from its timing file."""
    stats = timing["stats"]
    return {
        "sha": timing["sha"],
        "status": timing["status"],
        "category": timing["category"],
        "error": timing["error"],
        "equivalent": timing["equivalent"],
        "n": len(timing["samples_ms"]),
        "median_ms": stats["median"] if stats else None,
        "iqr_ms": stats["iqr"] if stats else None,
        "warnings": timing.get("warnings", []),
        # a command-line script's own word: its last report (module, symbol, ...) and every problem it stated
        # (as JSON text: their keys differ from script to script, and a record's columns keep one shape)
        "script_report": _json_text(timing.get("script_report")),
        "script_errors": [_json_text(line) for line in timing.get("script_errors") or []],
    }


# The record's fields that are computed from the timing files alone (the audit recomputes them).
FIGURES = (
    "duration_changes",
    "human_performance",
    "human_performance_mean",
    "test_failed",
    "status",
    "revisions",
    "comparisons",
    "coverage",
)


def figures(timings: dict, analysis: dict, generator_status: str) -> dict:
    """The record's numbers and statuses, each computed from the three timing files (``analysis``: the
    analysis settings; ``generator_status``: generator.json's status)."""
    if generator_status == "generation_failed":
        status = "generation_failed"
    else:
        status = "ok" if timings["base"]["status"] == timings["head"]["status"] == "ok" else "failed"
    return {
        "duration_changes": [{name: recorded_samples(timings[name]) for name in REVISIONS}],
        "human_performance": human_performance(timings),
        "human_performance_mean": human_performance(timings, "mean"),
        "test_failed": test_failed(status),
        "status": status,
        "revisions": {name: revision_figures(timings[name]) for name in REVISIONS},
        "comparisons": comparisons(timings, analysis),
        "coverage": combine(
            timings["base"].get("coverage"),
            timings["head"].get("coverage"),
            opt_path_hit=(timings["head"].get("script_report") or {}).get("opt_path_hit"),
        ),
    }


def tampered(timing: dict, problem: str) -> dict:
    """A timing file that is not what its measurement wrote, as the record takes it: failed, ``tampered``, its
    samples unused."""
    return {
        **timing,
        "status": "failed",
        "category": "tampered",
        "error": problem,
        "samples_ms": [],
        "rounds_ms": [],
        "stats": None,
        "equivalent": None,
    }


def build_record(
    *,
    extraction: dict,
    source_cfg: dict,
    generator_text: str,
    timings: dict,
    main_sha: str,
    hashes: dict,
    generator_meta: dict,
    template: str,
    analysis: dict,
    merged_pr: int | None = None,
) -> dict:
    """The record of one commit; ``hashes`` holds the sha256 of each input artifact; ``merged_pr`` the PR of a
    "Merge pull request #n" commit that brought the commit into main (used when the extraction names none)."""
    if extraction.get("status") == "failed":  # unusable inputs: what is known, the rest empty
        extraction = {
            "created_at": "",
            "patch": "",
            "test_patch": "",
            "affected_apis": [],
            "message": "",
            **extraction,
            "head_commit": extraction["head_commit"] or extraction["commit"],
        }
    pr = extraction.get("pr_number") or merged_pr
    pr_from = None if pr is None else ("extraction" if extraction.get("pr_number") else "merge_commit")
    generated = generator_meta["status"] not in ("generation_failed", "not_generated")
    generator = generator_of(generator_meta)  # derived from the origin string of an older generator.json
    numbers = figures(timings, analysis, generator_meta["status"])
    apis = extraction["affected_apis"]
    return {
        "repo": extraction["repo"],
        "instance_id": instance_id(extraction["repo"], extraction["head_commit"], pr),
        "created_at": extraction["created_at"],
        "base_commit": extraction["base_commit"],
        "head_commit": extraction["head_commit"],
        "main_commit": main_sha,
        "patch": extraction["patch"],
        "test_patch": extraction["test_patch"],
        "efficiency_test": efficiency_test(generator_text, generated),
        **numbers,
        "version": source_cfg.get("version") or composed_version(timings),
        "setup_commands": list(source_cfg.get("setup_commands") or []),
        "install_commands": list(source_cfg.get("install_commands") or []),
        "api": ", ".join(apis) if apis else None,
        "gt_commit_message": extraction["message"],
        "notes": source_cfg.get("notes"),
        "patch_functions": list(extraction.get("patch_functions") or []),
        "test_functions": list(extraction.get("test_functions") or []),
        "pr_number": pr,
        "provenance": {
            "source": extraction["source"],
            "extraction_file": extraction["extraction_file"],
            "extraction_sha256": extraction["extraction_sha256"],
            "extraction_json_sha256": hashes["extraction"],
            "template": template,
            "template_sha256": hashes["template"],
            "prompt_sha256": hashes["prompt"],
            "generator_sha256": hashes["generator"],
            "generator": generator,
            "generator_origin": origin_string(generator) if generator else generator_meta.get("origin"),
            "generator_status": generator_meta["status"],
            "generation_error": generator_meta.get("error"),
            "llm": generator_meta.get("llm"),
            "llm_transcript_sha256": hashes.get("llm_transcript"),
            "timing_sha256": {name: hashes[f"timing_{name}"] for name in REVISIONS},
            "harness_version": HARNESS_VERSION,
            "isobench_version": __version__,
            "environment": environment(timings),
            "measurement": timings["base"].get("measurement"),
            "contract": timings["base"].get("contract"),
            "measure_settings": timings["base"].get("settings"),
            "analysis": analysis,
            "configured_version": source_cfg.get("version"),  # the record's version may be composed
            "pr_from": pr_from,  # where pr_number comes from: the extraction, or a merge commit to main
            "warnings": extraction.get("warnings", []),
        },
    }


def tampered_timings(seal_path: str, timing_paths: dict, sha256: dict | None = None) -> dict[str, str]:
    """{revision: why} for timing files whose content is not what their measure job wrote (``sha256``: their
    digests when the caller has them already)."""
    try:
        sealed = load_json(seal_path).get("sha256") or {}
    except IsobenchError:
        sealed = {}
    out = {}
    for name, path in timing_paths.items():
        digest = (sha256 or {}).get(name) or sha256_file(path)
        if sealed.get(name) != digest:
            out[name] = (
                f"{path}: its content is not what its measurement wrote (sha256 differs from {seal_path})"
            )
    return out
