"""Publishing the dataset to a Hugging Face Hub dataset repository, merged with what the Hub holds.

The Hub side uses the layout that ``datasets.push_to_hub`` writes: one split is the parquet shards
``data/{split}-*.parquet``. A push reads those shards, merges them with the local rows by the same
rule as dataset.jsonl (one record per (repo, head_commit), the later one winning, so local rows win
over the Hub's), and replaces the split's shards by one ``data/{split}-00000-of-00001.parquet`` in a
single commit. Other splits and files are left alone; a push that would change nothing commits nothing.

The columns are declared from the record schema (isobench/features.py), so shards pushed by any run load and
concatenate alike; the same commit writes the dataset card (isobench/card.py: a card a person wrote keeps its
prose, only its YAML metadata is updated). The token is found as huggingface_hub finds it (HF_TOKEN, else the
token ``hf auth login`` saved) and only ever sent to the Hub; the endpoint from the ``endpoint`` argument, else
HF_ENDPOINT, else huggingface_hub's default. ``private``: a repository created by the push is private, and a
public one is refused (never publish what was meant to stay private); without it a new repository gets the
namespace's default visibility.
"""

from __future__ import annotations

import os
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .card import card_text
from .dataset import merge
from .errors import IsobenchError
from .export import to_dataset
from .features import decode, record_features


def shard_path(split: str) -> str:
    """Where the merged rows of ``split`` go in the repository."""
    return f"data/{split}-00000-of-00001.parquet"


def push_to_hub(
    rows: list[dict],
    repo_id: str,
    split: str = "test",
    dry_run: bool = False,
    endpoint: str | None = None,
    private: bool = False,
) -> dict:
    """Merge ``rows`` into split ``split`` of the Hub dataset ``repo_id`` and push it (unless ``dry_run``).

    Returns a summary: {"repo_id", "split", "hub_rows", "local_rows", "added", "replaced", "unchanged",
    "kept", "pushed", "commit"}, the lists holding instance ids ("kept": rows only on the Hub).
    """
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError

    if not re.fullmatch(r"\w+", split):
        raise IsobenchError(f"push: split {split!r} must be letters, digits and underscores")
    token = get_token()  # HF_TOKEN, else the token `hf auth login` saved
    if token is None and not dry_run:
        raise IsobenchError("push: no Hub token: set HF_TOKEN or run `hf auth login`")
    api = HfApi(endpoint=endpoint or os.environ.get("HF_ENDPOINT") or None, token=token or False)
    try:
        with tempfile.TemporaryDirectory(prefix="isobench-hub-") as tmp, _quiet():
            head, files, public = _hub_files(api, repo_id)
            if private and public:
                raise IsobenchError(
                    f"push: {repo_id} is public on the Hub and --private was asked: nothing pushed "
                    "(make the repository private first, or push without --private)"
                )
            shards = sorted(f for f in files if f.startswith(f"data/{split}-") and f.endswith(".parquet"))
            hub_rows = [
                row
                for name in shards
                for row in _read_parquet(
                    api.hf_hub_download(repo_id, name, repo_type="dataset", revision=head, cache_dir=tmp)
                )
            ]
            _check_records(hub_rows, repo_id, split)
            local = merge(rows)
            merged = merge(hub_rows + local)
            summary = {
                "repo_id": repo_id,
                "split": split,
                "hub_rows": len(hub_rows),
                "local_rows": len(local),
                **_compare(hub_rows, local, merged),
                "pushed": False,
                "commit": None,
            }
            if dry_run or not (summary["added"] or summary["replaced"]):
                return summary
            if head is None:
                api.create_repo(repo_id, repo_type="dataset", exist_ok=True, private=private or None)
            parquet = Path(tmp) / "merged.parquet"
            _write_parquet(merged, parquet, repo_id)
            target = shard_path(split)
            operations = [CommitOperationAdd(path_in_repo=target, path_or_fileobj=str(parquet))]
            operations += [CommitOperationDelete(path_in_repo=name) for name in shards if name != target]
            existing = None
            if "README.md" in files:
                readme = api.hf_hub_download(
                    repo_id, "README.md", repo_type="dataset", revision=head, cache_dir=tmp
                )
                existing = Path(readme).read_text(encoding="utf-8")
            others = sorted({m.group(1) for f in files if (m := re.fullmatch(r"data/(\w+)-.*\.parquet", f))})
            card = card_text(merged, split, others, record_features(), repo_id, existing)
            operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card.encode()))
            info = api.create_commit(
                repo_id,
                operations,
                repo_type="dataset",
                parent_commit=head,
                commit_message=f"isobench: {split} split, {len(merged)} rows",
                commit_description=", ".join(f"{k} {len(summary[k])}" for k in ("added", "replaced", "kept")),
            )
            return {**summary, "pushed": True, "commit": info.oid}
    except HFValidationError as exc:
        raise IsobenchError(f"push: {repo_id!r} is not a Hub repository id: {exc}") from None
    except HfHubHTTPError as exc:
        raise IsobenchError(_hub_error(exc, repo_id)) from None
    except _transport_errors() as exc:
        raise IsobenchError(f"push: {repo_id}: cannot reach the Hub at {api.endpoint}: {exc}") from None


