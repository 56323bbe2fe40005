"""An evaluation run's report folder: the leaderboard (JSON and text), GSO-compatible per-model reports
(``<model>.<run_id>.report.json``: GSO's ``summary`` and ``instance_sets`` names), a SWE-Perf CSV, a SWE-fficiency
CSV, the calibration, and figures (per-model SR distribution, candidate vs human speedup)."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

from ..categories import blames_candidate
from ..jsonio import load_json, write_text_atomic, write_valid
from ..report import _pyplot
from . import aggregate
from .plan import CALIBRATION, key_of

GSO_SUMMARY = (
    "total_instances",
    "total_predictions",
    "completed_instances",
    "incomplete_instances",
    "passed_instances",
    "base_failed_instances",
    "patch_failed_instances",
    "test_failed_instances",
    "empty_patch_instances",
    "error_instances",
    "opt_base",
    "opt_commit",
    "opt_main",
)
NOT_RUN = ("invalid_prediction", "unknown_instance", "instance_unusable")


def write_jsonl(path, rows: list[dict]) -> None:
    write_text_atomic(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def by_model(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("model"):  # a line too broken to name its model counts in the run, not for a model
            out.setdefault(r["model"], []).append(r)
    return dict(sorted(out.items()))


def gso_report(rows: list[dict], total_instances: int) -> dict:
    """GSO's per-run report, from one model's rows (attempt 1 of each instance, as one GSO run holds)."""
    first = {r["instance_id"]: r for r in _first(rows)}
    sets: dict[str, set] = {
        k: set()
        for k in (
            "completed_ids",
            "passed_ids",
            "base_failed_ids",
            "patch_failed_ids",
            "test_failed_ids",
            "incomplete_ids",
            "empty_patch_ids",
            "error_ids",
            "opt_base_ids",
            "opt_commit_ids",
            "opt_main_ids",
        )
    }
    stats = {}
    for iid, r in first.items():
        st = r["status"]
        if st == "empty_patch":
            sets["empty_patch_ids"].add(iid)
            continue
        if not blames_candidate(st):  # could not be judged here (isobench/categories.py): not the candidate's
            sets["error_ids"].add(iid)
            continue
        sets["completed_ids"].add(iid)
        if st in ("base_failed", "nondeterministic_test"):
            sets["base_failed_ids"].add(iid)
        elif st in ("patch_failed", "build_failed"):
            sets["patch_failed_ids"].add(iid)
        elif st != "evaluated":
            sets["test_failed_ids"].add(iid)
        else:
            sets["passed_ids"].add(iid)
            gso = r["metrics"]["gso"]
            for name in ("opt_base", "opt_commit", "opt_main"):
                if gso[name] and r.get("counted"):
                    sets[f"{name}_ids"].add(iid)
            stats[iid] = {**gso, "means_ms": r["metrics"]["means_ms"]}
    summary = {
        "total_instances": total_instances,
        "total_predictions": len(first),
        "incomplete_instances": total_instances - len(first),
    }
    for key in GSO_SUMMARY:
        if key not in summary:
            stem = key.replace("_instances", "")
            summary[key] = len(sets.get(f"{stem}_ids", sets.get(f"{key}_ids", set())))
    return {
        "schema_version": 1,
        "summary": {k: summary[k] for k in GSO_SUMMARY},
        "instance_sets": {k: sorted(v) for k, v in sets.items()},
        "opt_stats": stats,
    }


def sweperf_rows(model: str, rows: list[dict], total: int) -> list[dict]:
    """SWE-Perf's CSV row: apply, correctness, performance, human_performance as shares of all instances."""
    first = _first(rows)
    applied = [r for r in first if r["status"] not in ("patch_failed", "empty_patch", *NOT_RUN)]
    correct = [r for r in first if r["status"] == "evaluated"]
    perf = sum(r["metrics"]["sweperf"]["performance"] for r in correct if r.get("counted"))
    human = sum(r["metrics"]["sweperf"]["human_performance"] or 0.0 for r in correct)
    n = max(total, 1)
    return [
        {
            "model": model,
            "total": total,
            "apply": len(applied) / n,
            "correctness": len(correct) / n,
            "performance": perf / n,
            "human_performance": human / n,
            "repo": "total",
        }
    ]


