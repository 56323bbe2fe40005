"""Every anchor's metric of one attempt, from the samples one job took of base, head and the candidate.

Ours: the speedup over base and ``sr_vs_human`` (T_head / T_cand) as ratios of medians with the measurement's
two-level bootstrap interval and verdict (isobench.measure.stats); ``success_decided``: success when the
interval's lower bound of T_head / T_cand is at least ``p`` (0.95 by default), failure when its upper bound is
below, inconclusive when it straddles ``p``. The field's own rules, on the same samples:
- GSO (gso/harness/grading/metrics.py): means of the timed calls; ``opt_base``: base mean > candidate mean and
  round(gm speedup, 1) >= 1.2; ``opt_commit``: harmonic-mean T_head / T_cand > 0.95 (only within opt_base, as GSO
  nests it); ``opt_main`` likewise against main when main was measured;
- ISO-Bench: hard success when the candidate's mean improves on base's by at least 5 %;
- SWE-Perf (evaluation/utils.py): the largest x (step 0.001, at most 1) with a one-sided Mann-Whitney U test of
  base·(1−x) > candidate at p < 0.1, on the samples kept by its outlier filter (1·IQR);
- SWE-fficiency (scripts/eval/get_report.py): SR = (T_base/T_cand) / (T_base/T_head) on means; a failed or
  incorrect candidate counts as speedup 1, so SR = T_head / T_base;
- KernelBench ``fast_p``: correct and speedup over base > p.
GSO, ISO-Bench, SWE-Perf and SWE-fficiency took one side's samples in another session; here all are from the
same interleaved job. With one test per record, GSO's geometric and harmonic means over tests are the ratio itself.
"""

from __future__ import annotations

import math

import numpy as np

from ..measure.stats import Analysis, compare

GSO_MIN_SPEEDUP = 1.2
GSO_OPT_THRESH = 0.95
ISOBENCH_HARD = 0.05
SWEPERF_P = 0.1
SWEPERF_STEP = 0.001
FAST_P = (0.0, 1.0, 1.5, 2.0)
EXCESSIVE_OVER_BASE = 10.0
EXCESSIVE_OVER_HUMAN = 3.0
CACHING_RATIO = 10.0  # first call of a process over the median of its timed calls


def samples(timing: dict | None) -> list[float]:
    return [s for rnd in (timing or {}).get("rounds_ms") or [] for s in rnd]


def mean(timing: dict) -> float | None:
    xs = samples(timing)
    return float(np.mean(xs)) if xs else None


def decided(cmp: dict | None, p: float) -> str:
    """success / failure / inconclusive of T_ref / T_cand against the threshold ``p`` by its interval."""
    if not cmp or cmp.get("ci_low") is None:
        return "failure"
    if cmp["ci_low"] >= p:
        return "success"
    if cmp["ci_high"] < p:
        return "failure"
    return "inconclusive"


def sweperf_performance(base: list[float], cand: list[float]) -> float:
    """SWE-Perf's performance: the largest x on its 0.001 grid with Mann-Whitney U base·(1−x) > cand at p < 0.1
    (0 when not even x = 0 is significant), after its 1·IQR outlier filter of both sides."""
    from scipy.stats import mannwhitneyu

    b, c = _iqr_filter(base), _iqr_filter(cand)
    if len(b) < 2 or len(c) < 2:
        return 0.0

    def significant(x: float) -> bool:
        return mannwhitneyu(b * (1 - x), c, alternative="greater").pvalue < SWEPERF_P

    if not significant(0.0):
        return 0.0
    lo, hi = 0, int(round(1 / SWEPERF_STEP))  # p grows with x: the last significant grid point by bisection
    if significant(hi * SWEPERF_STEP):
        return 1.0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if significant(mid * SWEPERF_STEP) else (lo, mid)
    return round(lo * SWEPERF_STEP, 3)


def _iqr_filter(xs: list[float]) -> np.ndarray:
    a = np.asarray(xs, dtype=float)
    if a.size < 4:
        return a
    q1, q3 = np.percentile(a, [25, 75])
    return a[(a >= q1 - (q3 - q1)) & (a <= q3 + (q3 - q1))]


def first_call_ratio(timing: dict) -> float | None:
    """The median over rounds of (a process's first call / the median of its timed calls)."""
    firsts = timing.get("first_call_ms") or []
    rounds = timing.get("rounds_ms") or []
    ratios = [f / float(np.median(r)) for f, r in zip(firsts, rounds) if r and f and float(np.median(r)) > 0]
    return float(np.median(ratios)) if ratios else None


