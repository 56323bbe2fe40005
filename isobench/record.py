"""Assemble and validate one dataset record from a commit's artifacts."""

from __future__ import annotations

from . import __version__
from .harness import HARNESS_VERSION
from .measure import REVISIONS
from .stats import compare

ENV_KEYS = ("python", "torch", "cuda", "gpu", "gpu_driver", "cpu", "cpu_count", "cpu_governor", "host", "platform")


def instance_id(repo: str, head: str) -> str:
    return f"{repo.replace('/', '__')}-{head[:12]}"


def human_performance(timings: dict) -> float | None:
    """ISO-Bench's ratio: median base time over median head time (None unless both are usable)."""
    base, head = timings["base"], timings["head"]
    if base["status"] != "ok" or head["status"] != "ok":
        return None
    b, h = base["stats"]["median"], head["stats"]["median"]
    return b / h if h > 0 else None


def comparisons(timings: dict, analysis: dict) -> dict:
    """base→head and base→main: speedup with its CI, p-values and verdict (None where a side failed)."""
    out = {}
    for other in ("head", "main"):
        base, t = timings["base"], timings[other]
        if base["status"] != "ok" or t["status"] != "ok":
            out[f"base_{other}"] = None
            continue
        paired = base.get("interleave") == t.get("interleave") == "calls"
        out[f"base_{other}"] = compare(base["rounds_ms"], t["rounds_ms"], min_effect=analysis["min_effect"],
                                       alpha=analysis["alpha"], level=analysis["ci_level"],
                                       n_boot=analysis["bootstrap"], seed=analysis["seed"], paired=paired)
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


def build_record(*, extraction: dict, source_cfg: dict, generator_text: str, timings: dict, main_sha: str,
                 hashes: dict, generator_meta: dict, template: str, analysis: dict) -> dict:
    """The record of one commit; ``hashes`` holds the sha256 of each input artifact."""
    generated = generator_meta["status"] != "generation_failed"
    revisions = {}
    for name in REVISIONS:
        t = timings[name]
        revisions[name] = {
            "sha": t["sha"],
            "status": t["status"],
            "category": t["category"],
            "error": t["error"],
            "equivalent": t["equivalent"],
            "n": len(t["samples_ms"]),
            "median_ms": t["stats"]["median"] if t["stats"] else None,
            "iqr_ms": t["stats"]["iqr"] if t["stats"] else None,
            "warnings": t.get("warnings", []),
        }
    ok = {name: timings[name]["status"] == "ok" for name in REVISIONS}
    apis = extraction["affected_apis"]
    return {
        "repo": extraction["repo"],
        "instance_id": instance_id(extraction["repo"], extraction["head_commit"]),
        "created_at": extraction["created_at"],
        "base_commit": extraction["base_commit"],
        "head_commit": extraction["head_commit"],
        "main_commit": main_sha,
        "patch": extraction["patch"],
        "test_patch": extraction["test_patch"],
        "efficiency_test": efficiency_test(generator_text, generated),
        "duration_changes": [{name: recorded_samples(timings[name]) for name in REVISIONS}],
        "human_performance": human_performance(timings),
        "version": source_cfg.get("version"),
        "setup_commands": list(source_cfg.get("setup_commands") or []),
        "install_commands": list(source_cfg.get("install_commands") or []),
        "api": ", ".join(apis) if apis else None,
        "gt_commit_message": extraction["message"],
        "notes": source_cfg.get("notes"),
        "status": ("ok" if ok["base"] and ok["head"] else "failed") if generated else "generation_failed",
        "revisions": revisions,
        "comparisons": comparisons(timings, analysis),
        "provenance": {
            "source": extraction["source"],
            "extraction_file": extraction["extraction_file"],
            "extraction_sha256": extraction["extraction_sha256"],
            "extraction_json_sha256": hashes["extraction"],
            "template": template,
            "template_sha256": hashes["template"],
            "prompt_sha256": hashes["prompt"],
            "generator_sha256": hashes["generator"],
            "generator_origin": generator_meta["origin"],
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
            "warnings": extraction.get("warnings", []),
        },
    }
