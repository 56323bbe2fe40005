"""Exports and pushes as Hub users know them (issue 26, point 2): every column typed from the record schema,
the dataset card, `--private`, the token `hf auth login` saved. The real `datasets`, `huggingface_hub` and `hf`
CLI against the Hub stand-in (tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES
from datasets import Value
from test_hub import REPO_ID, hub  # noqa: F401  (the stand-in fixture)

from isobench.card import MARKER
from isobench.errors import IsobenchError
from isobench.export import to_dataset
from isobench.features import decode, is_json_text, record_features
from isobench.hub import _canonical, push_to_hub
from isobench.jsonio import schema

# records the demo's workflow wrote (pre-generated tests; one commit failed)
ROWS = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines() if line]


def canonical(rows):
    return sorted((_canonical(r) for r in rows), key=lambda r: r["head_commit"])


def test_every_column_is_typed_from_the_record_schema_also_when_all_null():
    features = record_features()
    assert list(features) == list(schema("record")["properties"])
    assert features["human_performance"] == Value("float64") and features["pr_number"] == Value("int64")
    assert features["duration_changes"].feature["base"].feature == Value(
        "float64"
    )  # a list of structs of lists
    assert is_json_text(features["provenance"]) and is_json_text(features["revisions"]["base"])
    # a run whose every value of some columns is null (a failed run, an extraction without PR numbers):
    # guessing would give them the null type; declared, they are the same as any other run's
    nulls = [{**r, "pr_number": None, "api": None, "human_performance": None, "coverage": None} for r in ROWS]
    assert to_dataset(nulls).features == to_dataset(ROWS).features == features


def test_free_form_values_come_back_exactly():
    ds = to_dataset(ROWS)
    back = decode(ds.to_list(), ds.features)
    assert canonical(back) == canonical(ROWS)
    # pandas' JSON reader (datasets.Json) would give 0.9500000000000001
    assert back[0]["provenance"]["analysis"]["ci_level"] == 0.95


def load_in_process(hub, cache: Path, split: str = "test") -> list[dict]:  # noqa: F811
    """`load_dataset` of the stand-in's repo in a fresh interpreter (datasets reads HF_ENDPOINT at import), the
    rows decoded; the features are checked there to be the record schema's."""
    code = (
        "import json, sys\n"
        "from datasets import load_dataset\n"
        "from isobench.features import decode, record_features\n"
        f"ds = load_dataset({REPO_ID!r}, split={split!r}, cache_dir={str(cache)!r})\n"
        "assert ds.features == record_features(), ds.features\n"
        "print(json.dumps(decode(ds.to_list(), ds.features)))\n"
    )
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.splitlines()[-1])


def test_push_then_load_dataset_gives_the_records_and_the_card(hub, tmp_path):  # noqa: F811
    push_to_hub(ROWS, REPO_ID)
    # the features come from the card's YAML and the parquet's metadata (ids included)
    assert canonical(load_in_process(hub, tmp_path / "cache")) == canonical(ROWS)
    card = hub.files(REPO_ID)["README.md"].decode()
    assert card.startswith("---\n") and MARKER in card and f"pretty_name: {REPO_ID}" in card
    assert "path: data/test-*" in card and "- name: duration_changes" in card
    assert "The split `test` holds 7 records from 1 repository: 6 ok, 1 failed." in card
    assert "| `human_performance` | float64 | median base time / median head time" in card
    assert "- CPU: Intel(R) Xeon(R) Processor" in card and "- origin: pregenerated" in card
    # a later push with one more record: the card is ours, so it is rewritten with the new figures
    extra = {**ROWS[0], "head_commit": "f" * 40, "instance_id": "isobench__demokit-fffffff"}
    push_to_hub([extra], REPO_ID)
    card = hub.files(REPO_ID)["README.md"].decode()
    assert "holds 8 records" in card and card.count(MARKER) == 1
    assert len(load_in_process(hub, tmp_path / "cache2")) == 8


def test_private_creates_a_private_repo_and_refuses_a_public_one(hub):  # noqa: F811
    push_to_hub(ROWS[:1], REPO_ID, private=True)
    assert REPO_ID in hub.private and len(hub.commits(REPO_ID)) == 2
    public = "isobench/public-bench"
    hub.add_commit(public, {"README.md": b"# public\n"})
    writes = len(hub.writes())
    with pytest.raises(IsobenchError) as exc:
        push_to_hub(ROWS[:1], public, private=True)
    assert "\n" not in str(exc.value) and public in str(exc.value) and "public" in str(exc.value)
    assert len(hub.writes()) == writes and len(hub.commits(public)) == 2


def test_the_token_hf_auth_login_saved_is_used_and_written_nowhere_else(hub, tmp_path):  # noqa: F811
    home = tmp_path / "hf-home"
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env.update(HF_HOME=str(home), HF_ENDPOINT=hub.url)
    hf = Path(sys.executable).with_name("hf")
    login = subprocess.run(
        [str(hf), "auth", "login", "--token", hub.token], env=env, capture_output=True, text=True, timeout=120
    )
    assert login.returncode == 0, login.stdout + login.stderr
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    push = subprocess.run(
        [sys.executable, "-m", "isobench.cli", "push", REPO_ID, "--dataset", str(dataset), "--private"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert push.returncode == 0, push.stderr
    assert "pushed commit" in push.stdout and REPO_ID in hub.private
    assert all(r["authorized"] for r in hub.writes())
    assert hub.token not in push.stdout + push.stderr
    leaked = [
        p
        for p in tmp_path.rglob("*")
        if p.is_file() and hub.token.encode() in p.read_bytes() and home not in p.parents
    ]
    assert leaked == []
    assert all(hub.token.encode() not in content for content in hub.files(REPO_ID).values())
