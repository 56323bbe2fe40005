"""isobench.hub against a local stand-in for the Hub (tests/hub_server.py): the real huggingface_hub SDK
speaks HTTP to it, nothing is mocked."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from datasets import Dataset
from hub_server import FakeHub

from isobench.errors import IsobenchError
from isobench.hub import _canonical, format_push, push_to_hub

REPO_ID = "isobench/perf-bench"
SHARD = "data/test-00000-of-00001.parquet"


def row(n: int, performance: float = 1.0, **extra) -> dict:
    return {
        "repo": "org/proj",
        "head_commit": f"{n:040x}",
        "created_at": f"2024-01-{n:02d}T00:00:00Z",
        "instance_id": f"org__proj-{n}",
        "human_performance": performance,
        "duration_changes": [{"base": [1.0], "head": [0.5], "main": [0.5]}],
        "provenance": {"source": "x"},
        **extra,
    }


def parquet_bytes(rows: list[dict]) -> bytes:
    buffer = io.BytesIO()
    Dataset.from_list(rows).to_parquet(buffer)
    return buffer.getvalue()


def rows_at(hub: FakeHub, path: str) -> list[dict]:
    """The rows of a shard as isobench reads them back (Json columns decoded), without the None values of the
    columns a row does not have (every shard isobench writes has every column of the record schema)."""
    from datasets import Features

    from isobench.features import decode

    table = pq.read_table(io.BytesIO(hub.files(REPO_ID)[path]))
    return [_canonical(r) for r in decode(table.to_pylist(), Features.from_arrow_schema(table.schema))]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    server = FakeHub().start()
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_TOKEN", server.token)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    yield server
    server.stop()


@pytest.fixture
def seeded(hub):
    """The Hub holding rows 1-3 of the test split in two shards, as `datasets.push_to_hub` could leave them."""
    hub.add_commit(
        REPO_ID,
        {
            "data/test-00000-of-00002.parquet": parquet_bytes([row(1), row(2)]),
            "data/test-00001-of-00002.parquet": parquet_bytes([row(3)]),
        },
    )
    return hub


def test_push_to_an_empty_hub_creates_the_repo_and_one_parquet(hub):
    rows = [row(2), row(1), row(3)]
    summary = push_to_hub(rows, REPO_ID)
    assert summary["pushed"] and summary["commit"] == hub.commits(REPO_ID)[-1].oid
    assert summary["added"] == ["org__proj-1", "org__proj-2", "org__proj-3"]
    assert (summary["hub_rows"], summary["local_rows"], summary["replaced"], summary["kept"]) == (
        0,
        3,
        [],
        [],
    )
    assert any(r["path"] == "/api/repos/create" for r in hub.requests)
    assert sorted(hub.files(REPO_ID)) == [".gitattributes", "README.md", SHARD]  # README.md: the card
    assert rows_at(hub, SHARD) == [row(1), row(2), row(3)]
    assert "pushed commit" in format_push(summary)


def test_second_push_merges_new_rows_win_hub_only_rows_kept_old_shards_deleted(seeded):
    commits = len(seeded.commits(REPO_ID))
    summary = push_to_hub([row(2, performance=0.25), row(3), row(4)], REPO_ID)
    assert summary["hub_rows"] == 3 and summary["local_rows"] == 3
    assert summary["added"] == ["org__proj-4"]
    assert summary["replaced"] == ["org__proj-2"]
    assert summary["unchanged"] == ["org__proj-3"]
    assert summary["kept"] == ["org__proj-1"]
    assert len(seeded.commits(REPO_ID)) == commits + 1
    assert summary["commit"] == seeded.commits(REPO_ID)[-1].oid
    assert sorted(seeded.files(REPO_ID)) == [".gitattributes", "README.md", SHARD]
    assert rows_at(seeded, SHARD) == [row(1), row(2, performance=0.25), row(3), row(4)]


def test_a_push_that_changes_nothing_makes_no_commit(hub):
    push_to_hub([row(1), row(2)], REPO_ID)
    commits, seen = len(hub.commits(REPO_ID)), len(hub.requests)
    summary = push_to_hub([row(2)], REPO_ID)
    assert not summary["pushed"] and summary["commit"] is None
    assert (summary["unchanged"], summary["kept"], summary["added"]) == (["org__proj-2"], ["org__proj-1"], [])
    assert len(hub.commits(REPO_ID)) == commits
    assert not [r for r in hub.requests[seen:] if r["write"]]
    assert "no commit" in format_push(summary)


def test_rows_with_different_fields_round_trip_and_are_not_seen_as_changed(hub):
    """Parquet gives every row every column (missing ones as None); that is no change to push again. Free-form
    objects (provenance) come back exactly as they were, not widened to the union of their keys."""
    rows = [row(1), row(2, notes="flaky", provenance={"source": "y", "url": "u", "ci_level": 0.95})]
    push_to_hub(rows, REPO_ID)
    on_hub = rows_at(hub, SHARD)
    assert "notes" not in on_hub[0] and on_hub[0]["provenance"] == {"source": "x"}
    assert on_hub[1]["notes"] == "flaky" and on_hub[1]["provenance"] == {
        "source": "y",
        "url": "u",
        "ci_level": 0.95,
    }
    summary = push_to_hub(rows, REPO_ID)
    assert summary["unchanged"] == ["org__proj-1", "org__proj-2"] and not summary["pushed"]


@pytest.mark.parametrize("with_token", [True, False])
def test_dry_run_writes_nothing_and_says_what_would_change(seeded, monkeypatch, with_token):
    if not with_token:
        monkeypatch.delenv("HF_TOKEN")
    before = {path: content for path, content in seeded.files(REPO_ID).items()}
    commits = len(seeded.commits(REPO_ID))
    summary = push_to_hub([row(2, performance=0.25), row(4)], REPO_ID, dry_run=True)
    assert not summary["pushed"] and summary["commit"] is None
    assert (summary["added"], summary["replaced"], summary["kept"]) == (
        ["org__proj-4"],
        ["org__proj-2"],
        ["org__proj-1", "org__proj-3"],
    )
    assert seeded.writes() == []
    assert all(r["authorized"] == with_token for r in seeded.requests)
    assert seeded.files(REPO_ID) == before and len(seeded.commits(REPO_ID)) == commits
    text = format_push(summary)
    assert "would add 1: org__proj-4" in text and "would replace 1: org__proj-2" in text
    assert "dry run: nothing written" in text


def test_dry_run_against_a_missing_repo_sees_no_rows(hub):
    summary = push_to_hub([row(1)], REPO_ID, dry_run=True)
    assert (summary["hub_rows"], summary["added"]) == (0, ["org__proj-1"])
    assert hub.writes() == [] and REPO_ID not in hub.repos


def test_no_token_is_a_one_line_error_before_any_request(hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(IsobenchError) as exc:
        push_to_hub([row(1)], REPO_ID)
    assert str(exc.value) == "push: no Hub token: set HF_TOKEN or run `hf auth login`"
    assert hub.requests == []


@pytest.mark.parametrize("seed", [False, True])
def test_a_wrong_token_is_a_one_line_error_naming_the_repo_without_the_token(hub, monkeypatch, seed):
    if seed:
        hub.add_commit(REPO_ID, {SHARD: parquet_bytes([row(1)])})
    commits = len(hub.commits(REPO_ID))
    monkeypatch.setenv("HF_TOKEN", "hf_wrong_secret_value")
    with pytest.raises(IsobenchError) as exc:
        push_to_hub([row(2)], REPO_ID)
    message = str(exc.value)
    assert "\n" not in message and REPO_ID in message and "401" in message
    assert "wrong_secret" not in message and "wrong_secret" not in str(exc.value.__context__)
    assert len(hub.commits(REPO_ID)) == commits


def test_pushing_test_leaves_the_train_split_and_other_files_alone(hub):
    train = parquet_bytes([row(7), row(8)])
    hub.add_commit(REPO_ID, {"data/train-00000-of-00001.parquet": train, "README.md": b"# bench\n"})
    summary = push_to_hub([row(1)], REPO_ID, split="test")
    assert summary["hub_rows"] == 0 and summary["kept"] == [] and summary["pushed"]
    files = hub.files(REPO_ID)
    assert files["data/train-00000-of-00001.parquet"] == train
    # the card a person wrote keeps its words; its YAML now names both splits' files
    card = files["README.md"].decode()
    assert card.endswith("\n---\n# bench\n") and "path: data/train-*" in card and "path: data/test-*" in card
    assert sorted(files) == [".gitattributes", "README.md", SHARD, "data/train-00000-of-00001.parquet"]
    assert rows_at(hub, SHARD) == [row(1)]


def test_an_unreachable_endpoint_is_a_one_line_error(monkeypatch, tmp_path):
    import socket

    with socket.socket() as sock:  # a port that nothing listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("HF_TOKEN", "hf_some_token")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    with pytest.raises(IsobenchError) as exc:
        push_to_hub([row(1)], REPO_ID, endpoint=f"http://127.0.0.1:{port}")
    assert "\n" not in str(exc.value) and REPO_ID in str(exc.value) and "cannot reach" in str(exc.value)


def test_the_isobench_push_command_on_the_demo_dataset(hub, tmp_path):
    """`isobench push` with the demo's records (fixtures written by the workflow): dry run, then a push whose
    parquet reads back as the dataset's records."""
    import json
    import os
    import subprocess
    import sys

    from conftest import FIXTURES

    dataset = tmp_path / "dataset.jsonl"
    rows = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines() if line]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def push(*args):
        return subprocess.run(
            [sys.executable, "-m", "isobench.cli", "push", REPO_ID, "--dataset", str(dataset), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ),
        )

    dry = push("--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would add" in dry.stdout and not hub.writes()
    done = push()
    assert done.returncode == 0, done.stderr
    assert sorted(r["instance_id"] for r in rows_at(hub, SHARD)) == sorted(r["instance_id"] for r in rows)
    expected = sorted(rows, key=lambda r: (r["repo"], r["created_at"], r["head_commit"]))
    assert rows_at(hub, SHARD) == [_canonical(r) for r in expected]
    assert hub.token not in done.stdout + done.stderr


def test_split_sizes_in_the_dataset_card_are_dropped_with_the_push(hub):
    """A card written by `datasets.push_to_hub` records each split's size; after our push it would be wrong
    (and `load_dataset` would refuse the split), so the same commit replaces its `dataset_info` by ours
    (features, no sizes), keeping the rest of the card."""
    card = (
        b"---\nlicense: mit\ndataset_info:\n  splits:\n  - name: test\n    num_examples: 1\n---\n"
        b"# bench\nSome words.\n"
    )
    hub.add_commit(REPO_ID, {"data/test-00000-of-00001.parquet": parquet_bytes([row(1)]), "README.md": card})
    summary = push_to_hub([row(1), row(2)], REPO_ID)
    assert summary["pushed"] and len(hub.commits(REPO_ID)) == 2 + 1
    readme = hub.files(REPO_ID)["README.md"].decode()
    assert "num_examples" not in readme and "license: mit" in readme and "Some words." in readme
    assert "- name: human_performance\n    dtype: float64" in readme


def test_rows_that_are_not_records_and_bad_repo_ids_are_one_line_errors(hub):
    hub.add_commit(REPO_ID, {SHARD: parquet_bytes([{"question": "q", "answer": "a"}])})
    with pytest.raises(IsobenchError, match="not isobench records .no repo, head_commit"):
        push_to_hub([row(1)], REPO_ID)
    with pytest.raises(IsobenchError, match="not a Hub repository id"):
        push_to_hub([row(1)], "not a repo id!")
