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
