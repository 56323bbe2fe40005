rule generator:
    input:
        unpack(generator_inputs),
    output:
        generator=f"{COMMIT_DIR}/generator.py",
        meta=f"{COMMIT_DIR}/generator.json",
        transcript=f"{COMMIT_DIR}/llm_transcript.json",
    log:
        f"{COMMIT_DIR}/logs/generator.log",
    benchmark:
        f"{COMMIT_DIR}/logs/generator.benchmark.tsv"
    localrule: True
    conda:
        "../envs/isobench.yaml"
    resources:
        llm=1,  # concurrent LLM requests: run with --resources llm=N
    params:
        source=lambda wc: wc.source,
        commit=lambda wc: commit_plan(wc).head,
        generators=lambda wc: config["sources"][wc.source].get("generators"),
        llm=llm_params,
        mirror=lambda wc: str(PLAN[wc.source].mirror),
        python_path=lambda wc: config["sources"][wc.source]["python_path"],
        contract=lambda wc: measure_settings(wc)["contract"],  # the smoke run runs it as it will be measured
        scratch=f"{COMMIT_DIR}/smoke",
        isolation=sandbox_params,
    script:
        "../scripts/generator.py"
