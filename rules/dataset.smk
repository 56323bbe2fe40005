# The dataset itself (config["dataset"]) is written by the step but is not an output: Snakemake deletes a job's
# outputs before it runs, so a killed or failed job would leave no dataset. The output is its copy, written last
# (isobench/dataset.py); the start of each run restores a missing or damaged dataset from it.
rule dataset:
    input:
        records=all_records(),
    output:
        complete=DATASET_COMPLETE,
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
    params:
        prices=config["llm_prices"],  # a price edited: only this summary and the report's page are redone
    script:
        "../scripts/llm_summary.py"
