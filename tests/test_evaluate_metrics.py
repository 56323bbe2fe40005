"""Every benchmark's rule, checked against the rule as its own code states it (written out here the slow way)."""

from __future__ import annotations

import itertools

import numpy as np
from scipy.stats import mannwhitneyu

from isobench.evaluate import aggregate, metrics
from isobench.measure.stats import Analysis


def timing(values, rounds=4):
    vals = list(values)
    k = len(vals) // rounds
    return {"status": "ok", "rounds_ms": [vals[i * k : (i + 1) * k] for i in range(rounds)]}


def around(center, n=40, spread=0.01, seed=0):
    rng = np.random.default_rng(seed)
    return list(center * (1 + spread * rng.standard_normal(n)))


def sweperf_loop(base, cand):
    """SWE-Perf's find_max_significant_improvement, step by step (after its 1·IQR filter)."""
    b, c = metrics._iqr_filter(base), metrics._iqr_filter(cand)
    x, best = 0.0, 0.0
    while x <= 1:
        if mannwhitneyu(b * (1 - x), c, alternative="greater").pvalue < 0.1:
            best = x
            x = round(x + 0.001, 3)
        else:
            break
    return round(best, 3)


def test_sweperf_performance_is_their_loop():
    for seed, ratio in enumerate((1.0, 0.9, 0.7, 0.5, 1.2)):
        base, cand = around(10.0, seed=seed), around(10.0 * ratio, seed=seed + 100)
        assert metrics.sweperf_performance(base, cand) == sweperf_loop(base, cand), ratio


def test_gso_rules():
    a = Analysis()

    def run(cand_ms, head_ms=8.2, correct=True):
        m = metrics.attempt_metrics(
            timing(around(10.0, spread=0.001)),
            timing(around(head_ms, spread=0.001, seed=1)),
            timing(around(cand_ms, spread=0.001, seed=2)),
            None,
            analysis=a,
            paired=False,
            p=0.95,
            correct=correct,
        )
        return m

    assert run(8.0)["gso"]["opt_base"] and run(8.0)["gso"]["opt_commit"]  # gm 1.25, hm 8.2/8
    assert run(8.5)["gso"]["opt_base"]  # gm 1.176 rounds to 1.2
    assert not run(8.8)["gso"]["opt_base"]  # gm 1.136 rounds to 1.1
    assert run(8.0, head_ms=7.0)["gso"]["opt_commit"] is False  # 7/8 = 0.875 <= 0.95
    m = run(8.0)
    assert m["isobench_hard_success"] and abs(m["isobench_improvement"] - 0.2) < 0.01
    assert m["fast_p"] == {"0": True, "1": True, "1.5": False, "2": False}
    assert m["success_decided"] == "success"  # T_head / T_cand = 1.025, interval well above 0.95
    slow = run(9.9)
    assert slow["success_decided"] == "failure" and not slow["isobench_hard_success"]
    wrong = run(5.0, correct=False)  # fast but incorrect: SWE-fficiency counts speedup 1
    assert not wrong["gso"]["opt_base"] and wrong["swefficiency"]["pred_speedup_ratio"] == 1.0
    assert abs(wrong["swefficiency"]["human_speedup_ratio"] - 8.2 / 10.0) < 0.01
    assert wrong["success_decided"] == "failure" and wrong["fast_p"]["0"] is False


def test_decided_by_its_interval():
    assert metrics.decided({"ci_low": 0.96, "ci_high": 1.1}, 0.95) == "success"
    assert metrics.decided({"ci_low": 0.90, "ci_high": 1.1}, 0.95) == "inconclusive"
    assert metrics.decided({"ci_low": 0.80, "ci_high": 0.94}, 0.95) == "failure"
    assert metrics.decided(None, 0.95) == "failure"


