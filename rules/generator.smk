rule generator:
    input:
        unpack(generator_inputs),
    output:
        generator=f"{COMMIT_DIR}/generator.py",
        meta=f"{COMMIT_DIR}/generator.json",
    log:
        f"{COMMIT_DIR}/logs/generator.log",
    conda:
        "../envs/isobench.yaml"
    params:
        source=lambda wc: wc.source,
        commit=lambda wc: commit_plan(wc).head,
        generators=lambda wc: config["sources"][wc.source].get("generators"),
    script:
        "../scripts/generator.py"
