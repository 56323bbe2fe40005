"""The ``isobench`` command: helpers around the workflow."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import IsobenchError


def _extract(args) -> None:
    from .apis import commits_matching, write_extractions

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="isobench", description="Performance commits to a benchmark dataset.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("extract", help="write ISO-Bench extraction files (commit_extractions_with_apis format)")
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
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except IsobenchError as exc:
        print(f"isobench: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"isobench: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