def swefficiency_rows(rows: list[dict]) -> list[dict]:
    out = []
    for r in _first(rows):
        sw = (r.get("metrics") or {}).get("swefficiency") or {}
        out.append(
            {
                "instance_id": r["instance_id"],
                "pred_speedup_ratio": sw.get("pred_speedup_ratio", 1.0),
                "gold_speedup_ratio": sw.get("gold_speedup_ratio"),
                "human_speedup_ratio": sw.get("human_speedup_ratio"),
                "correctness": sw.get("correctness", 0.0),
            }
        )
    return out


def _first(rows: list[dict]) -> list[dict]:
    seen = {}
    for r in sorted(rows, key=lambda r: r["attempt"] or 0):
        if r.get("instance_id") and r["status"] not in NOT_RUN:
            seen.setdefault(r["instance_id"], r)
    return list(seen.values())


def calibration_summary(calibration: dict) -> dict:
    """The false-success rate of A/A (a decided faster or slower against base, or success against the human) and
    the gold self-check's SR with its interval."""
    aa = [c["aa"] for c in calibration["instances"] if "aa" in c and c["aa"]["speedup"]]
    gold = [c["gold"] for c in calibration["instances"] if "gold" in c and c["gold"]["sr_vs_human"]]
    false = [1.0 if a["speedup"]["verdict"] in ("faster", "slower") else 0.0 for a in aa]
    srs = [g["sr_vs_human"]["speedup"] for g in gold if g["sr_vs_human"]["speedup"]]
    import numpy as np

    rng = np.random.default_rng(aggregate.SEED)
    return {
        "instances": len(calibration["instances"]),
        "aa_measured": len(aa),
        "false_verdict_rate": float(np.mean(false)) if false else None,
        "gold_measured": len(srs),
        "gold_hm_sr": aggregate._hmean(np.asarray(srs)) if srs else None,
        "gold_hm_sr_ci95": aggregate._interval(srs, aggregate._hmean, rng),
        "gold_no_change": sum(g["sr_vs_human"]["verdict"] == "no_change" for g in gold),
    }


def leaderboard_text(board: dict) -> str:
    lines = [
        f"evaluation {board['run_id']}: {board['predictions']} predictions, {board['instances']} instances"
    ]
    head = f"{'model':<28} {'n':>4} {'success':>8} {'incon.':>6} {'hm SR [95% CI]':>24} {'gm speedup':>11} {'Opt@1':>6}"
    lines += [head, "-" * len(head)]
    for model, s in board["models"].items():
        sr = s["hm_sr"]
        ci = sr["ci95"]
        cell = f"{sr['value']:.3f} [{ci[0]:.2f}, {ci[1]:.2f}]" if sr["value"] else "-"
        gm = f"{s['gm_speedup']['value']:.3f}" if s["gm_speedup"]["value"] else "-"
        rate = s["success_decided"]["rate"]
        opt = s["opt_at_k"]["1"]["gso_union"]
        lines.append(
            f"{model[:28]:<28} {s['predictions']:>4} {(f'{rate:.0%}' if rate is not None else '-'):>8} "
            f"{s['success_decided']['inconclusive']:>6} {cell:>24} {gm:>11} "
            f"{(f'{opt:.0%}' if opt is not None else '-'):>6}"
        )
    cal = board["calibration"]
    if cal["instances"]:
        g, rate = cal["gold_hm_sr"], cal["false_verdict_rate"]
        lines.append(
            f"calibration: A/A false verdicts {f'{rate:.0%}' if rate is not None else '-'}"
            f" over {cal['aa_measured']}; gold hm SR {f'{g:.3f}' if g else '-'} over {cal['gold_measured']}"
        )
    for pair in board["comparisons"]:
        lines.append(
            f"{pair['a']} vs {pair['b']}: {pair['shared_instances']} shared, McNemar p={pair['mcnemar_p']:.3g},"
            f" Wilcoxon p={pair['wilcoxon_log_sr_p']:.3g}: "
            + (f"{pair[pair['better']]} ahead" if pair["better"] else "no significant difference")
        )
    return "\n".join(lines) + "\n"


