# Scoring agents' patches (docs/evaluation.md). Not part of a plain run: `snakemake evaluate`. The plan (predictions
# read and matched, one spec file per (instance, model) job, rewritten only when its content changes) is made once
# per run in the main process; no rule here reads a dataset rule's output, so an evaluation never re-runs one.
rule evaluate_job:
    input:
        spec=f"{EVAL_JOB}/spec.json",
    output:
        job=f"{EVAL_JOB}/job.json",
        timing_base=f"{EVAL_JOB}/timing_base.json",
        timing_head=f"{EVAL_JOB}/timing_head.json",
        candidates=directory(f"{EVAL_JOB}/candidates"),  # per candidate: applied.diff, timing.json; per attempt: evaluation.json
    log:
        f"{EVAL_JOB}/logs/evaluate.log",
    benchmark:
        f"{EVAL_JOB}/logs/evaluate.benchmark.tsv"
    conda:
        "../envs/isobench.yaml"
    threads: evaluation_threads
    resources:
        gpu=1,  # the same GPU slot rules as a measure job (isobench/measure/gpu.py); SLURM: --gpus=1
        slurm_extra=lambda wc: "--exclusive" if evaluation_exclusive() else "",
    params:
        analysis=ic.analysis_settings(config, SCHEMA),
        sandbox=evaluation_block("sandbox"),
        runner=evaluation_block("runner"),
        env=evaluation_block("env"),
        gpu=config.get("gpu"),
        python_path=[],
    script:
        "../scripts/evaluate_job.py"


rule evaluations:
    input:
        planned=f"{EVAL_ROOT}/{{run}}/planned.json",
        jobs=lambda wc: evaluation_jobs(wc.run),
    output:
        rows=f"{EVAL_ROOT}/{{run}}/evaluations.jsonl",
        calibration=f"{EVAL_ROOT}/{{run}}/calibration.json",
    log:
        f"{EVAL_ROOT}/{{run}}/logs/evaluations.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    script:
        "../scripts/evaluations.py"


rule evaluation_report:
    input:
        rows=f"{EVAL_ROOT}/{{run}}/evaluations.jsonl",
        calibration=f"{EVAL_ROOT}/{{run}}/calibration.json",
    output:
        # the figures also go into `snakemake --report` (the folder holds the leaderboard, GSO's, SWE-Perf's and
        # SWE-fficiency's files beside them)
        report=report(
            directory(f"{EVAL_ROOT}/{{run}}/report"),
            patterns=["{name}.svg"],
            caption="../report/evaluation.rst",
            category="Evaluation",
        ),
    log:
        f"{EVAL_ROOT}/{{run}}/logs/report.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        run_id=lambda wc: wc.run,
        analysis=ic.analysis_settings(config, SCHEMA),
    script:
        "../scripts/evaluation_report.py"


# `snakemake evaluate`: every evaluation run of the config (an `evaluations:` block, or one given with --configfile).
# Every job's file is named too: a deleted one is made again (Snakemake does not look behind an up-to-date report).
rule evaluate:
    input:
        evaluation_targets,
