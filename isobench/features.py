"""The Hugging Face ``datasets.Features`` of every export, declared from the record schema.

Guessing column types per export (``Dataset.from_list``) makes two exports that disagree: a column whose values
are all null gets a null type, a free-form object a struct of whatever keys this run happened to have, and
``concatenate_datasets`` or a Hub split merged from two runs fails. Declared once from
``isobench/schemas/record.schema.json``, every export of every run has the same columns and types:

- string, integer, number, boolean (alone or with null) → ``Value`` string, int64, float64, bool; an enum of
  strings → string;
- an array → ``List`` of its items' feature;
- an object whose properties are all declared (``additionalProperties: false``) → a struct of them;
- anything else (a free-form object, a value of several types) → JSON text in a string column whose feature
  carries ``id="json"`` (``json.loads`` gives the value back exactly). Not ``datasets.Json``: older ``datasets``
  releases cannot load it, and it decodes floats through pandas' JSON reader, which changes some (0.95 reads
  back as 0.9500000000000001).
"""

from __future__ import annotations

from functools import cache

from .jsonio import schema as load_schema

SCALARS = {"string": "string", "integer": "int64", "number": "float64", "boolean": "bool"}
JSON_ID = "json"  # the id of a string feature that holds JSON text


def json_text():
    """The feature of a free-form value: a string column of its JSON text."""
    from datasets import Value

    return Value("string", id=JSON_ID)


def is_json_text(feature) -> bool:
    from datasets import Value

    return isinstance(feature, Value) and feature.id == JSON_ID


def feature_of(node: dict, defs: dict):
    """The ``datasets`` feature of one JSON-schema node (``defs``: the schema's ``$defs``)."""
    from datasets import List, Value

    if "$ref" in node:
        return feature_of(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    options = node.get("anyOf") or node.get("oneOf")
    if options:
        found = [feature_of(o, defs) for o in options if o.get("type") != "null"]
        return found[0] if found and all(f == found[0] for f in found) else json_text()
    if "enum" in node and "type" not in node:
        kinds = {type(v) for v in node["enum"] if v is not None}
        return Value("string") if kinds == {str} else json_text()
    kinds = node.get("type")
    kinds = [k for k in ([kinds] if isinstance(kinds, str) else kinds or []) if k != "null"]
    if len(kinds) != 1:
        return json_text()
    kind = kinds[0]
    if kind in SCALARS:
        return Value(SCALARS[kind])
    if kind == "array":
        return List(feature_of(node.get("items") or {}, defs))
    if kind == "object" and node.get("properties") and node.get("additionalProperties") is False:
        return {key: feature_of(sub, defs) for key, sub in node["properties"].items()}
    return json_text()


@cache
def record_features():
    """The columns of the ``isobench`` view: every property of the record schema, in its order."""
    from datasets import Features

    schema = load_schema("record")
    defs = schema.get("$defs") or {}
    return Features({key: feature_of(node, defs) for key, node in schema["properties"].items()})


def view_features(name: str):
    """The Features of export view ``name`` (isobench, swe-perf, gso)."""
    from datasets import Features, List, Value

    if name == "isobench":
        return record_features()
    rec = record_features()
    text, texts = Value("string"), List(Value("string"))
    if name == "swe-perf":
        return Features(
            {
                **{
                    k: rec[k]
                    for k in ("instance_id", "repo", "base_commit", "head_commit", "patch", "test_patch")
                },
                "problem_statement": text,
                "hints_text": text,
                "created_at": text,
                "version": text,
                "efficiency_test": texts,
                "duration_changes": List({"base": List(Value("float64")), "head": List(Value("float64"))}),
                "human_performance": Value("float64"),
                "patch_functions": texts,
                "test_functions": texts,
                "status": text,
            }
        )
    if name == "gso":
        return Features(
            {
                **{
                    k: text
                    for k in ("instance_id", "repo", "base_commit", "opt_commit", "api", "prob_script")
                },
                "tests": texts,
                "hints_text": text,
                "setup_commands": texts,
                "install_commands": texts,
                "created_at": text,
                "gt_commit_message": text,
                "gt_diff": text,
                "arch": text,
                "instance_image_tag": text,
            }
        )
    raise ValueError(f"unknown view {name!r}")


def _walk(value, feature, leaf):
    """``value`` with ``leaf(v)`` applied at each JSON-text place of ``feature``."""
    from datasets import List

    if value is None:
        return None
    if is_json_text(feature):
        return leaf(value)
    if isinstance(feature, dict):
        return {key: _walk(value.get(key), sub, leaf) for key, sub in feature.items()}
    if isinstance(feature, List):
        return [_walk(v, feature.feature, leaf) for v in value]
    return value


def encode(rows: list[dict], features) -> list[dict]:
    """Rows ready for ``Dataset.from_list(..., features=features)``: every column of ``features`` (missing values
    None), each free-form value as its JSON text. A key the features do not know is an error (ValueError)."""
    import json

    unknown = sorted({key for row in rows for key in row} - set(features))
    if unknown:
        raise ValueError(f"column(s) {', '.join(unknown)} are not in the record schema")
    return [{key: _walk(row.get(key), sub, json.dumps) for key, sub in features.items()} for row in rows]


def decode(rows: list[dict], features) -> list[dict]:
    """Rows read back (parquet, ``load_dataset``, ``load_from_disk``) with ``features`` as stored beside them:
    JSON text decoded, so that each row is the record that was written (with None for absent fields)."""
    import json

    def load(text):
        return json.loads(text) if isinstance(text, str) else text

    return [{key: _walk(value, features.get(key), load) for key, value in row.items()} for row in rows]