def write_report(rows: list[dict], calibration: dict, out: Path, run_id: str, analysis: dict) -> str:
    out.mkdir(parents=True, exist_ok=True)
    models = by_model([r for r in rows if r.get("model") != CALIBRATION])
    instances = sorted(
        {r["instance_id"] for r in rows if r.get("instance_id") and r["status"] not in NOT_RUN}
    )
    board = {
        "run_id": run_id,
        "predictions": len(rows),
        "instances": len(instances),
        "models": {m: aggregate.model_summary(rs) for m, rs in models.items()},
        "calibration": calibration_summary(calibration),
        "comparisons": [],
    }
    names = list(models)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            board["comparisons"].append({"a": a, "b": b, **aggregate.compare_models(models[a], models[b])})
    for model, rs in models.items():
        write_valid(
            out / f"{key_of(model)}.{run_id}.report.json",
            gso_report(rs, len(instances)),
            "evaluation_gso_report",
        )
    _csv(
        out / "sweperf.csv", [row for m, rs in models.items() for row in sweperf_rows(m, rs, len(instances))]
    )
    _csv(
        out / "swefficiency.csv",
        [{"model": m, **row} for m, rs in models.items() for row in swefficiency_rows(rs)],
    )
    write_valid(out / "leaderboard.json", board, "evaluation_leaderboard")
    text = leaderboard_text(board)
    write_text_atomic(out / "leaderboard.txt", text)
    figures(models, out)
    return text


def _csv(path: Path, rows: list[dict]) -> None:
    fields = list(rows[0]) if rows else ["model"]
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def figures(models: dict[str, list[dict]], out: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    data = [[v for v in (aggregate.sr_value(r) for r in rs) if v] or [float("nan")] for rs in models.values()]
    ax.boxplot(data)
    ax.set_xticks(range(1, len(data) + 1), [m[:20] for m in models] or ["-"])
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("SR = T_head / T_candidate")
    ax.set_title("Speedup ratio against the human's commit, per model")
    fig.tight_layout()
    fig.savefig(out / "sr_distribution.svg")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 5))
    for model, rs in models.items():
        pts = [
            (
                (r["metrics"]["human_speedup"] or {}).get("speedup"),
                (r["metrics"]["speedup"] or {}).get("speedup"),
            )
            for r in rs
            if r.get("metrics") and r["metrics"].get("speedup")
        ]
        pts = [(h, c) for h, c in pts if h and c]
        if pts:
            ax.scatter(*zip(*pts), label=model[:20], s=18)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.plot([0.1, 100], [0.1, 100], color="grey", lw=0.8, ls="--")
    ax.set_xlabel("human speedup over base")
    ax.set_ylabel("candidate speedup over base")
    if models:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "candidate_vs_human.svg")
    plt.close(fig)


def board_of(folder: Path) -> str:
    """``isobench leaderboard <run folder>``: the table of a finished run's report."""
    path = Path(folder) / "report" / "leaderboard.json"
    if not path.exists():
        path = Path(folder) / "leaderboard.json"
    return leaderboard_text(load_json(path))


def print_boards(runs: dict) -> None:
    """The end of `snakemake evaluate`: each run's leaderboard (or where its rows are, when the report is missing)."""
    for run in runs.values():
        folder = Path(run.folder)
        if (folder / "report" / "leaderboard.json").exists():
            sys.stderr.write(board_of(folder))
        sys.stderr.write(
            f"isobench: evaluation {run.run_id}: rows in {folder}/evaluations.jsonl, report in {folder}/report\n"
        )
