"""The ``isobench`` command: helpers around the workflow."""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from .config import SCHEMA, llm_settings, load_config
from .errors import IsobenchError
from .jsonio import load_json

# The commands' own modules are imported inside each command: `isobench --help` or `isobench audit` need not
# load GitPython, the LLM SDKs, datasets or matplotlib.


def _leaderboard(args) -> None:
    from .evaluate.report import board_of

    folder = Path(args.run_folder)
    if not (folder / "report" / "leaderboard.json").exists() and not (folder / "leaderboard.json").exists():
        raise IsobenchError(f"{folder}: no report/leaderboard.json (run `snakemake evaluate` first)")
    print(board_of(folder), end="")


def _extract(args) -> None:
    from .extraction_writer import commits_matching, write_extractions

    repo = Path(args.repo)
    commits = list(args.commits or [])
    if args.grep:
        commits += commits_matching(repo, args.grep, args.ref)
    if not commits:
        raise IsobenchError("extract: no commits given (name them, or use --grep PATTERN)")
    for path in write_extractions(repo, commits, Path(args.out), with_old_content=args.with_old_content):
        print(path)


def _demo_repo(args) -> None:
    from .demo import build_demo_repo

    for key, sha in build_demo_repo(Path(args.path)).items():
        print(f"{sha} {key}")


def _config(args) -> dict:

    return load_config("config/config.yaml", Path(args.schema), args.configfile)


def _check(args) -> None:
    """The config as a run would see it: YAML errors with file, line and column; schema errors naming the file
    that set the field (Snakemake's own message for a bad --configfile names neither)."""
    config = _config(args)
    names = ", ".join(config["sources"])
    print(f"config OK: {len(config['sources'])} source(s): {names}")


def _audit(args) -> int:
    from .audit import audit, dumps, exit_code, format_audit

    report = audit(_config(args), Path(args.schema), Path(args.results))
    print(dumps(report) if args.json else format_audit(report))
    return exit_code(report, args.strict)


def _rows(args) -> list[dict]:
    from .dataset import read_records

    path = Path(args.dataset or _config(args)["dataset"])
    if not path.is_file():
        raise IsobenchError(f"{path}: no dataset (run the workflow first)")
    return read_records(path)


def _summary(args) -> None:
    from .report import format_summary

    print(format_summary(_rows(args)))


def _publishable(args) -> list[dict]:
    """The dataset's records, refused whole when the secret scan flags one (export and push)."""
    from .audit import refuse_unpublishable

    rows = _rows(args)
    try:
        config = _config(args)
    except IsobenchError:  # a dataset given without the workflow's config: the known key variables
        config = None
    refuse_unpublishable(rows, str(args.dataset or "the dataset"), config, Path(args.schema))
    return rows


def _export(args) -> None:
    from .export import VIEWS, export

    for view, files in export(_publishable(args), Path(args.out), args.view or VIEWS, args.split).items():
        print(f"{view}: {files['hf']} {files['parquet']}")


def _push(args) -> None:
    from .hub import format_push, push_to_hub

    summary = push_to_hub(
        _publishable(args), args.repo_id, split=args.split, dry_run=args.dry_run, private=args.private
    )
    print(format_push(summary))


def _retry_generation(args) -> None:
    """Make the next run ask the LLM again for the commits whose generation failed: their failed replies leave
    the reply cache (else a rerun would replay them for free, and fail the same way) and their generator outputs
    go (so Snakemake runs the generator, and then measure and record, again)."""
    from .generate import Cache
    from .llm_check import drop_generator_outputs
    from .plan import plan_sources

    config = _config(args)
    wanted = [c.lower() for c in args.commits]
    short = [c for c in wanted if len(c) < 7 or not re.fullmatch(r"[0-9a-f]+", c)]
    if short:
        raise IsobenchError(
            f"retry-generation: {short[0]!r} is not a commit SHA or a prefix of 7+ hex digits"
        )
    found, matched = 0, set()
    for source, plan in plan_sources(config, prepare=False).items():
        cache = Cache(llm_settings(config, source, Path(args.schema))["cache_dir"])
        for key, commit in plan.commits.items():
            hits = {w for w in wanted if key.startswith(w) or (commit.head or "").startswith(w)}
            if wanted and not hits:
                continue
            matched |= hits
            folder = Path("results") / source / key
            try:
                meta = load_json(folder / "generator.json")
            except IsobenchError:
                continue
            if meta.get("status") != "generation_failed":
                continue
            found += 1
            try:
                attempts = load_json(folder / "llm_transcript.json").get("attempts") or []
            except IsobenchError:
                attempts = []
            keys = {a["request_key"] for a in attempts if isinstance(a, dict) and a.get("request_key")}
            print(
                f"{source} {key[:12]}: {len(keys)} cached replies dropped, generator outputs removed"
                f"{' (dry run: nothing changed)' if args.dry_run else ''}"
            )
            if args.dry_run:
                continue
            for request_key in keys:
                cache.drop("replies", request_key)
            drop_generator_outputs(folder)
    unknown = [w for w in wanted if w not in matched]
    if unknown:
        raise IsobenchError(f"retry-generation: no planned commit is {', '.join(unknown)}")
    print(
        f"{found} commit(s) with generation_failed; run the workflow to generate them again"
        if found
        else "no commit with generation_failed" + (" among those named" if wanted else "")
    )


