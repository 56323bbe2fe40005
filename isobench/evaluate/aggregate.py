"""Run-level figures of an evaluation, per model over its instances, each with a bootstrap 95 % interval over
instances; two models compared on their shared instances.

- Opt@K as GSO computes it (an instance counts when any of its K attempts is ``opt_commit``: the union over runs)
  and the unbiased estimator 1 − C(n−c, K) / C(n, K) (n attempts, c successes; Chen et al., 2021);
- harmonic-mean SR (T_head / T_cand, SWE-fficiency's aggregate), geometric-mean speedup over base, fast_p at
  several p (KernelBench), ``success_decided`` and its rate; an instance's value is its first attempt's;
- McNemar's exact test on paired success, Wilcoxon's signed-rank test on paired log SR: a difference is called only
  when significant (p < alpha).
"""

from __future__ import annotations

import math
from math import comb

import numpy as np

from .metrics import FAST_P

BOOTSTRAP = 2000
SEED = 0
# predictions that say nothing of the model on the dataset: counted among its predictions, not its instances
NOT_THE_MODELS = ("unknown_instance", "instance_unusable")


def unbiased_pass_at_k(n: int, c: int, k: int) -> float:
    """1 − C(n−c, k)/C(n, k): the chance that k attempts drawn from n hold at least one of the c successes."""
    if n - c < k:
        return 1.0
    return 1.0 - comb(n - c, k) / comb(n, k)


def _interval(values: list[float], stat, rng) -> list[float | None]:
    a = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if a.size == 0:
        return [None, None]
    draws = rng.integers(0, a.size, size=(BOOTSTRAP, a.size))
    boots = np.array([stat(a[d]) for d in draws])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    return [float(lo), float(hi)]


def _hmean(a: np.ndarray) -> float:
    return float(len(a) / np.sum(1.0 / a))


def _gmean(a: np.ndarray) -> float:
    return float(np.exp(np.mean(np.log(a))))


def _mean(a: np.ndarray) -> float:
    return float(np.mean(a))


def per_instance(rows: list[dict]) -> dict[str, list[dict]]:
    """A model's attempts by instance of the dataset, in attempt order (rows of unknown or unusable instances
    left out)."""
    out: dict[str, list[dict]] = {}
    for r in sorted(rows, key=lambda r: r["attempt"] or 0):
        if r.get("instance_id") and r["status"] not in NOT_THE_MODELS:
            out.setdefault(r["instance_id"], []).append(r)
    return out


def sr_value(row: dict) -> float | None:
    """SWE-fficiency's SR of an attempt (a failed or incorrect one counts as speedup 1)."""
    sw = (row.get("metrics") or {}).get("swefficiency") or {}
    return sw.get("human_speedup_ratio")


def speedup_value(row: dict) -> float | None:
    return (((row.get("metrics") or {}).get("speedup")) or {}).get("speedup") if row.get("counted") else None


def model_summary(rows: list[dict], k_values=(1, 5)) -> dict:
    """The figures of one model's rows (every row of its predictions, whatever happened to them)."""
    rng = np.random.default_rng(SEED)
    inst = per_instance(rows)
    first = [attempts[0] for attempts in inst.values()]
    succ = [1.0 if r.get("success_decided") == "success" else 0.0 for r in first]
    sr = [v for v in (sr_value(r) for r in first) if v and v > 0]
    speed = [v for v in (speedup_value(r) for r in first) if v and v > 0]
    out = {
        "predictions": len(rows),
        "instances": len(inst),
        "statuses": _counts(r["status"] for r in rows),
        "success_decided": {
            "rate": float(np.mean(succ)) if succ else None,
            "ci95": _interval(succ, _mean, rng),
            "inconclusive": sum(r.get("success_decided") == "inconclusive" for r in first),
        },
        "hm_sr": {
            "value": _hmean(np.asarray(sr)) if sr else None,
            "ci95": _interval(sr, _hmean, rng),
            "n": len(sr),
        },
        "gm_speedup": {
            "value": _gmean(np.asarray(speed)) if speed else None,
            "ci95": _interval(speed, _gmean, rng),
            "n": len(speed),
        },
        "fast_p": {},
        "opt_at_k": {},
    }
    for q in FAST_P:
        key = f"{q:g}"
        vals = [1.0 if r.get("counted") and (r["metrics"]["fast_p"] or {}).get(key) else 0.0 for r in first]
        out["fast_p"][key] = {
            "value": float(np.mean(vals)) if vals else None,
            "ci95": _interval(vals, _mean, rng),
        }
    for k in k_values:
        gso = [1.0 if any(_opt_commit(r) for r in attempts[:k]) else 0.0 for attempts in inst.values()]
        unbiased = [
            unbiased_pass_at_k(len(a), sum(_opt_commit(r) for r in a), k)
            for a in inst.values()
            if len(a) >= k
        ]
        out["opt_at_k"][str(k)] = {
            "gso_union": float(np.mean(gso)) if gso else None,
            "unbiased": float(np.mean(unbiased)) if unbiased else None,
            "unbiased_instances": len(unbiased),
            "ci95": _interval(gso, _mean, rng),
        }
    return out


def _opt_commit(row: dict) -> bool:
    return bool(row.get("counted") and ((row.get("metrics") or {}).get("gso") or {}).get("opt_commit"))


def _counts(items) -> dict:
    out: dict = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return dict(sorted(out.items()))


def compare_models(a_rows: list[dict], b_rows: list[dict], alpha: float = 0.05) -> dict:
    """Two models on their shared instances (first attempts): McNemar's exact test on success, Wilcoxon's
    signed-rank test on log SR. ``better``: the model significantly ahead, or null."""
    from scipy.stats import binomtest, wilcoxon

    a, b = per_instance(a_rows), per_instance(b_rows)
    shared = sorted(set(a) & set(b))
    sa = [a[i][0].get("success_decided") == "success" for i in shared]
    sb = [b[i][0].get("success_decided") == "success" for i in shared]
    only_a = sum(x and not y for x, y in zip(sa, sb))
    only_b = sum(y and not x for x, y in zip(sa, sb))
    mcnemar = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    pairs = [(sr_value(a[i][0]), sr_value(b[i][0])) for i in shared]
    d = [math.log(x) - math.log(y) for x, y in pairs if x and y and x > 0 and y > 0 and x != y]
    wil = float(wilcoxon(d).pvalue) if len(d) >= 2 else 1.0
    better = None
    if mcnemar < alpha:
        better = "a" if only_a > only_b else "b"
    elif wil < alpha:
        better = "a" if np.median(d) > 0 else "b"
    return {
        "shared_instances": len(shared),
        "success_only_a": only_a,
        "success_only_b": only_b,
        "mcnemar_p": float(mcnemar),
        "wilcoxon_log_sr_p": wil,
        "alpha": alpha,
        "better": better,
    }
