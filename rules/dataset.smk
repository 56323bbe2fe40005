rule dataset:
    input:
        records=all_records(),
    output:
        dataset=config["dataset"],
    log:
        "results/logs/dataset.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    script:
        "../scripts/dataset.py"


rule llm_summary:
    input:
        metas=per_commit("generator.json"),
    output:
        summary=config["llm_summary"],
    log:
        "results/logs/llm_summary.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    script:
        "../scripts/llm_summary.py"
