"""Statistics of timings: per revision, and per comparison (base→head, base→main).

Calls inside one process are correlated (same memory layout, same JIT and cache
state), so the unit of independent evidence is the *round* (one fresh process):
- the speedup's confidence interval comes from a two-level bootstrap that
  resamples rounds, then calls inside each drawn round;
- the Mann-Whitney U test compares the rounds' medians, not the pooled calls.
Both are seeded: the same samples always give the same numbers.
"""

from __future__ import annotations

import time
from math import comb

import numpy as np

from ..settings import schema_settings


@schema_settings("analysis")
class Analysis:
    """How timings become a verdict (the config's ``analysis`` block; defaults in the schema)."""

    min_effect: float  # the smallest speedup or slowdown that counts (0.05: 5%)
    alpha: float  # significance level of faster / slower
    ci_level: float  # confidence level of the speedup's interval
    bootstrap: int  # bootstrap resamples
    seed: int  # the bootstrap's seed: the same samples always give the same numbers


DEFAULT = Analysis()
MIN_CPU_SAMPLE_MS = 1.0  # below this, a CPU sample says more about the timer and the OS than the code
UNSTABLE_CV = 0.10


def clock_resolution_ms() -> float:
    return time.get_clock_info("perf_counter").resolution * 1e3


def describe(rounds: list[list[float]], device: str = "cpu") -> dict | None:
    """median, quartiles, IQR, mean, stdev, CV, n, outliers (IQR rule) and warnings of one revision."""
    samples = [s for r in rounds for s in r]
    if not samples:
        return None
    a = np.asarray(samples, dtype=float)
    q1, med, q3 = (float(x) for x in np.percentile(a, [25, 50, 75]))
    iqr = q3 - q1
    lo, hi = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    outliers = [i for i, x in enumerate(samples) if x < lo or x > hi]
    mean = float(a.mean())
    stdev = float(a.std(ddof=1)) if a.size > 1 else 0.0
    cv = stdev / mean if mean > 0 else 0.0
    warnings = []
    if cv > UNSTABLE_CV:
        warnings.append(f"unstable: coefficient of variation {cv:.0%} > {UNSTABLE_CV:.0%}")
    if med < 1000 * clock_resolution_ms():
        warnings.append(f"untrustworthy: median {med:.6f} ms is within 1000x the clock resolution")
    elif device == "cpu" and med < MIN_CPU_SAMPLE_MS:
        warnings.append(f"untrustworthy: median {med:.3f} ms is under {MIN_CPU_SAMPLE_MS:g} ms on CPU")
    round_medians = [float(np.median(r)) for r in rounds if r]
    warnings += noise_warnings(round_medians)
    return {
        "n": int(a.size),
        "rounds": len(rounds),
        "median": med,
        "q1": q1,
        "q3": q3,
        "iqr": iqr,
        "mean": mean,
        "stdev": stdev,
        "cv": cv,
        "min": float(a.min()),
        "max": float(a.max()),
        "outliers": outliers,
        "round_medians": round_medians,
        "warnings": warnings,
    }


MODE_GAP = 0.15  # round medians this far apart (ratio) with tight groups on each side: two speed modes
DRIFT = 0.10  # the last third of the rounds this much slower or faster than the first third


def noise_warnings(round_medians: list[float]) -> list[str]:
    """A noisy machine named, not hidden: round medians that fall into separate speed modes, or that drift
    across the job (a machine whose speed changed while it measured)."""
    m = [x for x in round_medians if x > 0]
    out = []
    if len(m) >= 4:
        logs = np.sort(np.log(m))
        gaps = np.diff(logs)
        i = int(np.argmax(gaps))
        low, high = logs[: i + 1], logs[i + 1 :]
        spread = max(float(np.ptp(low)), float(np.ptp(high)))
        if len(low) >= 2 and len(high) >= 2 and gaps[i] >= np.log1p(MODE_GAP) and gaps[i] > 2 * spread:
            out.append(
                f"noisy machine: the round medians fall into two speed modes ({np.exp(np.median(low)):.4g} ms "
                f"in {len(low)} rounds, {np.exp(np.median(high)):.4g} ms in {len(high)}): compare only "
                "side by side (interleave: lockstep)"
            )
    if len(m) >= 6:
        third = len(m) // 3
        first, last = float(np.median(m[:third])), float(np.median(m[-third:]))
        change = last / first - 1
        order = np.argsort(np.argsort(m))  # ranks
        rho = float(np.corrcoef(np.arange(len(m)), order)[0, 1])
        if abs(change) >= DRIFT and abs(rho) >= 0.7:
            out.append(
                f"noisy machine: the round medians drift {change:+.0%} from the first to the last rounds "
                f"(rank correlation with time {rho:+.2f})"
            )
    return out


