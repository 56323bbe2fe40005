"""The measurement cache: a measurement is paid once per content, whatever made Snakemake rerun the job.

Key = sha256 of (generator sha256, the base/head/main SHAs, each revision's environment fingerprint,
harness version, measurement settings, contract, python_path, ``measure.epoch``). A hit restores the
three timing files as they were measured (marked ``measurement.cached``); changing ``epoch`` is the
deliberate way to measure again, and so is ``snakemake --forcerun measure``: a measure job that Snakemake was
told to force never reads the cache (``forced``). Runs that never started (an environment that failed) are
not kept.

Each entry's sha256 is kept apart from it (``<key>.sha256`` beside ``<key>.json``): an entry that does not match
its digest, or has none, is a miss — measured again and replaced — never served.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from functools import cache
from pathlib import Path

from ..categories import NOT_CACHED
from ..errors import IsobenchError
from ..jsonio import dumps, sha256_bytes, validate, write_text_atomic
from .harness import HARNESS_VERSION
from .lockstep import old_name
from .machine import machine

log = logging.getLogger("isobench")

CACHE_VERSION = 1
NOT_RUN = NOT_CACHED  # never cached: nothing (or not everything) ran; run when the cause is fixed
_PACKAGES = (
    "import json, sys, importlib.metadata as m; print(json.dumps({'python': sys.version, "
    "'packages': sorted('%s==%s' % (d.metadata['Name'], d.version) for d in m.distributions())}))"
)


@cache
def python_fingerprint(python: str) -> str:
    """sha256 of an interpreter's version and installed distributions (what the test can import besides the SHA)."""
    try:
        out = subprocess.run([python, "-c", _PACKAGES], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise IsobenchError(f"cannot list the packages of {python}: {exc}") from None
    if out.returncode != 0:
        raise IsobenchError(f"cannot list the packages of {python}: {out.stderr.strip()[-300:]}")
    return sha256_bytes(out.stdout.encode())


def fingerprint(env_marker: dict) -> dict:
    """A revision environment's fingerprint; image environments are named by their image's ID (a tag moved to
    another build is another environment)."""
    if env_marker.get("mode") == "image":
        return {
            "image": env_marker.get("image"),
            "image_id": env_marker.get("image_id"),
            "python": env_marker["python"],
            "machine": machine(),
        }
    return {"packages": python_fingerprint(env_marker["python"]), "machine": machine()}


def measurement_key(
    *,
    generator_sha256: str,
    shas: dict,
    fingerprints: dict,
    settings: dict,
    contract: str,
    python_path: list[str],
    epoch,
) -> str:
    if "interleave" in settings:  # keys keep the words they were made with: lockstep is "calls" here
        settings = {**settings, "interleave": old_name(settings["interleave"])}
    doc = {
        "generator": generator_sha256,
        "shas": shas,
        "environments": fingerprints,
        "harness": HARNESS_VERSION,
        "settings": settings,
        "contract": contract,
        "python_path": list(python_path),
        "epoch": epoch,
    }
    return sha256_bytes(json.dumps(doc, sort_keys=True).encode())


# The rules and files given to --forcerun (-R), as the main Snakemake process saw them (Snakefile's onstart):
# the jobs it starts inherit it.
FORCERUN_ENV = "ISOBENCH_FORCERUN"


def forcerun_environment(forcerun) -> dict[str, str]:
    """What the main process puts in its environment for its jobs: the --forcerun targets, one a line."""
    return {FORCERUN_ENV: "\n".join(sorted(str(x) for x in forcerun or ()))}


def forced(rule: str, outputs) -> bool:
    """Whether this job was forced by name (``--forcerun measure``, or one of its output files): then it measures
    again rather than restore what the cache holds."""
    named = {os.path.normpath(x) for x in os.environ.get(FORCERUN_ENV, "").splitlines() if x}
    return rule in named or any(os.path.normpath(str(o)) in named for o in outputs)


class MeasurementCache:
    def __init__(self, root: str | Path, read: bool = True):
        self.root, self.read = Path(root), read

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def _digest(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.sha256"

    def get(self, key: str) -> dict | None:
        """The timings stored under ``key``, or None: a missing entry is a miss; so is one that does not match
        the digest kept apart from it (or has none), or is unreadable or invalid (wrong shape, a timing that fails
        its schema). The fresh measurement replaces it."""
        path = self._path(key)
        if not self.read or not path.is_file():
            return None
        try:
            data = path.read_bytes()
            try:
                sealed = self._digest(key).read_text(encoding="ascii").strip()
            except (OSError, UnicodeDecodeError):
                sealed = None
            if sealed != sha256_bytes(data):
                raise IsobenchError(
                    f"its sha256 differs from {self._digest(key).name}" if sealed else "no digest beside it"
                )
            try:
                entry = json.loads(data.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise IsobenchError(f"not JSON: {exc}") from None
            if (
                not isinstance(entry, dict)
                or entry.get("cache_version") != CACHE_VERSION
                or not isinstance(entry.get("timings"), dict)
                or set(entry["timings"]) != {"base", "head", "main"}
            ):
                raise IsobenchError("not a cache entry of this version")
            for name, timing in entry["timings"].items():
                validate(timing, "timing", name)
                if not isinstance(timing.get("measurement"), dict):
                    raise IsobenchError(f"{name}: no measurement stamp")
        except (IsobenchError, OSError) as exc:
            log.warning("warning: measurement cache entry %s is invalid (%s): measuring again", path, exc)
            return None
        return entry["timings"]

    def put(self, key: str, timings: dict) -> None:
        """Keep a measurement; the cache is an optimization: a cache that cannot be written is a warning, the
        timings are written where they belong all the same."""
        if any(t.get("category") in NOT_RUN for t in timings.values()):
            return  # nothing (or not everything) ran: measure when the cause is fixed
        text = dumps({"cache_version": CACHE_VERSION, "timings": timings}) + "\n"
        try:  # the entry, then its digest: an entry without its digest is never served
            write_text_atomic(self._path(key), text)
            write_text_atomic(self._digest(key), sha256_bytes(text.encode("utf-8")) + "\n")
        except (IsobenchError, OSError) as exc:
            log.warning(
                "warning: the measurement cache cannot be written (%s); the timings are kept in the results, "
                "but a rerun after their deletion will measure again",
                exc,
            )
