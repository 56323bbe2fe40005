"""interleave: auto (decided from measured memory), adaptive rounds and their stop reasons, and the
noisy-machine warnings."""

import json

import pytest
from conftest import FIXTURES

from isobench.jsonio import validate
from isobench.measure.adaptive import decide_interleave
from isobench.measure.job import Settings
from isobench.measure.lockstep import paired
from isobench.measure.machine import available_memory_mb
from isobench.measure.rounds import measure_commit
from isobench.measure.stats import Analysis, describe, noise_warnings
from isobench.report import format_summary

TEST = """
import json
import toy

def setup():
    global ballast
    ballast = bytearray(BALLAST)  # resident memory the process holds while it is measured
    for i in range(0, len(ballast), 4096):
        ballast[i] = 1
    return 30000

def experiment(n):
    return toy.work(n)

def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(reference, current):
    assert reference == current
"""
QUICK = dict(warmup=1, warmup_ms=0, repeat=3, timeout_s=60)


def measure(tmp_path, revisions, settings, ballast=0, **kw):
    gen = tmp_path / "generator.py"
    gen.write_text(TEST.replace("BALLAST", str(ballast)))
    timings = measure_commit(gen, revisions, tmp_path / "scratch", settings, **kw)
    for t in timings.values():
        validate(t, "timing", t["revision"])
    return timings


def faster_head(revisions):
    (revisions[1].worktree / "toy.py").write_text(
        "VERSION = 'head'\n\ndef work(n):\n    return (n - 1) * n // 2\n"
    )  # the same result, no loop


def test_auto_decision_from_memory_facts():
    small = [{"peak_rss_mb": 40.0}] * 3
    d = decide_interleave("auto", "functions", small, 3, 0.5, available_mb=8000)
    assert d["chosen"] == "lockstep" and "3 x 40 MiB peak RSS <= 50% of 8,000 MiB available" == d["reason"]
    d = decide_interleave("auto", "functions", [{"peak_rss_mb": 3000.0}], 3, 0.5, available_mb=8000)
    assert d["chosen"] == "sequential" and "> 50% of 8,000 MiB" in d["reason"]
    gpu = [{"peak_rss_mb": 500.0, "gpu_peak_mb": 30000.0, "gpu_device": 0}]
    assert (
        decide_interleave("auto", "functions", gpu, 3, 0.5, available_mb=1e6, gpu_free=80000)["chosen"]
        == "sequential"
    )
    assert (
        decide_interleave("auto", "functions", gpu, 3, 0.9, available_mb=1e6, gpu_free=140000)["chosen"]
        == "lockstep"
    )
    assert (
        decide_interleave("auto", "isobench_cli", small, 3, 0.5, available_mb=8000)["chosen"] == "sequential"
    )
    assert decide_interleave("rounds", "functions", small, 3, 0.5)["reason"] == "set in the config"
    assert available_memory_mb() > 0


def test_auto_picks_lockstep_when_three_processes_fit(tmp_path, revisions):
    t = measure(tmp_path, revisions, Settings(rounds=3, max_rounds=3, **QUICK))
    decision = t["base"]["interleave_decision"]
    assert t["base"]["interleave"] == t["head"]["interleave"] == "lockstep", decision
    assert (
        decision["setting"] == "auto"
        and decision["peak_rss_mb"] > 1
        and "MiB available" in decision["reason"]
    )


def test_auto_falls_back_to_rounds_when_memory_cannot_be_tripled(tmp_path, revisions):
    # 300 MiB held per process; three of them are more than 1% of what this machine has free
    available = available_memory_mb()
    fraction = round(3 * 300 / available / 2, 6)
    t = measure(
        tmp_path,
        revisions,
        Settings(rounds=3, max_rounds=3, auto_memory_fraction=fraction, **QUICK),
        ballast=300 * 2**20,
    )
    decision = t["head"]["interleave_decision"]
    assert t["head"]["interleave"] == "sequential" and decision["chosen"] == "sequential", decision
    assert decision["peak_rss_mb"] >= 300 and "peak RSS >" in decision["reason"]
    assert all(x["status"] == "ok" for x in t.values())


def test_a_clear_case_costs_the_minimum(tmp_path, revisions):
    faster_head(revisions)
    t = measure(tmp_path, revisions, Settings(rounds=8, max_rounds=20, **QUICK))
    stop = t["head"]["rounds_stop"]
    assert stop["reason"] == "decided" and stop["rounds"] == 8 and stop["verdict"] == "faster"
    assert len(t["base"]["rounds_ms"]) == 8


# No verdict can be reached: faster/slower need p < alpha (no test of 40 rounds gets near 1e-300), no_change
# an estimate within 1e-6 of 1. (With alpha 0.01 a machine phase between the rounds could decide it.)
NEVER_DECIDED = Analysis(min_effect=1e-6, alpha=1e-300, bootstrap=200)


