"""The dataset an evaluation scores against, and which record a prediction is for.

The dataset is any isobench dataset file (this project's ``results/dataset.jsonl`` or one made elsewhere, e.g.
downloaded from the Hub): a record carries the repository, the SHAs and the test (``efficiency_test``), so no
rebuild is needed. A prediction finds its record by ``instance_id``; else by the commits its input names (an
ISO-Bench journal's human and base commits); else by the hex digits that end its id, as the head or the base
commit, full or short: ISO-Bench's predictions name the base (``vllm-project__vllm-<first 7 of the base>``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import IsobenchError
from ..jsonio import sha256_bytes
from ..untrusted import is_commit_hash, read_input
from .inputs import Prediction

MAX_DATASET_BYTES = 1 << 30
NEEDED = ("instance_id", "repo", "base_commit", "head_commit", "efficiency_test")
_TRAILING_HEX = re.compile(r"(?:^|[-_/@:.])([0-9a-fA-F]{7,40})$")
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass
class Dataset:
    path: str
    sha256: str
    records: list[dict]  # usable or not, each with its line
    problems: list[str]  # lines that are no record at all

    def index(self) -> Index:
        return Index(self.records)


def read_dataset(path: str | Path) -> Dataset:
    """Every line of a dataset file that is a record (the fields an evaluation needs, SHAs that are SHAs); the
    others as problems naming the file, line and field. A missing or unreadable file is an error."""
    path = Path(path)
    if not path.exists():
        raise IsobenchError(
            f"{path}: no such dataset (run the workflow first, or set evaluations.<run>.dataset to a dataset file)"
        )
    raw = read_input(path, MAX_DATASET_BYTES, "dataset")
    records, problems = [], []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as exc:
            problems.append(f"{path}:{number}: not a JSON line ({exc})")
            continue
        problem = record_problem(rec)
        if problem:
            problems.append(f"{path}:{number}: {problem}")
            continue
        records.append({**rec, "_line": number})
    return Dataset(str(path), sha256_bytes(raw), records, problems)


def record_problem(rec) -> str | None:
    if not isinstance(rec, dict):
        return "not a JSON object"
    for name in NEEDED:
        if name not in rec:
            return f"field {name}: missing"
    if not isinstance(rec["instance_id"], str) or not rec["instance_id"]:
        return "field instance_id: not a non-empty string"
    for name in ("base_commit", "head_commit"):
        if rec[name] is not None and not (isinstance(rec[name], str) and _SHA.match(rec[name])):
            return f"field {name}: not a 40-digit SHA"
    if not isinstance(rec["efficiency_test"], list):
        return "field efficiency_test: not a list of strings"
    return None


def unusable(rec: dict) -> tuple[str, str] | None:
    """(category, why) of a record whose own measurement failed: nothing to score a candidate against."""
    if rec.get("status", "ok") == "ok" and rec.get("base_commit") and rec.get("efficiency_test"):
        return None
    revisions = rec.get("revisions") or {}
    for name in ("base", "head"):
        rev = revisions.get(name) or {}
        if rev.get("status") not in (None, "ok"):
            return rev.get("category") or "failed", f"{name}: {rev.get('error') or rev.get('category')}"
    if not rec.get("efficiency_test"):
        return "no_test", "the record holds no test (efficiency_test is empty)"
    return rec.get("status") or "failed", "the record's measurement failed"


class Index:
    """Records by instance id, head SHA and base SHA (a short SHA matches by prefix)."""

    def __init__(self, records: list[dict]):
        self.by_id = {r["instance_id"]: r for r in records}
        self.heads: dict[str, list[dict]] = {}
        self.bases: dict[str, list[dict]] = {}
        for r in records:
            if r.get("head_commit"):
                self.heads.setdefault(r["head_commit"], []).append(r)
            if r.get("base_commit"):
                self.bases.setdefault(r["base_commit"], []).append(r)
        self._heads, self._bases = sorted(self.heads), sorted(self.bases)

    def _by_sha(self, sha: str, table: dict, keys: list[str]) -> list[dict]:
        sha = sha.lower()
        if len(sha) == 40:
            return table.get(sha, [])
        import bisect

        i = bisect.bisect_left(keys, sha)
        found = []
        while i < len(keys) and keys[i].startswith(sha):
            found += table[keys[i]]
            i += 1
        return found

    def match(self, pred: Prediction, id_names: str = "auto") -> tuple[dict | None, str]:
        """(the record, how it was found) or (None, why none was).

        An ISO-Bench agent run's journal names the human and base commits: they decide. Otherwise ``id_names``
        says what a prediction's id names: ``auto`` (SWE-bench's convention: the dataset's instance_id; else the
        SHA that ends it, 7 digits read as the base first as ISO-Bench writes them, longer as the head first),
        ``base`` or ``head`` (only the SHA that ends it, as that commit: ISO-Bench's prediction lines name the
        base, with an id shaped like an isobench instance_id of another record)."""
        tried = []
        for kind in ("head", "base"):
            sha = pred.hints.get(kind)
            if is_commit_hash(sha):
                found = self._found(sha, kind)
                if found[0] is not None or found[1].startswith("ambiguous"):
                    return found
                tried.append(f"{kind} {sha[:12]}")
        if id_names == "auto" and pred.instance_id in self.by_id and not pred.hints:
            return self.by_id[pred.instance_id], "instance_id"
        m = _TRAILING_HEX.search(pred.instance_id or "")
        if m:
            sha = m.group(1)
            if id_names in ("base", "head"):
                order: tuple[str, ...] = (id_names,)
            else:  # ISO-Bench's ids end in the first 7 digits of the base; a longer SHA is taken as the head first
                order = ("base", "head") if len(sha) == 7 else ("head", "base")
            for kind in order:
                found = self._found(sha, kind)
                if found[0] is not None or found[1].startswith("ambiguous"):
                    return found
            tried.append(f"{' or '.join(order)} {sha}")
        what = f"instance id {pred.instance_id!r}" if pred.instance_id else "no instance id"
        return None, f"no record of the dataset matches {what}" + (f" ({', '.join(tried)})" if tried else "")

    def _found(self, sha: str, kind: str) -> tuple[dict | None, str]:
        table, keys = (self.heads, self._heads) if kind == "head" else (self.bases, self._bases)
        hits = self._by_sha(sha, table, keys)
        ids = sorted({r["instance_id"] for r in hits})
        if len(ids) == 1:
            return hits[0], f"{kind}_commit"
        if len(ids) > 1:
            return None, f"ambiguous: {kind} commit {sha} matches {len(ids)} records ({', '.join(ids[:3])})"
        return None, f"no record with {kind} commit {sha}"