def format_push(summary: dict) -> str:
    """A few lines for people: what a push changed or, in a dry run, would change."""
    s, done = summary, summary["pushed"]
    total = len(s["added"]) + len(s["replaced"]) + len(s["unchanged"]) + len(s["kept"])
    lines = [
        f"{s['repo_id']} ({s['split']}): {s['hub_rows']} rows on the Hub, {s['local_rows']} local, "
        f"{total} after merging"
    ]
    for key, verb in (("added", "add"), ("replaced", "replace")):
        if s[key]:
            lines.append(f"{key if done else 'would ' + verb} {len(s[key])}: {', '.join(s[key])}")
    if s["unchanged"]:
        lines.append(f"unchanged {len(s['unchanged'])}")
    if s["kept"]:
        lines.append(f"kept {len(s['kept'])} rows only on the Hub: {', '.join(s['kept'])}")
    if done:
        lines.append(f"pushed commit {s['commit']}")
    elif s["added"] or s["replaced"]:
        lines.append("dry run: nothing written")
    else:
        lines.append("nothing to change: no commit")
    return "\n".join(lines)


def _hub_files(api, repo_id: str) -> tuple[str | None, list[str], bool]:
    """(head commit, every file, whether it is public) of the Hub repository; (None, [], False) for a repo that
    does not exist."""
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        info = api.dataset_info(repo_id)
    except RepositoryNotFoundError:
        return None, [], False
    files = api.list_repo_files(repo_id, repo_type="dataset", revision=info.sha)
    return info.sha, files, info.private is False


def _check_records(rows: list[dict], repo_id: str, split: str) -> None:
    for row in rows:
        missing = [k for k in ("repo", "head_commit", "created_at", "instance_id") if row.get(k) is None]
        if missing:
            raise IsobenchError(
                f"push: {repo_id}: the {split} split holds rows that are not isobench records "
                f"(no {', '.join(missing)}); push to another split or repository"
            )


def _read_parquet(path: str) -> list[dict]:
    """The rows of a shard as they were written (the JSON text of a shard isobench wrote decoded)."""
    import pyarrow.parquet as pq
    from datasets import Features

    table = pq.read_table(path)
    return decode(table.to_pylist(), Features.from_arrow_schema(table.schema))


def _write_parquet(rows: list[dict], path: Path, repo_id: str) -> None:
    """One parquet file of ``rows``, with the record schema's columns and types."""
    import pyarrow as pa

    try:
        to_dataset(rows).to_parquet(str(path))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise IsobenchError(f"push: {repo_id}: the merged rows do not fit one table: {exc}") from None
    except ValueError as exc:  # a column the schema does not know (a row that came from the Hub)
        raise IsobenchError(f"push: {repo_id}: {exc}") from None


def _compare(hub_rows: list[dict], local: list[dict], merged: list[dict]) -> dict:
    """The merged rows' instance ids, by what the push does to them."""
    on_hub = {_key(row): row for row in hub_rows}
    local_keys = {_key(row) for row in local}
    out = {"added": [], "replaced": [], "unchanged": [], "kept": []}
    for row in merged:
        k = _key(row)
        if k not in local_keys:
            kind = "kept"
        elif k not in on_hub:
            kind = "added"
        else:
            kind = "unchanged" if _canonical(on_hub[k]) == _canonical(row) else "replaced"
        out[kind].append(row["instance_id"])
    return out


def _key(row: dict) -> tuple:
    """What identifies a record, as in ``dataset.merge``."""
    return row["repo"], row["head_commit"]


def _canonical(value):
    """``value`` without None-valued keys: parquet gives every row every field, missing ones as None."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    return value


def _hub_error(exc, repo_id: str) -> str:
    status = exc.response.status_code if exc.response is not None else None
    if status in (401, 403):
        return (
            f"push: {repo_id}: the Hub refused access ({status}); check that HF_TOKEN may write this dataset"
        )
    detail = exc.server_message or str(exc).splitlines()[0]
    return f"push: {repo_id}: the Hub answered {status}: {detail}"


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection failures of huggingface_hub's HTTP client (httpx2 since huggingface_hub 2, httpx before)."""
    try:
        from httpx2 import TransportError
    except ImportError:
        from httpx import TransportError
    return (TransportError,)


@contextmanager
def _quiet():
    """No progress bars from datasets or huggingface_hub while pushing."""
    import datasets
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars

    were = not datasets.are_progress_bars_disabled(), not are_progress_bars_disabled()
    datasets.disable_progress_bars()
    disable_progress_bars()
    try:
        yield
    finally:
        if were[0]:
            datasets.enable_progress_bars()
        if were[1]:
            enable_progress_bars()
