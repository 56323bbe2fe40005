import math

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

from isobench.measure.stats import compare, describe, round_p_values, speedup_ci, verdict


def rounds(center, k=8, m=10, seed=0, spread=0.01):
    rng = np.random.default_rng(seed)
    return [list(center * (1 + rng.normal(0, spread)) * (1 + rng.normal(0, spread, m))) for _ in range(k)]


def test_describe_against_numpy():
    data = [[5.0, 1.0, 3.0], [2.0, 4.0, 100.0]]
    flat = [5.0, 1.0, 3.0, 2.0, 4.0, 100.0]
    d = describe(data)
    assert d["n"] == 6 and d["rounds"] == 2 and d["median"] == 3.5
    assert math.isclose(d["iqr"], np.percentile(flat, 75) - np.percentile(flat, 25))
    assert math.isclose(d["stdev"], np.std(flat, ddof=1)) and math.isclose(d["mean"], np.mean(flat))
    assert d["outliers"] == [5]  # 100 is beyond Q3 + 1.5 IQR; the raw sample is kept
    assert d["round_medians"] == [3.0, 4.0]
    assert any(w.startswith("unstable") for w in d["warnings"])
    assert describe([]) is None


def test_short_samples_are_flagged():
    assert any("under 1 ms on CPU" in w for w in describe([[0.2, 0.21, 0.2]])["warnings"])
    assert not any("under 1 ms" in w for w in describe([[0.2, 0.21, 0.2]], device="cuda")["warnings"])
    assert any("clock resolution" in w for w in describe([[1e-7, 1e-7]], device="cuda")["warnings"])


def test_p_values_match_scipy_on_round_medians():
    base, head = rounds(10.0, seed=1), rounds(9.0, seed=2)
    pf, ps = round_p_values(base, head)
    bm, hm = [np.median(r) for r in base], [np.median(r) for r in head]
    assert math.isclose(pf, mannwhitneyu(hm, bm, alternative="less").pvalue)
    assert math.isclose(ps, mannwhitneyu(hm, bm, alternative="greater").pvalue)
    assert pf < 0.01 < ps
    assert round_p_values([[1.0]], [[2.0]]) == (1.0, 1.0)


def test_ci_is_deterministic_and_seeded():
    base, head = rounds(10.0, seed=3), rounds(8.0, seed=4)
    assert speedup_ci(base, head, seed=7) == speedup_ci(base, head, seed=7)
    assert speedup_ci(base, head, seed=7) != speedup_ci(base, head, seed=8)
    lo, hi = speedup_ci(base, head)
    assert lo < 10.0 / 8.0 < hi


def test_ci_resamples_rounds_not_only_calls():
    # Strong per-process offsets with tight calls: a call-level bootstrap would be far too narrow.
    rng = np.random.default_rng(5)
    base = [list(10 * (1 + rng.normal(0, 0.05)) + rng.normal(0, 0.01, 20)) for _ in range(6)]
    head = [list(10 * (1 + rng.normal(0, 0.05)) + rng.normal(0, 0.01, 20)) for _ in range(6)]
    lo, hi = speedup_ci(base, head)
    flat_lo, flat_hi = speedup_ci([sum(base, [])], [sum(head, [])])
    assert (hi - lo) > 2 * (flat_hi - flat_lo)


def test_ragged_rounds_work():
    lo, hi = speedup_ci([[1.0, 1.1], [1.05, 1.0, 0.98]], [[0.5, 0.52, 0.49], [0.5]], n_boot=200)
    assert 1.5 < lo <= hi < 2.5


@pytest.mark.parametrize(
    "s, ci, pf, ps, expected",
    [
        (1.30, (1.2, 1.4), 0.001, 0.99, "faster"),
        (0.80, (0.7, 0.9), 0.99, 0.001, "slower"),
        (1.01, (0.97, 1.05), 0.3, 0.7, "no_change"),
        (1.03, (1.01, 1.05), 0.001, 0.99, "no_change"),  # significant, but smaller than the minimum effect
        (1.30, (0.9, 1.8), 0.2, 0.8, "inconclusive"),  # large estimate, not significant
        (1.00, (0.7, 1.4), 0.5, 0.5, "inconclusive"),  # too wide to rule out an effect
    ],
)
def test_verdicts(s, ci, pf, ps, expected):
    assert verdict(s, ci, pf, ps, min_effect=0.05, alpha=0.01) == expected


def test_compare_end_to_end():
    base = rounds(10.0, seed=6)
    assert compare(base, rounds(10.0, seed=7))["verdict"] == "no_change"
    slow = compare(base, rounds(11.0, seed=8))
    assert slow["verdict"] == "slower" and slow["ci_high"] < 1
    fast = compare(base, rounds(5.0, seed=9))
    assert fast["verdict"] == "faster" and fast["ci_low"] > 1.8
    assert compare(base, [[0.0, 0.0]])["speedup"] is None
    few = compare(rounds(10.0, k=3, seed=1), rounds(5.0, k=3, seed=2))
    assert few["verdict"] == "inconclusive" and "cannot reach" in few["warnings"][0]
    assert compare(rounds(10.0, k=6, seed=1), rounds(5.0, k=6, seed=2), paired=True)["warnings"]


def test_paired_analysis_cancels_shared_noise():
    from scipy.stats import wilcoxon

    from isobench.measure.stats import is_paired, paired_p_values

    rng = np.random.default_rng(11)
    drift = [list(1 + 0.3 * rng.random() * np.ones(10)) for _ in range(10)]  # the machine's speed, shared
    base = [[10 * d * (1 + rng.normal(0, 0.005)) for d in r] for r in drift]
    slow = [[11 * d * (1 + rng.normal(0, 0.005)) for d in r] for r in drift]
    assert is_paired(base, slow) and not is_paired(base, slow[:-1])
    pf, ps = paired_p_values(base, slow)
    diffs = [float(np.median(np.log(np.array(b) / np.array(o)))) for b, o in zip(base, slow)]
    assert math.isclose(ps, wilcoxon(diffs, alternative="less").pvalue) and ps < 0.01 < pf
    paired = compare(base, slow, paired=True)
    unpaired = compare(base, slow)
    assert paired["test"] == "wilcoxon_paired_calls" and unpaired["test"] == "mannwhitney_round_medians"
    assert paired["verdict"] == "slower"
    assert (paired["ci_high"] - paired["ci_low"]) < (unpaired["ci_high"] - unpaired["ci_low"]) / 3