def test_caching_and_excessive_flags():
    base = {**timing(around(10.0)), "first_call_ms": [10.5] * 4}
    cand = {**timing(around(0.01)), "first_call_ms": [10.0] * 4}
    m = {"speedup": {"speedup": 1000.0}, "human_speedup": {"speedup": 2.0}}
    assert metrics.flags(m, base, cand, {}) == ["excessive_speedup", "caching_suspect"]
    honest = {**timing(around(5.0)), "first_call_ms": [5.2] * 4}
    assert (
        metrics.flags({"speedup": {"speedup": 2.0}, "human_speedup": {"speedup": 2.0}}, base, honest, {})
        == []
    )
    assert metrics.flags(
        {"speedup": {"speedup": 7.0}, "human_speedup": {"speedup": 2.0}}, base, honest, {}
    ) == ["excessive_speedup"]


def test_unbiased_opt_at_k_is_the_enumeration():
    for n, c, k in ((5, 0, 1), (5, 1, 1), (5, 2, 3), (6, 3, 5), (4, 4, 2)):
        draws = list(itertools.combinations(range(n), k))
        hit = sum(any(i < c for i in d) for d in draws) / len(draws)
        assert abs(aggregate.unbiased_pass_at_k(n, c, k) - hit) < 1e-12


def row(iid, success, sr, attempt=1, opt=False):
    return {
        "instance_id": iid,
        "attempt": attempt,
        "status": "evaluated",
        "counted": True,
        "success_decided": "success" if success else "failure",
        "metrics": {
            "swefficiency": {"human_speedup_ratio": sr},
            "speedup": {"speedup": sr * 2},
            "gso": {"opt_commit": opt},
            "fast_p": {"0": True, "1": sr * 2 > 1, "1.5": False, "2": False},
        },
    }


def test_model_summary_and_comparison():
    a = [row(f"i{i}", True, 1.2, opt=True) for i in range(12)]
    b = [row(f"i{i}", False, 0.5) for i in range(12)]
    s = aggregate.model_summary(a + [row("i0", False, 0.1, attempt=2)])
    assert s["success_decided"]["rate"] == 1.0 and abs(s["hm_sr"]["value"] - 1.2) < 1e-9
    # GSO: attempt 1 of i0 succeeded; unbiased: i0 holds 1 success in 2 attempts (1/2), the others 1 in 1
    assert s["opt_at_k"]["1"]["gso_union"] == 1.0 and abs(s["opt_at_k"]["1"]["unbiased"] - 11.5 / 12) < 1e-12
    assert abs(s["hm_sr"]["ci95"][0] - 1.2) < 1e-9 and abs(s["hm_sr"]["ci95"][1] - 1.2) < 1e-9  # all equal
    cmp = aggregate.compare_models(a, b)
    assert cmp["shared_instances"] == 12 and cmp["better"] == "a" and cmp["mcnemar_p"] < 0.01
    same = aggregate.compare_models(a, a)
    assert same["better"] is None and same["mcnemar_p"] == 1.0


def test_unknown_instances_are_not_the_models_instances():
    a = [row(f"i{i}", True, 1.2) for i in range(3)]
    a.append({"instance_id": "nope", "attempt": 1, "status": "unknown_instance"})
    s = aggregate.model_summary(a)
    assert s["predictions"] == 4 and s["instances"] == 3 and s["success_decided"]["rate"] == 1.0


def test_gso_report_counts_what_is_not_the_candidates_fault_as_an_error():
    """isobench/categories.py says which stops are the candidate's: a machine that lacks what the test needs, or a
    repository that cannot be had, is GSO's error, never a failed test; a wrong result is a failed test."""
    from isobench.evaluate.report import gso_report

    def row(iid, status):
        return {"instance_id": iid, "attempt": 1, "status": status, "model": "m"}

    rows = [
        row("a", "capability_unsupported"),
        row("b", "repo_unavailable"),
        row("c", "not_equivalent"),
        row("d", "guard_tests_failed"),
        row("e", "base_failed"),
        row("f", "patch_failed"),
    ]
    sets = gso_report(rows, 6)["instance_sets"]
    assert sets["error_ids"] == ["a", "b"] and sets["test_failed_ids"] == ["c", "d"]
    assert sets["base_failed_ids"] == ["e"] and sets["patch_failed_ids"] == ["f"]
    assert sets["completed_ids"] == ["c", "d", "e", "f"]
