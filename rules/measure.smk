rule measure:
    input:
        unpack(worktree_markers),
        generator=f"{COMMIT_DIR}/generator.py",
        generator_meta=f"{COMMIT_DIR}/generator.json",
        extraction=f"{COMMIT_DIR}/extraction.json",
    output:
        base=f"{COMMIT_DIR}/timing_base.json",
        head=f"{COMMIT_DIR}/timing_head.json",
        main=f"{COMMIT_DIR}/timing_main.json",
        seal=f"{COMMIT_DIR}/timing_seal.json",
    log:
        f"{COMMIT_DIR}/logs/measure.log",
    benchmark:
        f"{COMMIT_DIR}/logs/measure.benchmark.tsv"
    conda:
        "../envs/isobench.yaml"
    threads: measure_threads  # measure.exclusive: nothing else runs beside a measurement
    resources:
        gpu=1,  # --resources gpu=N: N jobs at once, each on a GPU of its own (isobench/measure/gpu.py); SLURM: --gpus=1
        slurm_extra=measure_slurm_extra,
    params:
        main_sha=lambda wc: PLAN[wc.source].main_sha,
        mirror=lambda wc: str(PLAN[wc.source].mirror),
        settings=measure_settings,
        analysis=ic.analysis_settings(config, SCHEMA),
        python_path=lambda wc: config["sources"][wc.source]["python_path"],
        scratch=f"{COMMIT_DIR}/scratch",
        isolation=sandbox_params,
    script:
        "../scripts/measure.py"
