"""The dataset card (README.md) pushed with the data and written beside each export.

It is what a Hub user reads first: the YAML metadata the Hub reads (configs with each split's files, the
features of isobench/features.py, tags), what the records are, every field with its type and meaning (from the
record schema), how the timings were measured (from the records' own provenance: settings, machines, dates),
and where the tests came from. Every figure is computed from the rows it describes; nothing is typed by hand.
"""

from __future__ import annotations

from collections import Counter

from .features import is_json_text
from .jsonio import schema

# A card this module wrote carries this line: a push replaces such a card whole, and keeps the prose of one a
# person wrote (only its YAML metadata is updated).
MARKER = (
    "<!-- written by isobench: edit the YAML header or replace this card; "
    "isobench keeps a card it did not write -->"
)


def _distinct(values) -> str:
    counts = Counter(v for v in values if v not in (None, ""))
    return (
        ", ".join(f"{v} ({n})" if len(counts) > 1 else str(v) for v, n in counts.most_common())
        or "none recorded"
    )


def json_places(features, prefix: str = "") -> list[str]:
    """The dotted names of the JSON-text places of ``features`` (``[]`` marks a list's items)."""
    from datasets import List

    places = []
    for name, feature in features.items():
        while isinstance(feature, List):
            feature, name = feature.feature, name + "[]"
        if is_json_text(feature):
            places.append(prefix + name)
        elif isinstance(feature, dict):
            places += json_places(feature, f"{prefix}{name}.")
    return places


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else many or one + 's'}"


def _type_name(feature) -> str:
    from datasets import List, Value

    if is_json_text(feature):
        return "JSON text"
    if isinstance(feature, Value):
        return feature.dtype
    if isinstance(feature, List):
        return f"list of {_type_name(feature.feature)}"
    return "struct"


def size_category(n: int) -> str:
    """The Hub's size_categories value for ``n`` rows."""
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")):
        if n < limit:
            return name
    return "100K<n<1M"


def metadata(n: int, splits: list[str], features, pretty_name: str) -> dict:
    """The card's YAML metadata: a default config naming each split's parquet files, the declared features."""
    return {
        "pretty_name": pretty_name,
        "tags": ["performance", "benchmark", "code", "isobench"],
        "size_categories": [size_category(n)],
        "configs": [
            {
                "config_name": "default",
                "data_files": [{"split": s, "path": f"data/{s}-*"} for s in sorted(set(splits))],
            }
        ],
        "dataset_info": {"features": features._to_yaml_list()},
    }


