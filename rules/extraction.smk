rule extraction:
    input:
        extraction_file,
    output:
        extraction=f"{COMMIT_DIR}/extraction.json",
    log:
        f"{COMMIT_DIR}/logs/extraction.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        source=lambda wc: wc.source,
        # the commit as named (data): its SHA, or the id its input gave when git did not resolve it
        commit=lambda wc: commit_plan(wc).head or commit_plan(wc).commit_id,
        repo_name=lambda wc: config["sources"][wc.source].get("repo_name", wc.source),
        mirror=lambda wc: str(PLAN[wc.source].mirror),
        extraction_file=lambda wc: commit_plan(wc).extraction_file,
        origin=lambda wc: commit_plan(wc).origin,
        base=lambda wc: commit_plan(wc).base,
        head=lambda wc: commit_plan(wc).head,
        problem=lambda wc: commit_plan(wc).problem,
    script:
        "../scripts/extraction.py"
