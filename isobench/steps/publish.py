"""Rules export and publish: the dataset for others, after the secret scan (isobench/secrecy.py) refused
nothing. publish (config ``publish.repo_id``, or ISO-Bench's ``push_to_hf``) merges the dataset into the Hub
repository (isobench/hub.py) once per change of the dataset: its output, ``results/publish.json``, is newer
than the dataset until the dataset changes."""

from __future__ import annotations

from ..audit import refuse_unpublishable
from ..config import SCHEMA
from ..dataset import dataset_of, read_dataset
from ..export import export
from ..hub import format_push, push_to_hub
from ..jsonio import sha256_file, write_valid
from .common import log, now_iso


def _publishable(smk) -> list[dict]:
    rows = read_dataset(smk.input.dataset)
    refuse_unpublishable(rows, str(dataset_of(smk.input.dataset)), smk.config, SCHEMA)
    return rows


def export_step(smk) -> None:
    for view, files in export(_publishable(smk), smk.output.folder).items():
        log.info("%s view: %s, %s", view, files["hf"], files["parquet"])


def publish_step(smk) -> None:
    cfg = smk.params.publish
    rows = _publishable(smk)
    summary = push_to_hub(rows, cfg["repo_id"], split=cfg["split"], private=cfg["private"])
    for line in format_push(summary).splitlines():
        log.info("publish: %s", line)
    write_valid(
        smk.output.summary,
        {
            **summary,
            "private": cfg["private"],
            "dataset": str(dataset_of(smk.input.dataset)),
            "dataset_sha256": sha256_file(smk.input.dataset),
            "records": len(rows),
            "published_at": now_iso(),
        },
        "publish",
    )
