"""Tests that time something else than the commit's code, through real snakemake runs: a mock where the import
fails, an unrelated function, the target imported from a copy outside the worktree, and an ISO-Bench script that
times its own fallback while it reports opt_path_hit true. None of them may end ``ok``."""

import json
import subprocess
import sys

import pytest
import yaml
from conftest import JSON_CHECKS, copy_workflow, demo_subset, snakemake

from isobench.dataset import read_dataset

pytestmark = pytest.mark.slow

CONTRACT = JSON_CHECKS

# primes: the optimized name does not exist, so the test times a MagicMock (as ISO-Bench's scripts do)
MOCK = (
    """
import json
from unittest import mock

def setup():
    try:
        from demokit.numbers import primes_below_sieve as target
    except ImportError:
        target = mock.MagicMock(return_value=[2, 3, 5, 7])
    return target

def experiment(target):
    return list(target(20000))
"""
    + CONTRACT
)

# histogram: imports the changed module from the worktree, times a function the commit did not touch
UNRELATED = (
    """
import json
from demokit import binning, numbers

def setup():
    return 3000

def experiment(n):
    return numbers.primes_below(n)
"""
    + CONTRACT
)

# wordfreq: the changed module comes from a copy of its own put first on sys.path (as an installed release
# in site-packages shadows a worktree)
ELSEWHERE = (
    """
import json, os, sys

SHADOW = '''
from collections import Counter

def tokenize(text):
    return text.lower().split()

def word_frequencies(text):
    return sorted(Counter(tokenize(text)).items())
'''

def setup():
    root = os.path.abspath("shadow")
    os.makedirs(os.path.join(root, "demokit"), exist_ok=True)
    open(os.path.join(root, "demokit", "__init__.py"), "w").close()
    with open(os.path.join(root, "demokit", "text.py"), "w") as fh:
        fh.write(SHADOW)
    sys.path.insert(0, root)
    for name in [m for m in sys.modules if m == "demokit" or m.startswith("demokit.")]:
        del sys.modules[name]
    from demokit import text
    return text, "the quick brown fox jumps over the lazy dog " * 200

def experiment(data):
    text, words = data
    return [list(pair) for pair in text.word_frequencies(words)]
"""
    + CONTRACT
)

# regex: an ISO-Bench command-line script whose target import fails (a module that is not there, as sglang is
# not where ISO-Bench ran); it times its own fallback and still reports opt_path_hit true
CLI_FALLBACK = """
import argparse, json, re, time

try:
    from demokit.fast_text import tokenize
except ImportError:
    def tokenize(text):
        return re.findall(r"[a-z']+", text.lower())

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--eqcheck", action="store_true")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--prefix", type=str, default="")
    args = parser.parse_args()
    text = "It's the quick brown fox " * 500
    start = time.perf_counter()
    for _ in range(5):
        result = tokenize(text)
    avg_ms = (time.perf_counter() - start) / 5 * 1e3
    path = f"{args.prefix}_tokens.json"
    if args.reference:
        json.dump(result, open(path, "w"))
    if args.eqcheck:
        assert json.load(open(path)) == result
    print(json.dumps({"avg_ms": avg_ms, "target_resolved": True, "opt_path_hit": True}))

if __name__ == "__main__":
    main()
"""


def head_places(record: dict) -> dict:
    """{changed file: where head imported it from} of a record."""
    return {r["path"]: r["place"] for r in record["coverage"]["imported_from"] if r["revision"] == "head"}


FAST = {"rounds": 2, "max_rounds": 2, "warmup": 1, "warmup_ms": 0, "repeat": 2, "timeout_s": 120}


def test_tests_that_time_something_else_are_never_ok(tmp_path, demo):
    _, shas = demo
    scripts = {"primes": MOCK, "histogram": UNRELATED, "wordfreq": ELSEWHERE, "regex": CLI_FALLBACK}
    work = copy_workflow(tmp_path / "project")
    _, gen = demo_subset(work, shas, "elsewhere", scripts, ())
    for key, text in scripts.items():
        (gen / f"{shas[key][:8]}_test_case_generator.py").write_text(text)
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="elsewhere/extractions", generators="elsewhere/generators", measure=FAST
    )
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

    proc = snakemake(work)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
    assert len(rows) == 4

    def record(key):
        r = rows[shas[key]]
        assert r["status"] == "failed" and r["test_failed"] == "Yes", json.dumps(r["coverage"])
        return r

    for key in ("primes", "histogram", "regex"):
        r = record(key)
        head = r["revisions"]["head"]
        assert head["category"] == "target_not_exercised", head
        assert r["revisions"]["base"]["status"] == "ok"  # base measured, its samples kept in its timing file
        assert r["coverage"]["status"] == "not_exercised"
        assert r["coverage"]["changed_lines_covered"] == 0
        assert r["comparisons"]["base_head"] is None and r["human_performance"] is None
        timing = json.loads((work / "results" / "demo" / shas[key] / "timing_head.json").read_text())
        assert timing["samples_ms"] and timing["coverage"]["files"]  # what was measured is kept
    # the mock: the changed module was imported (the optimized name was not in it), none of its lines ran
    assert head_places(record("primes")) == {"demokit/numbers.py": "worktree"}
    assert "executed none of the" in record("primes")["revisions"]["head"]["error"]
    # the script's fallback: demokit.text was never imported at all
    assert head_places(record("regex")) == {"demokit/text.py": "not_imported"}
    assert "no changed module was imported" in record("regex")["revisions"]["head"]["error"]
    # the unrelated function: the module came from the worktree, none of its changed lines ran
    unrelated = record("histogram")["coverage"]
    assert head_places(record("histogram")) == {"demokit/binning.py": "worktree"}
    assert unrelated["changed_lines"]["head"]["measurable"] > 0 and unrelated["functions_missed"]
    # the script's own word is kept beside the measured figure
    assert record("regex")["coverage"]["opt_path_hit_reported"] is True
    assert record("regex")["provenance"]["contract"] == "isobench_cli"
    # the copy outside the worktree
    shadowed = record("wordfreq")
    assert shadowed["coverage"]["status"] == "imported_elsewhere"
    for name in ("base", "head"):
        assert shadowed["revisions"][name]["category"] == "target_imported_elsewhere"
        assert "shadow/demokit/text.py" in shadowed["revisions"][name]["error"]
    # isobench summary names the coverage of each
    summary = subprocess.run(
        [
            sys.executable,
            "-m",
            "isobench.cli",
            "summary",
            "--dataset",
            str(work / "results" / "dataset.jsonl"),
        ],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert summary.returncode == 0, summary.stderr[-2000:]
    assert "coverage: imported elsewhere 1, not exercised 3" in summary.stdout
    assert "0% lines, 0/1 functions" in summary.stdout  # the unrelated function's row
