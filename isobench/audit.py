"""``isobench audit``: every artifact traced back to what made it, and checked.

For each commit of the config's plan: the chain extraction.json → prompt.txt → generator.py → timing files →
record.json → dataset line is re-hashed against the sha256 sums in the record's provenance; every JSON file the
workflow wrote is validated against its schema (isobench/artifacts.py), and every figure of the record (samples,
statuses, per-revision statistics, human_performance, comparisons) is computed again from its sealed timing files
and compared. Records built with a template, config values, harness or main SHA that no longer match are stale;
planned commits without a record (or a dataset line) are missing. Files a run set aside (damaged or edited
records and datasets) are named. Every file the workflow wrote under ``results/`` is searched for strings that
look like secrets (the repositories' own checkouts and installed environments are not ours, and are skipped).

Integrity problems (a hash or a schema that does not match, a figure that its timing files do not give, a dataset
line that differs from its record, a file set aside, a secret) fail the audit; stale and missing records are
reported (and fail it with ``strict``).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

from . import artifacts
from .categories import REVISIONS
from .config import (
    RECORDED_SOURCE_KEYS,
    analysis_settings,
    llm_settings,
    measure_settings,
    public_source_config,
    template_for,
)
from .dataset import read_dataset
from .errors import IsobenchError
from .jsonio import load_json, sha256_file, validate
from .llm import LLMSettings
from .measure.harness import HARNESS_VERSION
from .plan import plan_sources
from .provenance import generator_of
from .record import FIGURES, efficiency_test, figures, tampered_timings
from .record import tampered as tampered_timing
from .report import failures, format_failures
from .secrecy import ALL_KEY_ENVS, known_values, refuse_secrets, secret_hits

INTEGRITY = ("integrity", "schema", "secret")
# Folders under results/ that hold other people's files: the mirror, checkouts, installed environments.


@dataclass
class Finding:
    kind: str  # integrity | schema | secret | stale | missing
    artifact: str
    detail: str


def _hash_chain(folder: Path, record: dict, out: list[Finding]) -> dict[str, str]:
    """Each artifact's sha256 against the record's provenance; returns the timing files that are not what their
    measurement wrote ({revision: why})."""
    prov = record["provenance"]
    expected = {
        "extraction.json": prov.get("extraction_json_sha256"),
        "prompt.txt": prov.get("prompt_sha256"),
        "generator.py": prov.get("generator_sha256"),
        "llm_transcript.json": prov.get("llm_transcript_sha256"),
    }
    expected.update({f"timing_{n}.json": (prov.get("timing_sha256") or {}).get(n) for n in REVISIONS})
    seal = folder / "timing_seal.json"
    tampered = (
        tampered_timings(
            str(seal),
            {
                n: str(folder / f"timing_{n}.json")
                for n in REVISIONS
                if (folder / f"timing_{n}.json").is_file()
            },
        )
        if seal.is_file()
        else {}
    )
    for name, why in tampered.items():  # what its measurement wrote is known: say so, once
        out.append(Finding("integrity", str(folder / f"timing_{name}.json"), f"tampered: {why}"))
    for name, want in expected.items():
        path = folder / name
        if want is None or name[len("timing_") : -len(".json")] in tampered:
            continue
        if not path.is_file():
            out.append(Finding("integrity", str(path), f"missing (provenance names sha256 {want[:12]}…)"))
            continue
        try:
            got = sha256_file(path)
        except OSError as exc:
            out.append(Finding("integrity", str(path), f"unreadable: {exc.strerror}"))
            continue
        if got != want:
            out.append(
                Finding("integrity", str(path), f"sha256 {got[:12]}… is not provenance's {want[:12]}…")
            )
    generator = folder / "generator.py"
    generated = prov.get("generator_status") not in ("generation_failed", "not_generated")
    if generator.is_file() and record.get("efficiency_test") != efficiency_test(_text(generator), generated):
        out.append(
            Finding("integrity", str(folder / "record.json"), "efficiency_test differs from generator.py")
        )
    return tampered


def _text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _load_valid(path: Path, schema: str, out: list[Finding]) -> dict | None:
    """The JSON file, or None with a schema finding when it is unreadable, not JSON or not valid."""
    try:
        data = load_json(path)
        validate(data, schema, str(path))
        return data
    except IsobenchError as exc:
        out.append(Finding("schema", str(path), str(exc)))
    except (OSError, UnicodeDecodeError) as exc:
        out.append(Finding("schema", str(path), f"unreadable: {exc}"))
    return None


def _differences(got, want, where: str) -> list[tuple[str, object, object]]:
    """(field, recorded, recomputed) for each leaf where two JSON values differ (floats to 1e-9, relative)."""
    if isinstance(got, dict) and isinstance(want, dict):
        keys = list(want) + [k for k in got if k not in want]
        return [d for k in keys for d in _differences(got.get(k), want.get(k), f"{where}.{k}")]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (a, b) in enumerate(zip(got, want)) for d in _differences(a, b, f"{where}[{i}]")]
    numbers = (int, float)
    if isinstance(got, numbers) and isinstance(want, numbers) and not isinstance(got, bool):
        return [] if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) else [(where, got, want)]
    return [] if got == want else [(where, got, want)]


def _shown(value) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _against_timings(folder: Path, record: dict, tampered: dict, out: list[Finding]) -> None:
    """The record's figures — samples, statuses, per-revision statistics, human_performance, comparisons — each
    computed again from its (schema-valid, sealed) timing files, as the record step computes them; every
    difference is a finding. Timing files that are not what their measurement wrote are named elsewhere."""
    timings = {}
    for name in REVISIONS:
        path = folder / f"timing_{name}.json"
        if not path.is_file():
            return
        timing = _load_valid(path, "timing", out)
        if timing is None or name in tampered:
            return
        rev = record["revisions"][name]
        # the record refused this timing file when it was built: recomputed the same way
        timings[name] = tampered_timing(timing, rev["error"]) if rev["category"] == "tampered" else timing
    prov = record["provenance"]
    if not isinstance(prov.get("analysis"), dict):
        return
    want = figures(timings, prov["analysis"], prov.get("generator_status") or "")
    for field in FIGURES:
        for where, got, expected in _differences(record.get(field), want[field], field):
            out.append(
                Finding(
                    "integrity",
                    str(folder / "record.json"),
                    f"{where}: the record says {_shown(got)}, its timing files give {_shown(expected)}",
                )
            )


def _stale(
    record: dict, source: str, main_sha: str, config: dict, schema: Path, path: str, out: list[Finding]
) -> None:
    prov = record["provenance"]
    template = template_for(config, source)
    if prov.get("template") != template:
        out.append(
            Finding(
                "stale", path, f"built with template {prov.get('template')}, the config now names {template}"
            )
        )
    elif not Path(template).is_file() or sha256_file(template) != prov.get("template_sha256"):
        out.append(Finding("stale", path, f"{template} changed since the record was built"))
    now = measure_settings(config, source, schema)
    changed = sorted(k for k, v in (prov.get("measure_settings") or {}).items() if k in now and now[k] != v)
    measured = prov.get("measurement") or {}
    if "epoch" in measured and measured["epoch"] != now["epoch"]:
        changed.append("epoch")
    if changed:
        out.append(Finding("stale", path, f"measure settings changed: {', '.join(changed)}"))
    if prov.get("analysis") != analysis_settings(config, schema):
        out.append(Finding("stale", path, "analysis settings changed"))
    public = public_source_config(config, source)
    recorded = {**record, "version": prov.get("configured_version", record.get("version"))}
    changed = [k for k in RECORDED_SOURCE_KEYS if recorded.get(k) != public[k]]
    if changed:
        out.append(Finding("stale", path, f"source config changed: {', '.join(changed)}"))
    generator = generator_of(prov) or {}  # an older record has only the origin string: derived from it
    if generator.get("source") in ("llm", "cache"):
        llm = llm_settings(config, source, schema)
        if (generator["provider"], generator["model"]) != (llm["provider"], llm["model"]):
            out.append(
                Finding(
                    "stale",
                    path,
                    f"generated by {generator['provider']}/{generator['model']}, the config now names "
                    f"{llm['provider']}/{llm['model']}",
                )
            )
    if prov.get("harness_version") != HARNESS_VERSION:
        out.append(
            Finding("stale", path, f"harness version {prov.get('harness_version')}, now {HARNESS_VERSION}")
        )
    if record.get("main_commit") != main_sha:
        out.append(
            Finding("stale", path, f"main was {str(record.get('main_commit'))[:12]}, now {main_sha[:12]}")
        )


_SET_ASIDE = re.compile(r"\.(damaged|edited)-\d+(-\d+)?$")


def set_aside_files(results: Path) -> list[Finding]:
    """Files a run set aside (isobench/dataset.py: a record or dataset that was damaged or edited by hand, then
    rebuilt or restored): kept as evidence, and integrity findings until someone has looked at them."""
    return [
        Finding(
            "integrity",
            str(path),
            f"set aside by a run: {_SET_ASIDE.search(path.name).group(1)} (not what its step wrote); the run "
            "rebuilt or restored it: inspect this copy, then delete it",
        )
        for path in sorted(artifacts.ours(results))
        if _SET_ASIDE.search(path.name)
    ]


def refuse_unpublishable(rows: list[dict], where: str, config: dict | None, schema: Path) -> None:
    """Before export and push: nothing the secret scan flags leaves (``refuse_secrets``), the config's key
    variables included (without a config: every known one)."""
    variables = key_variables(config, schema) if config is not None else sorted(ALL_KEY_ENVS)
    refuse_secrets(rows, where, variables)


def key_variables(config: dict, schema: Path) -> list[str]:
    """Environment variables that hold keys for this config: the LLM providers' (and any source's
    api_key_env) and HF_TOKEN."""
    names = set(ALL_KEY_ENVS)
    for source in config.get("sources", {}):
        names.add(LLMSettings.from_config(llm_settings(config, source, schema)).key_env)
    return sorted(names)


def find_secrets(results: Path, variables: list[str] = ()) -> list[Finding]:
    found = []
    known = known_values(variables)
    for path in artifacts.ours(results):
        try:
            data = path.read_bytes()
        except OSError:
            continue
        hits = secret_hits(data, known)
        if hits:
            where = ", ".join(f"{kind} at byte {at}" for kind, at in sorted(hits.items()))
            found.append(Finding("secret", str(path), f"looks like: {where}"))
    return found


def audit(config: dict, schema: Path, results: Path = Path("results")) -> dict:
    """The audit of the run described by ``config`` (run from the workflow's folder)."""
    findings: list[Finding] = []
    dataset = Path(config["dataset"])
    rows = []
    if dataset.is_file():
        try:
            rows = read_dataset(dataset)
        except IsobenchError as exc:
            findings.append(Finding("integrity", str(dataset), str(exc)))
    else:  # nothing to vouch for: never "OK"
        findings.append(Finding("integrity", str(dataset), "no dataset: run the workflow first"))
    lines: dict[tuple, dict] = {}
    for lineno, row in enumerate(rows, 1):
        key = (row.get("repo"), row.get("head_commit"))
        if key in lines:
            findings.append(Finding("integrity", f"{dataset}:{lineno}", f"second line for {key[0]} {key[1]}"))
        lines[key] = row
    seen, records = set(), 0
    try:
        plans = plan_sources(config, prepare=False)
    except IsobenchError as exc:
        raise IsobenchError(
            f"audit: cannot plan the config's commits ({exc}); run the workflow first"
        ) from None
    for source, plan in plans.items():
        for key in plan.commits:
            folder = results / source / key
            path = folder / "record.json"
            if not path.is_file():
                findings.append(Finding("missing", str(path), "no record for this planned commit"))
                continue
            records += 1
            record = _load_valid(path, "record", findings)
            if record is None:
                continue
            _against_timings(folder, record, _hash_chain(folder, record, findings), findings)
            _stale(record, source, plan.main_sha, config, schema, str(path), findings)
            line_key = (record["repo"], record["head_commit"])
            seen.add(line_key)
            if line_key not in lines:
                findings.append(Finding("missing", str(dataset), f"no line for {path}"))
            elif lines[line_key] != record:
                findings.append(
                    Finding(
                        "integrity", str(dataset), f"the line of {record['instance_id']} differs from {path}"
                    )
                )
    planned = {c.head for plan in plans.values() for c in plan.commits.values()}
    # a planned one is reported missing above
    for key in sorted(k for k in lines.keys() - seen if k[1] not in planned):
        findings.append(
            Finding("stale", str(dataset), f"line for {key[0]} {key[1]}: not a commit of the config")
        )
    if results.is_dir():
        checked = {f.artifact for f in findings if f.kind == "schema"} | {
            str(results / source / key / name)
            for source, plan in plans.items()
            for key in plan.commits
            for name in ("record.json", *(f"timing_{r}.json" for r in REVISIONS))
        }
        findings += [
            Finding("schema", str(path), why)
            for path, schema in artifacts.walk(results)
            if schema and str(path) not in checked and (why := artifacts.check(path, schema))
        ]
        findings += set_aside_files(results)
        findings += find_secrets(results, key_variables(config, schema))
    kinds = Counter(f.kind for f in findings)
    return {
        "ok": not any(kinds[k] for k in INTEGRITY),
        "records": records,
        "dataset_lines": len(rows),
        "counts": {k: kinds[k] for k in (*INTEGRITY, "stale", "missing")},
        "failures": failures(rows),
        "findings": [asdict(f) for f in findings],
    }


def format_audit(report: dict) -> str:
    c = report["counts"]
    lines = [
        f"isobench audit: {report['records']} records, {report['dataset_lines']} dataset lines",
        f"  integrity problems {c['integrity']}, schema violations {c['schema']}, secrets {c['secret']}, "
        f"stale {c['stale']}, missing {c['missing']}",
    ]
    width = max((len(f["artifact"]) for f in report["findings"]), default=0)
    for f in report["findings"]:
        lines.append(f"  {f['kind']:<9} {f['artifact']:<{width}}  {f['detail']}")
    if report["failures"]:
        lines.append("failures by category: " + format_failures(report["failures"]))
    lines.append("verdict: " + ("OK" if report["ok"] else "FAILED (integrity problems above)"))
    return "\n".join(lines)


def exit_code(report: dict, strict: bool = False) -> int:
    if not report["ok"]:
        return 1
    return 1 if strict and (report["counts"]["stale"] or report["counts"]["missing"]) else 0


def dumps(report: dict) -> str:
    return json.dumps(report, indent=2)