def is_paired(base: list[list[float]], other: list[list[float]]) -> bool:
    """Lockstep data: the same number of rounds and of calls in each, call i of both taken together."""
    return len(base) == len(other) > 0 and all(len(b) == len(o) > 0 for b, o in zip(base, other))


def _boot_medians(
    rounds: list[list[float]], n_boot: int, rng: np.random.Generator, picks=None, calls=None
) -> np.ndarray:
    """Medians of ``n_boot`` two-level bootstrap resamples (rounds, then calls in each round).

    ``picks`` and ``calls`` (indices) may be given to draw the same rounds and calls for paired data."""
    rounds = [np.asarray(r, dtype=float) for r in rounds if len(r)]
    k = len(rounds)
    sizes = {len(r) for r in rounds}
    picks = rng.integers(0, k, size=(n_boot, k)) if picks is None else picks
    if len(sizes) == 1:  # the usual case: vectorized
        m = sizes.pop()
        arr = np.stack(rounds)  # (k, m)
        calls = rng.integers(0, m, size=(n_boot, k, m)) if calls is None else calls
        drawn = arr[picks[:, :, None], calls]  # (n_boot, k, m)
        return np.median(drawn.reshape(n_boot, k * m), axis=1)
    out = np.empty(n_boot)
    for b in range(n_boot):
        parts = [rounds[i][rng.integers(0, len(rounds[i]), size=len(rounds[i]))] for i in picks[b]]
        out[b] = np.median(np.concatenate(parts))
    return out


def speedup_ci(
    base: list[list[float]],
    other: list[list[float]],
    *,
    level: float = DEFAULT.ci_level,
    n_boot: int = DEFAULT.bootstrap,
    seed: int = DEFAULT.seed,
    paired: bool = False,
) -> tuple[float, float]:
    """Percentile CI of median(base)/median(other) by the two-level bootstrap (paired: the same draws for both)."""
    rng = np.random.default_rng(seed)
    if paired and is_paired(base, other) and len({len(r) for r in base}) == 1:
        k, m = len(base), len(base[0])
        picks, calls = rng.integers(0, k, size=(n_boot, k)), rng.integers(0, m, size=(n_boot, k, m))
        ratios = _boot_medians(base, n_boot, rng, picks, calls) / _boot_medians(
            other, n_boot, rng, picks, calls
        )
    else:
        ratios = _boot_medians(base, n_boot, rng) / _boot_medians(other, n_boot, rng)
    tail = (1 - level) / 2 * 100
    lo, hi = np.percentile(ratios, [tail, 100 - tail])
    return float(lo), float(hi)


def round_p_values(base: list[list[float]], other: list[list[float]]) -> tuple[float, float]:
    """One-sided Mann-Whitney U p-values on round medians: (other faster than base, other slower)."""
    b = [float(np.median(r)) for r in base if r]
    o = [float(np.median(r)) for r in other if r]
    if len(b) < 2 or len(o) < 2:
        return 1.0, 1.0
    from scipy.stats import mannwhitneyu  # scipy.stats takes ~0.5 s to import: only the record step needs it

    faster = mannwhitneyu(
        o, b, alternative="less", method="exact" if len(b) + len(o) <= 40 else "auto"
    ).pvalue
    slower = mannwhitneyu(
        o, b, alternative="greater", method="exact" if len(b) + len(o) <= 40 else "auto"
    ).pvalue
    return float(faster), float(slower)


