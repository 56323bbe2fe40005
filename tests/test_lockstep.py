"""Lockstep rounds (interleave: lockstep): alternated timed calls, and every failure still caught."""

import pytest

from isobench.jsonio import validate
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit
from isobench.measure.sandbox import SandboxSettings

LOCK = Settings(rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=3, timeout_s=10, interleave="lockstep")

TEST = """
import json, os, sys, time
import toy

LOG = {log!r}

def setup():
    return 1000

def experiment(data):
    with open(LOG, "a") as fh:
        fh.write(toy.VERSION + "\\n")
    print("chatter on stdout must not disturb the protocol")
    HOOK
    return toy.work(data)

def store_result(result, path):
    STORE
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(ref, cur):
    assert ref == cur, f"{{ref}} != {{cur}}"
"""


def measure(tmp_path, revisions, hook="pass", store="pass", settings=LOCK):
    log = tmp_path / "calls.txt"
    gen = tmp_path / "generator.py"
    gen.write_text(TEST.format(log=str(log)).replace("HOOK", hook).replace("STORE", store))
    timings = measure_commit(
        gen, revisions, tmp_path / "scratch", settings, sandbox=SandboxSettings(write_allow=(str(tmp_path),))
    )  # the log
    for t in timings.values():
        validate(t, "timing", t["revision"])
    return timings, log


def status(t):
    return {n: (x["status"], x["category"]) for n, x in t.items()}


def test_timed_calls_alternate(tmp_path, revisions):
    t, log = measure(tmp_path, revisions)
    assert status(t) == {n: ("ok", None) for n in ("base", "head", "main")}
    assert all(x["interleave"] == "lockstep" and len(x["samples_ms"]) == 6 for x in t.values())
    calls = log.read_text().split()
    # per round: base's first call (reference), head's and main's first calls, then timed calls alternating,
    # the order turning with every call
    timed = calls[3:12]
    assert timed == ["base", "head", "main", "head", "main", "base", "main", "base", "head"]
    assert t["head"]["equivalent"] is True


@pytest.mark.parametrize(
    "hook, category",
    [
        (
            "if toy.VERSION == 'head' and os.path.getsize(LOG) > 40: raise ValueError('late failure')",
            "experiment_error",
        ),
        ("if toy.VERSION == 'head' and os.path.getsize(LOG) > 40: time.sleep(60)", "timeout"),
        ("if toy.VERSION == 'head' and os.path.getsize(LOG) > 40: os._exit(7)", "crash"),
        ("if toy.VERSION == 'head': data += 1", "not_equivalent"),
    ],
)
def test_failures_at_head(tmp_path, revisions, hook, category):
    settings = Settings(
        rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=3, timeout_s=4, interleave="lockstep"
    )
    t, _ = measure(tmp_path, revisions, hook=hook.replace("data += 1", "data = data + 1"), settings=settings)
    assert status(t)["head"] == ("failed", category), t["head"]["error"]
    assert status(t)["base"] == ("ok", None) and len(t["base"]["samples_ms"]) == 6


def test_failing_base_leaves_no_reference(tmp_path, revisions):
    t, _ = measure(tmp_path, revisions, store="raise OSError('disk full')")
    assert status(t) == {
        "base": ("failed", "store_error"),
        "head": ("failed", "no_reference"),
        "main": ("failed", "no_reference"),
    }


def test_each_revision_follows_each_other_as_often():
    """call_order: over two cycles every revision runs first as often, and right after each other one as often
    (a candidate identical to head is not always the one that finds head's code warm)."""
    from collections import Counter

    from isobench.measure.lockstep import call_order

    for names in (["base", "head", "main"], ["base", "head", "c1", "c2"]):
        n = len(names)
        orders = [call_order(names, i) for i in range(2 * n)]
        assert Counter(o[0] for o in orders) == Counter({x: 2 for x in names})
        follows = Counter((o[j], o[j + 1]) for o in orders for j in range(n - 1))
        assert len(set(follows.values())) == 1 and len(follows) == n * (n - 1)
    assert call_order([], 3) == []
