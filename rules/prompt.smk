rule prompt:
    input:
        extraction=f"{COMMIT_DIR}/extraction.json",
        template=template_of,
    output:
        prompt=f"{COMMIT_DIR}/prompt.txt",
        meta=f"{COMMIT_DIR}/prompt.json",
    log:
        f"{COMMIT_DIR}/logs/prompt.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        diff_budget=config["diff_budget_chars"],
    script:
        "../scripts/prompt.py"
