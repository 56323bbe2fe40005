"""Synthetic git repositories for the scale benchmarks, written with ``git fast-import`` (seconds for 10,000 commits).

The repository is a small Python package: ``pkg/mod_<i>.py`` files of pseudo-random but deterministic
content, each commit rewriting one of them (so history grows like a real project's), plus a README.
"""

from __future__ import annotations

import random
import subprocess
from pathlib import Path


def _blob(rng: random.Random, index: int, version: int, size: int) -> bytes:
    lines = [f"# module {index}, version {version}\n", "import math\n\n"]
    while sum(map(len, lines)) < size:
        n = rng.randrange(1 << 30)
        lines.append(f"def f_{index}_{len(lines)}(x):\n    return math.sqrt(x * {n} + {n % 97})\n\n")
    return "".join(lines).encode()


def make_repo(path: Path, commits: int, files: int = 200, file_bytes: int = 4000, seed: int = 0) -> list[str]:
    """Create ``path`` with ``commits`` commits on main; return their SHAs, oldest first."""
    path = Path(path)
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "--initial-branch", "main", str(path)], check=True)
    rng = random.Random(seed)
    versions = [0] * files
    stream = bytearray()
    when = 1_600_000_000
    for c in range(commits):
        changed = range(files) if c == 0 else [rng.randrange(files)]
        message = f"[Perf] speed up module {changed[0]}\n" if c % 7 == 3 else f"change {c}\n"
        stream += f"commit refs/heads/main\nmark :{c + 1}\n".encode()
        stream += f"author Bench <bench@example.com> {when + 60 * c} +0000\n".encode()
        stream += f"committer Bench <bench@example.com> {when + 60 * c} +0000\n".encode()
        stream += b"data %d\n%s" % (len(message.encode()), message.encode())
        if c:
            stream += f"from :{c}\n".encode()
        for i in changed:
            versions[i] += 1
            data = _blob(rng, i, versions[i], file_bytes)
            stream += f"M 100644 inline pkg/mod_{i}.py\n".encode() + b"data %d\n" % len(data) + data + b"\n"
        if c == 0:
            readme = b"# synthetic package\n"
            stream += b"M 100644 inline README.md\n" + b"data %d\n" % len(readme) + readme + b"\n"
            init = b""
            stream += b"M 100644 inline pkg/__init__.py\n" + b"data %d\n" % len(init) + init + b"\n"
        stream += b"\n"
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=bytes(stream), check=True)
    subprocess.run(["git", "checkout", "--quiet", "main"], cwd=path, check=True)
    out = subprocess.run(
        ["git", "rev-list", "--reverse", "main"], cwd=path, check=True, capture_output=True, text=True
    )
    return out.stdout.split()


def du(path: Path) -> int:
    """Bytes on disk under ``path`` (``du``: hard links counted once)."""
    out = subprocess.run(["du", "-sk", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0]) * 1024
