"""The measurement cache: a measurement is paid once per content, whatever made Snakemake rerun the job.

Key = sha256 of (generator sha256, the base/head/main SHAs, each revision's environment fingerprint,
harness version, measurement settings, contract, python_path, ``measure.epoch``). A hit restores the
three timing files as they were measured (marked ``measurement.cached``); changing ``epoch`` is the
deliberate way to measure again. Runs that never started (an environment that failed) are not kept.
"""

from __future__ import annotations

import json
import logging
import subprocess
from functools import cache
from pathlib import Path

from ..errors import IsobenchError
from ..jsonio import load_json, sha256_bytes, validate, write_json
from .harness import HARNESS_VERSION
from .machine import machine

log = logging.getLogger("isobench")

CACHE_VERSION = 1
NOT_RUN = (
    "env_failed",
    "generation_failed",
    "isolation_unavailable",
)  # never cached: run when the cause is fixed
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


class MeasurementCache:
    def __init__(self, root: str | Path, read: bool = True):
        self.root, self.read = Path(root), read

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        """The timings stored under ``key``, or None: a missing, unreadable or invalid entry (wrong shape, a timing
        that fails its schema) is a miss, and the fresh measurement replaces it."""
        path = self._path(key)
        if not self.read or not path.is_file():
            return None
        try:
            entry = load_json(path)
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
        try:
            write_json(self._path(key), {"cache_version": CACHE_VERSION, "timings": timings})
        except (IsobenchError, OSError) as exc:
            log.warning(
                "warning: the measurement cache cannot be written (%s); the timings are kept in the results, "
                "but a rerun after their deletion will measure again",
                exc,
            )
