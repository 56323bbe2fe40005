"""The extraction rule: a commit's extraction file read and normalized with git facts; a commit whose inputs are
unusable gets a failed one (it still ends as a record)."""

from __future__ import annotations

from pathlib import Path

from ..errors import CommitFailure, IsobenchError
from ..extraction import failed_extraction, normalize
from ..jsonio import validate, write_json
from .common import log


def extraction_step(smk) -> None:
    """extraction.json; a commit whose inputs are unusable gets a failed one (it still ends as a record)."""
    p = smk.params
    try:
        if p.problem:  # found at planning, e.g. two extraction files naming this commit
            raise CommitFailure(p.problem[0], p.problem[1])
        data = normalize(
            source=p.source,
            repo_name=p.repo_name,
            mirror=Path(p.mirror),
            commit=p.commit,
            extraction_file=p.extraction_file,
            origin=p.origin,
        )
    except CommitFailure as exc:
        data = failed_extraction(
            source=p.source,
            repo_name=p.repo_name,
            commit=p.commit,
            head=p.head,
            base=p.base,
            extraction_file=p.extraction_file,
            origin=p.origin,
            category=exc.category,
            error=str(exc),
        )
        validate(data, "extraction", smk.output.extraction)
        write_json(smk.output.extraction, data)
        # the record's line says it on the console, and the run's end lists it
        log.debug(
            "isobench: %s (%s: the commit's record says so; the other commits go on)", exc, exc.category
        )
        return
    if p.base and data["base_commit"] != p.base:
        raise IsobenchError(
            f"{p.origin or p.extraction_file}: field parent_hash: changed since the run was planned; "
            "run again"
        )
    validate(data, "extraction", smk.output.extraction)
    for warning in data["warnings"]:
        log.warning("warning: %s", warning)
    write_json(smk.output.extraction, data)
    log.debug(
        "extraction %s: base %s, %d files, %d APIs",
        data["head_commit"][:12],
        data["base_commit"][:12],
        len(data["files_changed"]),
        len(data["affected_apis"]),
    )
