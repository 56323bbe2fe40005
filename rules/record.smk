rule record:
    input:
        extraction=f"{COMMIT_DIR}/extraction.json",
        prompt=f"{COMMIT_DIR}/prompt.txt",
        prompt_meta=f"{COMMIT_DIR}/prompt.json",
        generator=f"{COMMIT_DIR}/generator.py",
        generator_meta=f"{COMMIT_DIR}/generator.json",
        transcript=f"{COMMIT_DIR}/llm_transcript.json",
        timing_base=f"{COMMIT_DIR}/timing_base.json",
        timing_head=f"{COMMIT_DIR}/timing_head.json",
        timing_main=f"{COMMIT_DIR}/timing_main.json",
        timing_seal=f"{COMMIT_DIR}/timing_seal.json",
    output:
        record=f"{COMMIT_DIR}/record.json",
        seal=f"{COMMIT_DIR}/record_seal.json",  # its sha256: an edited record is rebuilt (isobench/dataset.py)
    log:
        f"{COMMIT_DIR}/logs/record.log",
    localrule: True
    conda:
        "../envs/isobench.yaml"
    params:
        source_cfg=lambda wc: ic.public_source_config(config, wc.source),
        analysis=ic.analysis_settings(config, SCHEMA),
        mirror=lambda wc: str(PLAN[wc.source].mirror),
    script:
        "../scripts/record.py"
