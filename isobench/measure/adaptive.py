"""How a measure job adapts to the test and the machine, from measured facts.

- ``interleave: auto``: the check round (the first) runs one process at a time and each process reports its
  peak memory (RSS, and GPU memory where CUDA was initialized). If the three revisions' processes fit side
  by side (``auto_memory_fraction`` of what is available now, RAM and GPU), the timed rounds run in
  lockstep (``calls``: their timed calls alternate, so a machine whose speed swings hits all three alike);
  otherwise one process at a time (``rounds``). The decision and its reason go into every timing file.
- adaptive rounds: ``rounds`` is a minimum. After it, each round ends with the base→head comparison
  (base→main when head failed), the same the record will make: a decided verdict stops (``decided``), so
  does an interval (``ci_level``) whose half-width in log space is at most ``precision`` (default: half the analysis'
  ``min_effect``, ``precise``) unless the interval lies wholly beyond the ±min_effect band (the effect is
  clear and only its significance is missing: more rounds bring it); otherwise another round, up to
  ``max_rounds`` (``max_rounds``) or the job's time budget (``job_timeout``).
"""

from __future__ import annotations

import math
import time

from .lockstep import LOCKSTEP, SEQUENTIAL, interleave_name
from .machine import available_memory_mb, gpu_free_mb
from .state import RevisionState
from .stats import Analysis, compare


def decide_interleave(
    setting: str,
    contract: str,
    memory: list[dict],
    processes: int,
    fraction: float,
    available_mb: float | None = None,
    gpu_free: float | None = None,
) -> dict:
    """{setting, chosen, reason, ...facts}: how the timed rounds run. ``memory``: the check round's reports of
    peak memory, one per process."""
    setting = interleave_name(setting)
    out = {"setting": setting, "chosen": setting, "reason": "set in the config", "processes": processes}
    if contract != "functions":  # whatever the setting
        return {
            **out,
            "chosen": SEQUENTIAL,
            "reason": "a command-line script times itself: one process at a time",
        }
    if setting != "auto":
        return out
    if processes < 2:
        return {**out, "chosen": SEQUENTIAL, "reason": "only one revision left to measure"}
    rss = max((m.get("peak_rss_mb") or 0.0 for m in memory), default=0.0)
    gpu = max((m.get("gpu_peak_mb") or 0.0 for m in memory), default=0.0)
    available_mb = available_memory_mb() if available_mb is None else available_mb
    out.update(peak_rss_mb=rss or None, available_mb=available_mb, gpu_peak_mb=gpu or None, fraction=fraction)
    if not rss or available_mb is None:
        return {**out, "chosen": SEQUENTIAL, "reason": "the peak memory of one process is unknown"}
    if processes * rss > fraction * available_mb:
        return {
            **out,
            "chosen": SEQUENTIAL,
            "reason": f"{processes} x {rss:,.0f} MiB peak RSS > {fraction:.0%} of "
            f"{available_mb:,.0f} MiB available",
        }
    if gpu:
        device = next((m.get("gpu_device") for m in memory if m.get("gpu_device") is not None), None)
        gpu_free = gpu_free_mb(device) if gpu_free is None else gpu_free
        out["gpu_free_mb"] = gpu_free
        if gpu_free is None:
            return {
                **out,
                "chosen": SEQUENTIAL,
                "reason": "the test uses the GPU and its free memory is unknown",
            }
        if processes * gpu > fraction * gpu_free:
            return {
                **out,
                "chosen": SEQUENTIAL,
                "reason": f"{processes} x {gpu:,.0f} MiB of GPU memory > "
                f"{fraction:.0%} of {gpu_free:,.0f} MiB free",
            }
    reason = f"{processes} x {rss:,.0f} MiB peak RSS <= {fraction:.0%} of {available_mb:,.0f} MiB available"
    if gpu:
        reason += (
            f"; {processes} x {gpu:,.0f} MiB of GPU memory <= {fraction:.0%} of {gpu_free:,.0f} MiB free"
        )
    return {**out, "chosen": LOCKSTEP, "reason": reason}


def stop_reason(
    state: dict[str, RevisionState],
    *,
    minimum: int,
    maximum: int,
    done: int,
    deadline: float,
    paired: bool,
    analysis: Analysis | None = None,
    precision: float | None = None,
    pairs: list[tuple[str, str]] | None = None,
) -> tuple[str | None, dict]:
    """After ``done`` rounds: (why to stop now or None to run another round, what the decision looked at).

    ``pairs``: the comparisons that must be decided or precise, (reference, other) by revision name; by default
    base→head (base→main when head failed). An evaluation passes base→candidate and head→candidate for each
    candidate: a pair one of whose revisions failed is left out, and the job stops once every pair left is
    decided or precise."""
    analysis = analysis or Analysis()
    active = [name for name, st in state.items() if st.active]
    if not active:
        return "failed", {}
    late = time.monotonic() > deadline
    if done < minimum:
        return ("job_timeout" if late else None), {}
    if pairs is None:
        other = next((n for n in ("head", "main") if n in active and "base" in active), None)
        pairs = [("base", other)] if other else []
    pairs = [(a, b) for a, b in pairs if a in active and b in active]
    if not pairs:
        return "no_comparison", {}
    target = precision if precision is not None else analysis.min_effect / 2
    outcomes = [_pair_outcome(state, a, b, analysis, paired, target) for a, b in pairs]
    open_ = [facts for reason, facts in outcomes if reason is None]
    facts = open_[0] if open_ else outcomes[-1][1]
    if len(pairs) > 1:
        facts = {**facts, "pairs": len(pairs), "open_pairs": len(open_)}
    if not open_:
        return ("decided" if all(r == "decided" for r, _ in outcomes) else "precise"), facts
    if done >= maximum:
        return "max_rounds", facts
    if late:
        return "job_timeout", facts
    return None, facts


def _pair_outcome(
    state: dict[str, RevisionState], a: str, b: str, analysis: Analysis, paired: bool, target: float
) -> tuple[str | None, dict]:
    """decided, precise or None (more rounds needed) for the comparison a→b, and what it looked at."""
    # exactly the comparison the record will make (same bootstrap, same seed): "decided" here is decided there
    cmp = compare(state[a].rounds, state[b].rounds, analysis=analysis, paired=paired)
    half = None
    if cmp["ci_low"] and cmp["ci_high"] and cmp["ci_low"] > 0:
        half = (math.log(cmp["ci_high"]) - math.log(cmp["ci_low"])) / 2
    facts = {
        "compared": f"{a}_{b}",
        "verdict": cmp["verdict"],
        "speedup": cmp["speedup"],
        "ci_half_width_log": half,
        "target_log": target,
    }
    if cmp["verdict"] != "inconclusive":
        return "decided", facts
    band = 1 + analysis.min_effect
    beyond = cmp["ci_low"] is not None and (cmp["ci_high"] < 1 / band or cmp["ci_low"] > band)
    if half is not None and half <= target and not beyond:  # beyond the band, significance is on its way
        return "precise", facts
    return None, facts
