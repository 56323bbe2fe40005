# The dataset for others (isobench/steps/publish.py): its exports, and its push to the Hub.


# `snakemake export`: the dataset as Hugging Face datasets (save_to_disk + Parquet), in the isobench,
# SWE-Perf and GSO views (isobench/export.py).
rule export:
    input:
        dataset=DATASET_COMPLETE,  # the last complete dataset (rules/dataset.smk)
    output:
        folder=directory("results/export"),
    log:
        "results/export.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    script:
        "../scripts/export.py"


# After each run that changed the dataset (config publish.repo_id, or ISO-Bench's push_to_hf): merged into the
# Hub repository by (repo, head_commit), with its card (isobench/hub.py). Part of `all` only when configured.
rule publish:
    input:
        dataset=DATASET_COMPLETE,
    output:
        summary="results/publish.json",
    log:
        "results/logs/publish.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        publish=config["publish"],
    script:
        "../scripts/publish.py"