def test_undecided_runs_to_max_rounds_and_precise_stops_early(tmp_path, revisions):
    strict = NEVER_DECIDED
    t = measure(
        tmp_path, revisions, Settings(rounds=3, max_rounds=5, precision=1e-9, **QUICK), analysis=strict
    )
    assert t["head"]["rounds_stop"]["reason"] == "max_rounds" and len(t["head"]["rounds_ms"]) == 5
    t = measure(
        tmp_path, revisions, Settings(rounds=3, max_rounds=5, precision=2.0, **QUICK), analysis=strict
    )
    stop = t["head"]["rounds_stop"]
    assert stop["reason"] == "precise" and stop["rounds"] == 3 and stop["ci_half_width_log"] <= 2.0


def test_the_time_budget_stops_adding_rounds(tmp_path, revisions):
    strict = NEVER_DECIDED
    t = measure(
        tmp_path,
        revisions,
        Settings(rounds=2, max_rounds=40, precision=1e-9, job_timeout_s=3, **QUICK),
        analysis=strict,
    )
    stop = t["head"]["rounds_stop"]
    assert stop["reason"] == "job_timeout" and 2 <= stop["rounds"] < 40
    assert any("job time limit" in w for w in t["head"]["warnings"])


def test_noisy_machine_warnings():
    # this VM's phases: the same call alternates between ~39 ms and ~60 ms runs
    modes = noise_warnings([39.1, 60.3, 39.4, 59.8, 38.9, 60.8, 39.3, 60.1])
    assert len(modes) == 1 and "two speed modes" in modes[0] and "39.2 ms in 4 rounds" in modes[0]
    drift = noise_warnings([10.0, 10.3, 10.9, 11.4, 12.0, 12.8, 13.1, 13.9, 14.4])
    assert len(drift) == 1 and "drift +" in drift[0]
    assert noise_warnings([10.0, 10.2, 9.9, 10.1, 10.05, 9.95, 10.1, 10.0]) == []
    assert noise_warnings([10.0, 10.0, 30.0]) == []  # too few rounds to tell
    stats = describe([[39.0, 39.2], [60.0, 60.4], [39.1, 39.3], [60.2, 60.1], [39.0, 38.8]])
    assert any(w.startswith("noisy machine") for w in stats["warnings"])


def test_summary_names_a_noisy_machine():
    rows = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]
    rows[0]["revisions"]["head"]["warnings"] = [
        "noisy machine: the round medians fall into two speed modes (…)"
    ]
    table = format_summary(rows)
    assert "notes" in table.splitlines()[0] and "head: noisy (speed modes)" in table.splitlines()[2]


@pytest.mark.parametrize(
    "name, now",
    [("lockstep", "lockstep"), ("sequential", "sequential"), ("calls", "lockstep"), ("rounds", "sequential")],
)
def test_explicit_choices_stay(tmp_path, revisions, name, now):
    """The names, and the old names of a config written before them (read as the new ones)."""
    settings = Settings(rounds=2, max_rounds=2, interleave=name, **QUICK)
    t = measure(tmp_path, revisions, settings)
    assert settings.interleave == now and t["main"]["settings"]["interleave"] == now
    assert (
        t["main"]["interleave"] == now and t["main"]["interleave_decision"]["reason"] == "set in the config"
    )
    assert paired(t["base"], t["head"]) == (now == "lockstep")


def test_old_interleave_names_keep_their_cache_keys_and_pairing():
    """The rename changes no measurement cache key (nothing is measured again) and old timing files still pair."""
    import hashlib
    import json

    from isobench.measure.cache import measurement_key
    from isobench.measure.harness import HARNESS_VERSION

    args = dict(
        generator_sha256="g", shas={"base": "b"}, fingerprints={}, contract="functions", python_path=[]
    )
    keys = {
        name: measurement_key(settings={"interleave": name, "rounds": 5}, epoch=0, **args)
        for name in ("calls", "lockstep", "rounds", "sequential", "auto")
    }
    assert keys["calls"] == keys["lockstep"] and keys["rounds"] == keys["sequential"] != keys["auto"]
    before = {
        "generator": "g",
        "shas": {"base": "b"},
        "environments": {},
        "harness": HARNESS_VERSION,
        "settings": {"interleave": "calls", "rounds": 5},
        "contract": "functions",
        "python_path": [],
        "epoch": 0,
    }  # fmt: skip  (the key's document as it was made before the rename)
    assert keys["lockstep"] == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    assert paired({"interleave": "calls"}, {"interleave": "lockstep"}) and not paired(
        {"interleave": "rounds"}
    )
    assert not paired({"interleave": "lockstep"}, None)
