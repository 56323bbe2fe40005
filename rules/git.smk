rule worktree:
    output:
        marker="results/{source}/_worktrees/{sha}.json",
    log:
        "results/{source}/_worktrees/{sha}.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        mirror=lambda wc: str(PLAN[wc.source].mirror),
        path="results/{source}/_worktrees/{sha}",
    script:
        "../scripts/worktree.py"
