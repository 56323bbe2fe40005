"""The generator rule: a pre-generated script taken as it is, or a test written by an LLM (smoke-run at head,
holding a GPU slot)."""

from __future__ import annotations

from pathlib import Path

from ..config import SCHEMA, llm_settings
from ..errors import IsobenchError
from ..generate import Cache, Generator, Policy
from ..jsonio import load_json, sha256_file, validate, write_json, write_text_atomic, write_valid
from ..llm import LLMSettings, url_origin
from ..measure import gpu
from ..measure.contracts import check_script
from ..measure.gpu import GpuSettings
from ..measure.rounds import smoke_run
from ..measure.runners import Runner
from ..measure.sandbox import SandboxSettings, isolation_refusal
from ..pregenerated import find_pregenerated
from ..provenance import generator_provenance, origin_string
from ..secrecy import hide_local_paths, redact, secret_values
from ..untrusted import MAX_SCRIPT_BYTES, read_input
from .common import log
from .measure import revision_of


def _write_meta(path: str, meta: dict) -> None:
    """generator.json, with the deprecated ``origin`` string derived from its ``generator`` provenance."""
    meta = {**meta, "origin": origin_string(meta["generator"])}
    validate(meta, "generator", path)
    write_json(path, meta)


def _write_generator(smk, text: str, meta: dict) -> None:
    """generator.py, generator.json and an empty transcript of a test that no LLM wrote."""
    write_text_atomic(smk.output.generator, text)
    write_valid(
        smk.output.transcript,
        {
            "schema_version": 1,
            "status": meta["status"],
            "generator": meta["generator"],
            "origin": origin_string(meta["generator"]),  # deprecated, as in generator.json
            "attempts": [],
        },
        "llm_transcript",
    )
    _write_meta(smk.output.meta, {**meta, "sha256": sha256_file(smk.output.generator)})


def generator_step(smk) -> None:
    p = smk.params
    pre = find_pregenerated(p.generators, p.commit) if p.commit else None
    if pre is None:
        skipped = load_json(smk.input.prompt_meta).get("skipped")
        if skipped:  # the extraction failed: nothing to ask an LLM about
            _write_generator(
                smk,
                f"# isobench: no test: the commit's inputs are unusable ({skipped}).\n",
                {
                    "generator": generator_provenance("none"),
                    "status": "not_generated",
                    "contract": None,
                    "error": skipped,
                    "llm": None,
                },
            )
            log.debug("generator: not generated (%s)", skipped)
            return
        return _generate_with_llm(smk)
    generator = generator_provenance("pregenerated", path=str(pre))
    text = ""
    try:  # a regular file of bounded size only: one too large (or replaced by a FIFO) is an invalid script
        text = read_input(pre, MAX_SCRIPT_BYTES, "a pre-generated script").decode("utf-8", "replace")
        contract = check_script(text, str(pre))
    except IsobenchError as exc:  # kept as it is (the record shows it) and never run: category invalid_script
        _write_generator(
            smk,
            text,
            {
                "generator": generator,
                "status": "invalid_script",
                "contract": None,
                "error": str(exc),
                "llm": None,
            },
        )
        # the record's line says it on the console, and the run's end lists it
        log.debug("isobench: %s (invalid_script: the commit's record says so; the other commits go on)", exc)
        return
    _write_generator(
        smk,
        text,
        {"generator": generator, "status": "pregenerated", "contract": contract, "error": None, "llm": None},
    )
    log.debug("generator: pre-generated %s (%s contract)", pre, contract)


