rule env:
    input:
        worktree="results/{source}/_worktrees/{sha}.json",
    output:
        marker="results/{source}/_envs/{sha}.json",
    log:
        "results/{source}/_envs/{sha}.log",
    # On a cluster it runs where you submit unless `cluster_rules: [env]` (then a SLURM job of its own).
    localrule: "env" not in config["cluster_rules"]
    conda:
        "../envs/isobench.yaml"
    params:
        mirror=lambda wc: str(PLAN[wc.source].mirror),
        env=lambda wc: ic.layered(config, wc.source, SCHEMA, "env"),
        runner=lambda wc: ic.layered(config, wc.source, SCHEMA, "runner"),
        setup_commands=lambda wc: config["sources"][wc.source]["setup_commands"],
        install_commands=lambda wc: config["sources"][wc.source]["install_commands"],
        path="results/{source}/_envs/{sha}",
    script:
        "../scripts/env.py"