def paired_p_values(base: list[list[float]], other: list[list[float]]) -> tuple[float, float]:
    """One-sided Wilcoxon signed-rank p-values on each round's median log-ratio of paired calls."""
    d = [float(np.median(np.log(np.asarray(b) / np.asarray(o)))) for b, o in zip(base, other)]
    if len(d) < 2 or not any(d):
        return 1.0, 1.0
    from scipy.stats import wilcoxon

    return float(wilcoxon(d, alternative="greater").pvalue), float(wilcoxon(d, alternative="less").pvalue)


def verdict(
    speedup: float,
    ci: tuple[float, float],
    p_faster: float,
    p_slower: float,
    *,
    min_effect: float,
    alpha: float,
) -> str:
    """faster / slower: an effect of at least ``min_effect`` that the rounds show at level ``alpha``.
    no_change: the estimate is inside the ±min_effect band and the CI rules out twice that effect.
    inconclusive: anything else (a large estimate without significance, or a CI too wide to tell)."""
    band = 1.0 + min_effect
    if speedup >= band and p_faster < alpha:
        return "faster"
    if speedup <= 1.0 / band and p_slower < alpha:
        return "slower"
    wide = 1.0 + 2 * min_effect
    if 1.0 / band < speedup < band and ci[0] > 1.0 / wide and ci[1] < wide:
        return "no_change"
    return "inconclusive"


def compare(
    base: list[list[float]],
    other: list[list[float]],
    *,
    analysis: Analysis = DEFAULT,
    paired: bool = False,
) -> dict:
    """Speedup of ``other`` over ``base`` (ratio of medians: > 1 means faster), its CI, p-values and verdict.

    ``paired`` (lockstep data): the bootstrap draws the same rounds and calls for both sides and the verdict's
    p-values come from the Wilcoxon signed-rank test on paired calls; the Mann-Whitney U p-values on round
    medians are kept beside them either way."""
    min_effect, alpha, level = analysis.min_effect, analysis.alpha, analysis.ci_level
    paired = paired and is_paired(base, other)
    b = np.median([s for r in base for s in r])
    o = np.median([s for r in other for s in r])
    speedup = float(b / o) if o > 0 else None
    if speedup is None:
        return {
            "speedup": None,
            "speedup_of_minimums": None,
            "ci_low": None,
            "ci_high": None,
            "ci_level": level,
            "p_faster": None,
            "p_slower": None,
            "test": None,
            "mwu_p_faster": None,
            "mwu_p_slower": None,
            "verdict": "inconclusive",
            "min_effect": min_effect,
            "alpha": alpha,
            "rounds": [len(base), len(other)],
        }
    ci = speedup_ci(
        base, other, level=level, n_boot=int(analysis.bootstrap), seed=analysis.seed, paired=paired
    )
    mwu_faster, mwu_slower = round_p_values(base, other)
    p_faster, p_slower = paired_p_values(base, other) if paired else (mwu_faster, mwu_slower)
    lowest = min(s for r in other for s in r)
    k, k_other = len(base), len(other)
    smallest_p = 0.5**k if paired else 1.0 / comb(k + k_other, k)
    warnings = (
        []
        if smallest_p < alpha
        else [
            f"with {k} and {k_other} rounds the {'Wilcoxon' if paired else 'Mann-Whitney U'} test cannot reach "
            f"p < {alpha:g}: faster or slower can never be concluded; measure more rounds"
        ]
    )
    return {
        "speedup": speedup,
        # Ratio of the fastest calls: robust where noise only ever adds time (a shared or noisy machine).
        "speedup_of_minimums": float(min(s for r in base for s in r) / lowest) if lowest > 0 else None,
        "ci_low": ci[0],
        "ci_high": ci[1],
        "ci_level": level,
        "p_faster": p_faster,
        "p_slower": p_slower,
        "test": "wilcoxon_paired_calls" if paired else "mannwhitney_round_medians",
        "mwu_p_faster": mwu_faster,
        "mwu_p_slower": mwu_slower,
        "verdict": verdict(speedup, ci, p_faster, p_slower, min_effect=min_effect, alpha=alpha),
        "min_effect": min_effect,
        "alpha": alpha,
        "rounds": [len(base), len(other)],
        "warnings": warnings,
    }