def _generate_with_llm(smk) -> None:
    p = smk.params
    cfg = {**llm_settings(smk.config, p.source, SCHEMA), **p.llm}
    policy = Policy.from_config(cfg)
    smoke = None
    refusal = isolation_refusal(
        SandboxSettings.from_config(p.isolation["sandbox"]), Runner.from_config(p.isolation["runner"])
    )
    if refusal and policy.smoke_run:
        log.warning("warning: no smoke run of the generated test: %s", refusal)
    if policy.smoke_run and p.commit and not refusal:
        env = load_json(smk.input.env_head)
        head = revision_of("head", p.commit, Path(p.mirror), smk.input.worktree_head, env)
        candidate = Path(p.scratch + ".candidate.py")

        def smoke(script: str) -> str | None:  # a smoke run holds a GPU slot too (never beside a measurement)
            write_text_atomic(candidate, script)
            try:
                problem = gpu.on_gpu(
                    GpuSettings.from_config(smk.config.get("gpu")),
                    f"smoke run {p.commit[:12]}",
                    lambda device_env: smoke_run(
                        candidate,
                        head,
                        Path(p.scratch),
                        policy.smoke_timeout_s,
                        extra_path=tuple(p.python_path),
                        contract=p.contract,
                        sandbox=SandboxSettings.from_config(p.isolation["sandbox"]),
                        runner=Runner.from_config(p.isolation["runner"]),
                        device_env=device_env,
                    ),
                )[0]
                # what a repair prompt tells the provider names the tree, never this machine's folders
                named = {
                    str(Path(folder).resolve()): name
                    for folder, name in ((head.worktree, "<repo>"), (p.scratch, "<scratch>"))
                }
                return hide_local_paths(problem, named) if problem else problem
            finally:
                candidate.unlink(missing_ok=True)

    gen = Generator(
        LLMSettings.from_config(cfg),
        policy,
        Cache(policy.cache_dir, read=policy.cache),
        system=Path(smk.input.system_prompt).read_text(encoding="utf-8"),
        repair_template=Path(smk.input.repair_prompt).read_text(encoding="utf-8"),
        smoke=smoke,
    )
    try:
        outcome = gen.generate(Path(smk.input.prompt).read_text(encoding="utf-8"))
    except BaseException:
        # Snakemake deletes a failed job's outputs: what was paid for stays on record beside the log.
        crash = Path(smk.log[0]).with_name("generator.failed_transcript.json")
        write_json(
            crash,
            redact(
                {"attempts": gen.attempts, "written_at": "failure"}, secret_values([gen.settings.key_env])
            ),
        )
        raise
    if outcome.script is not None:
        write_text_atomic(smk.output.generator, outcome.script)
    else:  # an explicit marker, never mistaken for a test: the record says generation_failed
        reason = (outcome.error or "").splitlines()[0] if outcome.error else "unknown"
        write_text_atomic(
            smk.output.generator,
            f"# isobench: no usable test was generated for this commit.\n"
            f"# {reason[:300]}\n# See llm_transcript.json beside this file.\n",
        )
    write_valid(smk.output.transcript, outcome.transcript, "llm_transcript")
    status = outcome.status
    meta = {
        "generator": outcome.generator,
        "status": status,
        "contract": outcome.contract,
        "sha256": sha256_file(smk.output.generator),
        "error": outcome.error,
        "llm": {
            "provider": cfg["provider"],
            "model": cfg["model"],
            "base_url": url_origin(gen.settings)[0],  # as used: llm.base_url, *_BASE_URL or the SDK's default
            "accepted_key": outcome.transcript.get("accepted_key"),
            "transcript_sha256": sha256_file(smk.output.transcript),
            # no reply (no connection, 429 or 5xx after the retries): the next run asks again (isobench/llm_check.py)
            "transient": bool(outcome.transcript.get("transient")),
            **outcome.totals,
        },
    }
    _write_meta(smk.output.meta, meta)
    t = outcome.totals
    log.debug(
        "generator: %s via %s/%s: %d API requests, %d cached replies%s, %d+%d tokens",
        status,
        cfg["provider"],
        cfg["model"],
        t["api_requests"],
        t["cached_replies"],
        " (accepted script from cache)" if t["cache_hit"] else "",
        t["input_tokens"],
        t["output_tokens"],
    )
    if outcome.error:
        log.warning("generation failed: %s", outcome.error)