def body(rows: list[dict], split: str, features, title: str) -> str:
    """The card's Markdown: what the rows are, their fields, how they were measured, where they came from."""
    record = schema("record")
    props = record["properties"]
    prov = [r.get("provenance") or {} for r in rows]
    statuses = Counter(r.get("status") for r in rows)
    repos = {r.get("repo") for r in rows}
    ok = [r for r in rows if r.get("status") == "ok"]
    speedups = sorted(r["human_performance"] for r in ok if r.get("human_performance"))
    dates = sorted(((p.get("measurement") or {}).get("measured_at") or "") for p in prov)
    dates = [d for d in dates if d]
    env = [p.get("environment") or {} for p in prov]
    gens = [p.get("generator") or {} for p in prov]
    origins = [g.get("source") or p.get("generator_status") for g, p in zip(gens, prov)]
    models = [f"{g.get('provider')}/{g.get('model')}" for g in gens if g.get("model")]
    measure = [p.get("measure_settings") or {} for p in prov]
    lines = [
        MARKER,
        f"# {title}",
        "",
        "Performance-optimization commits, each with a performance test and timings of the commit's parent "
        "(**base**), the commit (**head**) and the branch tip (**main**), measured by isobench as one "
        f"record per commit. The split `{split}` holds "
        f"{_count(len(rows), 'record')} from {_count(len(repos), 'repository', 'repositories')}: "
        + ", ".join(f"{n} {s}" for s, n in statuses.most_common())
        + ".",
        "",
        "`human_performance` is base's median time over head's (above 1: the commit made the test faster); "
        "`comparisons` holds the speedup's interval, the test used and the verdict (faster, slower, no_change, "
        "inconclusive); `duration_changes` holds every timed call, in milliseconds.",
    ]
    if speedups:
        mid = speedups[len(speedups) // 2]
        lines.append(f"Among the {len(ok)} measured records the median `human_performance` is {mid:.3g}.")
    lines += [
        "",
        "## Loading",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("{title if "/" in title else "<repository>"}", split="{split}")',
        "```",
        "",
        "Every export of every isobench run declares the same features (from isobench's record schema), so "
        "splits and exports of different runs concatenate. Free-form values ("
        + ", ".join(f"`{place}`" for place in json_places(features))
        + ') are JSON text: `json.loads(row["provenance"])` gives the object back exactly '
        "(isobench's readers, `isobench.features.decode`, do that for each of them).",
        "",
        "## How the timings were measured",
        "",
        "The three revisions of a commit run in one job on one machine, in interleaved rounds (base, head, main, "
        "base, ...), each round a fresh process in a sandbox (no network, no access to the host's files or "
        "secrets); base's result is the reference that head's and main's must match (`check_equivalence`). "
        "A round warms up, then times `repeat` calls; rounds go on (adaptively, up to `max_rounds`) until "
        "the speedup's interval is narrow enough. `speedup` is median(base) / median(head); its interval is a "
        "seeded bootstrap that resamples rounds, then calls within them; the verdict is `faster` (or `slower`) "
        "only when the speedup passes `min_effect` and the one-sided test's p-value is under `alpha`, "
        "`no_change` when the interval rules out twice `min_effect`, `inconclusive` otherwise.",
        "",
        f"- measured: {dates[0][:10]} to {dates[-1][:10]}" if dates else "- measured: no dates recorded",
        f"- rounds: {_distinct(m.get('rounds') for m in measure)}; "
        f"repeat: {_distinct(m.get('repeat') for m in measure)}; "
        f"interleave: {_distinct(m.get('interleave') for m in measure)}",
        f"- CPU: {_distinct(e.get('cpu') for e in env)}",
        f"- GPU: {_distinct(e.get('gpu') for e in env)}",
        f"- platform: {_distinct(e.get('platform') for e in env)}",
        f"- Python: {_distinct(e.get('python') for e in env)}; torch: {_distinct(e.get('torch') for e in env)}",
        f"- isobench: {_distinct(p.get('isobench_version') for p in prov)}; "
        f"harness: {_distinct(p.get('harness_version') for p in prov)}",
        "",
        "## Where the tests came from",
        "",
        f"- origin: {_distinct(origins)}",
        f"- models: {_distinct(models)}",
        f"- sources: {_distinct(p.get('source') for p in prov)}",
        "",
        "Each record's `provenance` names its extraction file and the sha256 of the extraction, the prompt "
        "template, the prompt, the test and each timing file.",
        "",
        "## Fields",
        "",
        "| field | type | meaning |",
        "| --- | --- | --- |",
    ]
    for name, feature in features.items():
        text = " ".join(str((props.get(name) or {}).get("description") or "").split()).replace("|", "\\|")
        lines.append(f"| `{name}` | {_type_name(feature)} | {text} |")
    return "\n".join(lines) + "\n"


def card_text(
    rows: list[dict], split: str, splits: list[str], features, title: str, existing: str | None = None
) -> str:
    """README.md for a repository or export holding ``rows`` in ``split`` (and other ``splits``). A card that a
    person wrote (``existing`` without isobench's marker) keeps its prose: only its YAML metadata is updated."""
    from huggingface_hub import DatasetCard, DatasetCardData

    meta = metadata(len(rows), [*splits, split], features, title)
    if existing and MARKER not in existing:
        ours = {"configs": meta["configs"], "dataset_info": meta["dataset_info"]}
        if not existing.startswith("---"):
            return _with_yaml(ours, existing)
        card = DatasetCard(existing)
        # its dataset_info (sizes written by datasets.push_to_hub would no longer match) gives way to ours
        card.data = DatasetCardData(**{**card.data.to_dict(), **ours})
        return str(card)
    return _with_yaml(meta, body(rows, split, features, title))


def _with_yaml(data: dict, text: str) -> str:
    from huggingface_hub import DatasetCardData

    return f"---\n{DatasetCardData(**data).to_yaml()}\n---\n{text}"
