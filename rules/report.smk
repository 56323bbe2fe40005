# The dataset at a glance (figures for `snakemake --report report.html`) and its audit.
# (FRONT_PAGE, the report's first page, is set in the Snakefile, whose report: reads it)
REPORT_DIR = "results/report"


rule report_figures:
    input:
        dataset=DATASET_COMPLETE,  # the last complete dataset (rules/dataset.smk)
        llm_summary=config["llm_summary"],
    output:
        # the first page of `snakemake --report` (the Snakefile's report: takes it once it exists)
        front=FRONT_PAGE,
        speedups=report(
            f"{REPORT_DIR}/speedups.svg",
            caption="../report/speedups.rst",
            category="Dataset",
        ),
        samples=report(
            f"{REPORT_DIR}/samples.svg",
            caption="../report/samples.rst",
            category="Dataset",
        ),
        table=report(
            f"{REPORT_DIR}/summary.html",
            caption="../report/summary.rst",
            category="Dataset",
        ),
    log:
        f"{REPORT_DIR}/report_figures.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    script:
        "../scripts/report_figures.py"


# `snakemake audit`: every artifact chain re-hashed as it is now (isobench/audit.py); writes results/audit.json
# and fails on integrity problems. No inputs: asking for the audit never rebuilds what it is to inspect.
rule audit:
    log:
        "results/audit.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        report="results/audit.json",
        config=lambda wc: config,
    script:
        "../scripts/audit.py"