def attempt_metrics(
    base: dict,
    head: dict,
    cand: dict | None,
    main: dict | None,
    *,
    analysis: Analysis,
    paired: bool,
    p: float,
    correct: bool,
) -> dict:
    """Every metric of one attempt. ``cand``: its timing file (None when never timed); ``correct``: measured and
    equivalent to base. Missing pieces give nulls, never invented numbers."""
    human = (
        compare(base["rounds_ms"], head["rounds_ms"], analysis=analysis, paired=paired)
        if _ok(base, head)
        else None
    )
    base, head = base or {}, head or {}
    out: dict = {
        "human_speedup": _short(human),
        "speedup": None,
        "sr_vs_human": None,
        "main_speedup": None,
        "success_decided": "failure",
        "success_p": p,
        "gso": {
            "opt_base": False,
            "opt_commit": False,
            "opt_main": False,
            "gm_speedup_patch_base": None,
            "hm_speedup_patch_commit": None,
            "hm_speedup_patch_main": None,
        },
        "isobench_hard_success": False,
        "isobench_improvement": None,
        "sweperf": {
            "apply": cand is not None,
            "correctness": bool(correct),
            "performance": 0.0,
            "human_performance": None,
        },
        "swefficiency": {
            "correctness": 1.0 if correct else 0.0,
            "pred_speedup_ratio": 1.0,
            "gold_speedup_ratio": None,
            "human_speedup_ratio": None,
        },
        "fast_p": {f"{q:g}": False for q in FAST_P},
        "means_ms": {"base": mean(base), "head": mean(head), "candidate": mean(cand) if cand else None},
    }
    mb, mh = mean(base), mean(head)
    if mb and mh:
        gold = mb / mh
        out["swefficiency"]["gold_speedup_ratio"] = gold
        out["swefficiency"]["human_speedup_ratio"] = 1.0 / gold  # a failed candidate: speedup 1
        if _ok(base, head):
            out["sweperf"]["human_performance"] = sweperf_performance(samples(base), samples(head))
    if cand is None or not _ok(cand) or not _ok(base):
        return out
    speed = compare(base["rounds_ms"], cand["rounds_ms"], analysis=analysis, paired=paired)
    out["speedup"] = _short(speed)
    mc = mean(cand)
    if _ok(head):
        sr = compare(head["rounds_ms"], cand["rounds_ms"], analysis=analysis, paired=paired)
        out["sr_vs_human"] = _short(sr)
        if correct:
            out["success_decided"] = decided(sr, p)
    if main is not None and _ok(main):
        out["main_speedup"] = _short(
            compare(main["rounds_ms"], cand["rounds_ms"], analysis=analysis, paired=paired)
        )
    if not correct or not mc:
        return out
    gm = mb / mc
    gso = out["gso"]
    gso["gm_speedup_patch_base"] = gm
    gso["opt_base"] = mb > mc and round(gm, 1) >= GSO_MIN_SPEEDUP
    if mh:
        gso["hm_speedup_patch_commit"] = mh / mc
        gso["opt_commit"] = gso["opt_base"] and mh / mc > GSO_OPT_THRESH
    mm = mean(main) if main is not None and _ok(main) else None
    if mm:
        gso["hm_speedup_patch_main"] = mm / mc
        gso["opt_main"] = gso["opt_base"] and mm / mc > GSO_OPT_THRESH
    out["isobench_improvement"] = (mb - mc) / mb
    out["isobench_hard_success"] = out["isobench_improvement"] >= ISOBENCH_HARD
    out["sweperf"]["performance"] = sweperf_performance(samples(base), samples(cand))
    sw = out["swefficiency"]
    sw["pred_speedup_ratio"] = gm
    if sw["gold_speedup_ratio"]:
        sw["human_speedup_ratio"] = gm / sw["gold_speedup_ratio"]
    out["fast_p"] = {f"{q:g}": speed["speedup"] is not None and speed["speedup"] > q for q in FAST_P}
    return out


def flags(metrics: dict, base: dict, cand: dict | None, patch_flags: dict) -> list[str]:
    """What keeps an attempt out of success counts or asks for a look: touches_tests, touches_build,
    excessive_speedup (> 10x base or > 3x the human's), caching_suspect (its first call of a process far slower
    than its timed calls while base's is not: results kept across calls)."""
    out = [name for name in ("touches_tests", "touches_build") if patch_flags.get(name)]
    s = (metrics.get("speedup") or {}).get("speedup")
    h = (metrics.get("human_speedup") or {}).get("speedup")
    if s and (s > EXCESSIVE_OVER_BASE or (h and s > EXCESSIVE_OVER_HUMAN * max(h, 1.0))):
        out.append("excessive_speedup")
    if cand is not None:
        rc, rb = first_call_ratio(cand), first_call_ratio(base)
        if rc is not None and rc >= CACHING_RATIO and rc >= 5 * max(rb or 1.0, 1.0):
            out.append("caching_suspect")
    return out


def _ok(*timings) -> bool:
    return all(t is not None and t.get("status") == "ok" and samples(t) for t in timings)


def _short(cmp: dict | None) -> dict | None:
    if cmp is None:
        return None
    keys = ("speedup", "ci_low", "ci_high", "ci_level", "verdict", "p_faster", "p_slower", "test")
    return {k: (None if isinstance(cmp.get(k), float) and math.isnan(cmp[k]) else cmp.get(k)) for k in keys}