def _workflow_options(p) -> None:
    p.add_argument("--directory", "-d", default=".", help="the workflow's folder (default: here)")
    p.add_argument(
        "--configfile",
        nargs="+",
        default=[],
        help="config file(s) merged over config/config.yaml, as snakemake --configfile does",
    )
    p.add_argument("--schema", default=str(SCHEMA), help=argparse.SUPPRESS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="isobench", description="Performance commits to a benchmark dataset."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "extract", help="write ISO-Bench extraction files (commit_extractions_with_apis format)"
    )
    p.add_argument("--repo", required=True, help="path of a git repository")
    p.add_argument("--out", required=True, help="directory to write <sha>.json files into")
    p.add_argument("--grep", help="take commits whose message matches this extended regex (git log --grep)")
    p.add_argument("--ref", default="HEAD", help="where --grep starts walking history (default HEAD)")
    p.add_argument("--with-old-content", action="store_true", help="include each changed file's old content")
    p.add_argument("commits", nargs="*", help="commits (SHAs or refs)")
    p.set_defaults(func=_extract)
    p = sub.add_parser("demo-repo", help="build the demo target repository at PATH")
    p.add_argument("path")
    p.set_defaults(func=_demo_repo)
    p = sub.add_parser(
        "check", help="check config/config.yaml and --configfile files (file, line and field in every error)"
    )
    _workflow_options(p)
    p.set_defaults(func=_check)
    p = sub.add_parser(
        "audit",
        help="re-hash every artifact chain, validate, list stale and missing records "
        "and secrets; exit 1 on integrity problems",
    )
    _workflow_options(p)
    p.add_argument("--results", default="results", help="the results folder (default results)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.add_argument("--strict", action="store_true", help="stale or missing records fail the audit too")
    p.set_defaults(func=_audit)
    p = sub.add_parser("summary", help="per commit: verdict, speedup with CI, statuses")
    _workflow_options(p)
    p.add_argument("--dataset", help="a dataset.jsonl (default: the config's)")
    p.set_defaults(func=_summary)
    p = sub.add_parser(
        "export", help="the dataset as Hugging Face datasets (save_to_disk + Parquet) per view"
    )
    _workflow_options(p)
    p.add_argument("--dataset", help="a dataset.jsonl (default: the config's)")
    p.add_argument("--out", default="results/export", help="folder (default results/export)")
    p.add_argument(
        "--view",
        action="append",
        choices=["isobench", "swe-perf", "gso"],
        help="one view (repeatable; default all three)",
    )
    p.add_argument("--split", default="test", help="the Parquet file's split name (default test)")
    p.set_defaults(func=_export)
    p = sub.add_parser(
        "push",
        help="merge the dataset into a Hub dataset repo, with its card (token: HF_TOKEN or `hf auth login`)",
    )
    _workflow_options(p)
    p.add_argument("repo_id", help="namespace/name of the dataset repository")
    p.add_argument("--dataset", help="a dataset.jsonl (default: the config's)")
    p.add_argument("--split", default="test", help="split to merge into (default test)")
    p.add_argument("--dry-run", action="store_true", help="print what would change; write nothing")
    p.add_argument(
        "--private", action="store_true", help="create the repository private; refuse to push to a public one"
    )
    p.set_defaults(func=_push)
    p = sub.add_parser(
        "retry-generation",
        help="ask the LLM again, on the next run, for the commits whose "
        "generation failed (drops their cached replies)",
    )
    _workflow_options(p)
    p.add_argument(
        "commits",
        nargs="*",
        help="only these commits (SHAs or their prefixes, at least 7 characters); default all",
    )
    p.add_argument("--dry-run", action="store_true", help="list them; change nothing")
    p.set_defaults(func=_retry_generation)
    p = sub.add_parser("leaderboard", help="the table of an evaluation run (results/evaluations/<run id>)")
    p.add_argument("run_folder", help="an evaluation run's folder, e.g. results/evaluations/demo")
    p.set_defaults(func=_leaderboard)
    args = parser.parse_args(argv)
    # `isobench audit | head`: end quietly, like any Unix tool
    if hasattr(signal, "SIGPIPE") and argv is None:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        if getattr(args, "directory", None):
            os.chdir(args.directory)
        return args.func(args) or 0
    except IsobenchError as exc:
        print(f"isobench: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"isobench: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
