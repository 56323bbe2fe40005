import copy
from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from isobench.config import SCHEMA, check_config, llm_settings, measure_settings
from isobench.errors import IsobenchError
from isobench.measure.sandbox import SandboxSettings


@pytest.fixture
def config():
    return yaml.safe_load((ROOT / "config" / "config.yaml").read_text())


def test_shipped_config_is_valid(config):
    check_config(config, SCHEMA)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (
            lambda c: c.setdefault("measure", {}).update(rounds="five"),
            "field measure.rounds: expected integer, got str",
        ),
        (
            lambda c: c.setdefault("measure", {}).update(rounds=0),
            "field measure.rounds: 0 is less than the minimum of 1",
        ),
        (
            lambda c: c.setdefault("measure", {}).update(interleave="together"),
            "field measure.interleave: 'together' is not one of ['auto', 'lockstep', 'sequential', 'calls', 'rounds']",
        ),
        (lambda c: c["sources"]["demo"].update(repo=""), "field sources.demo.repo"),
        (lambda c: c["sources"]["demo"].update(colour="red"), "field sources.demo: Additional properties"),
        (lambda c: c.pop("sources"), "'sources' is a required property"),
        (lambda c: c["sources"].update({"bad name": {"repo": "x"}}), "field sources"),
        (
            lambda c: c["llm"].update(provider="gemini"),
            "field llm.provider: 'gemini' is not one of ['openai', 'anthropic']",
        ),
        (
            lambda c: c["llm"].update(api_key="sk-123"),
            "field llm: Additional properties are not allowed ('api_key'",
        ),
        (lambda c: c["sources"]["demo"].update(llm={"repairs": -1}), "field sources.demo.llm.repairs"),
        (lambda c: c.update(evaluations={"r": {"dataset": "d.jsonl"}}), "field evaluations.r: 'predictions'"),
        (lambda c: c.update(evaluations={"r": {"predictions": 3}}), "field evaluations.r.predictions"),
        (
            lambda c: c.update(evaluations={"r": {"predictions": "p", "apply": "force"}}),
            "field evaluations.r.apply: 'force' is not one of ['strict', '3way', 'fuzzy']",
        ),
        (
            lambda c: c.update(evaluations={"r": {"predictions": "p", "measure": {"rounds": 0}}}),
            "evaluations.r.measure",
        ),
        (lambda c: c.update(evaluations={"../x": {"predictions": "p"}}), "field evaluations"),
    ],
)
def test_bad_config_is_one_line(config, mutate, message):
    cfg = copy.deepcopy(config)
    mutate(cfg)
    with pytest.raises(IsobenchError) as err:
        check_config(cfg, SCHEMA, "config/config.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("config/config.yaml: field")


def test_measure_settings_layering(config):
    # the demo sets nothing: the schema's defaults
    got = measure_settings(config, "demo", SCHEMA)
    assert got == {
        "rounds": 8,
        "max_rounds": 30,
        "precision": None,
        "auto_memory_fraction": 0.5,
        "warmup": 2,
        "warmup_ms": 100,
        "repeat": 10,
        "timeout_s": 600,
        "job_timeout_s": 3600,
        "flush_l2": False,
        "no_cuda": False,
        "interleave": "auto",
        "contract": "auto",
        "exclusive": True,
        "coverage": True,
        "epoch": 0,
    }
    config["measure"] = {"rounds": 12, "repeat": 4}
    config["sources"]["demo"]["measure"] = {"rounds": 5}
    got = measure_settings(config, "demo", SCHEMA)
    assert (got["rounds"], got["repeat"], got["max_rounds"]) == (5, 4, 30)  # source over global over schema


def test_analysis_settings_defaults_from_schema(config):
    from isobench.config import analysis_settings

    config.pop("analysis")
    assert analysis_settings(config, SCHEMA) == {
        "min_effect": 0.05,
        "alpha": 0.01,
        "ci_level": 0.95,
        "bootstrap": 2000,
        "seed": 0,
    }
    config["analysis"] = {"alpha": 0.05}
    assert analysis_settings(config, SCHEMA)["alpha"] == 0.05


@pytest.mark.parametrize(
    "source, message",
    [
        ({"runner": {"kind": "docker"}}, "field sources.demo.runner.image: runner docker needs an image"),
        (
            {"env": {"mode": "image"}},
            "field sources.demo.env.mode: mode image needs runner kind docker, podman or apptainer",
        ),
        (
            {"env": {"mode": "venv"}, "runner": {"kind": "apptainer", "image": "x.sif"}},
            "with runner apptainer use mode image",
        ),
        (
            {"runner": {"kind": "docker", "image": "x"}},
            "mode none uses this machine's Python; with runner docker",
        ),
    ],
)
def test_runner_and_env_mode_must_fit(config, source, message):
    from isobench.config import check_runners

    config["sources"]["demo"].update(source)
    check_config(config, SCHEMA)
    with pytest.raises(IsobenchError, match=message):
        check_runners(config, SCHEMA)


def test_runner_kinds_registry_is_the_schema_list(config):
    """The schema's runner kinds are exactly the registered classes; an unknown kind is an error wherever a
    Runner is made (config, timing file, code), never another kind's branch."""
    from isobench.config import check_runners
    from isobench.measure.runners import KINDS, Runner

    schema = yaml.safe_load(SCHEMA.read_text())
    assert schema["$defs"]["runner"]["properties"]["kind"]["enum"] == list(KINDS)
    for name, kind in KINDS.items():
        runner = Runner(kind=name, image="img:1")
        assert runner.impl is kind and bool(runner.prefix(Path("/w"), [], {}, "isolate")) == kind.container
    with pytest.raises(
        IsobenchError, match=r"runner.kind: unknown kind 'singularity' \(known: local, docker"
    ):
        Runner(kind="singularity", image="x.sif")
    config["sources"]["demo"]["runner"] = {"kind": "singularity", "image": "x.sif"}
    with pytest.raises(IsobenchError, match="config: field sources.demo.runner.kind: unknown kind"):
        check_runners(config, SCHEMA)


def test_llm_settings_layering(config):
    config["llm"] = {"provider": "anthropic", "model": "m1", "repairs": 1}
    config["sources"]["demo"]["llm"] = {"model": "m2"}
    got = llm_settings(config, "demo", SCHEMA)
    assert (got["provider"], got["model"], got["repairs"], got["regenerations"]) == ("anthropic", "m2", 1, 2)
    assert got["smoke_run"] is True and got["cache"] is True and got["cache_dir"] == ".isobench-cache/llm"


def test_vllm_example_config_is_valid():
    example = yaml.safe_load((ROOT / "config" / "examples" / "vllm.yaml").read_text())
    check_config(example, SCHEMA)
    from isobench.config import check_runners

    check_runners(example, SCHEMA)
    sandbox = SandboxSettings.from_config(example["sources"]["vllm"]["sandbox"])
    # an engine can live in it: own loopback (network isolate), models from a read-only cache, kernels kept
    assert sandbox.network == "isolate" and sandbox.model_cache and sandbox.compile_cache
    assert not any(name.startswith(("HF_", "TRITON", "TORCHINDUCTOR")) for name in sandbox.env_allow)


def _typed_settings():
    from isobench.envs import EnvSettings
    from isobench.generate import Policy
    from isobench.llm import LLMSettings
    from isobench.measure.gpu import GpuSettings
    from isobench.measure.job import Settings
    from isobench.measure.runners import Runner
    from isobench.measure.stats import Analysis

    return [
        (Settings, "measure"),
        (SandboxSettings, "sandbox"),
        (Runner, "runner"),
        (GpuSettings, "gpu"),
        (LLMSettings, "llm"),
        (Policy, "llm"),
        (Analysis, "analysis"),
        (EnvSettings, "env"),
    ]


@pytest.mark.parametrize("index", range(8))
def test_typed_settings_take_every_default_from_the_schema(index):
    from dataclasses import fields

    from isobench.settings import block_defaults

    cls, block = _typed_settings()[index]
    schema = yaml.safe_load(SCHEMA.read_text())
    block_props = schema["properties"][block]
    names = set(schema["$defs"].get(block, block_props).get("properties", {}))
    defaults = block_defaults(block)
    for f in fields(cls):
        assert f.name in names, f"{cls.__name__}.{f.name} is not a field of the schema's {block}"
        want = defaults[f.name]
        assert f.default == (tuple(want) if isinstance(want, list) else want), f"{cls.__name__}.{f.name}"
    # measure: every setting of the block reaches the job through the typed settings (contract, epoch, ...)
    if block == "measure":
        assert {f.name for f in fields(cls)} == names


def test_a_settings_field_without_a_schema_default_is_refused():
    from isobench.settings import schema_settings

    with pytest.raises(TypeError, match="no default for colour"):

        @schema_settings("measure")
        class Broken:
            rounds: int
            colour: str


def test_a_default_changed_in_the_schema_changes_the_code(tmp_path, monkeypatch):
    """One source: the dataclass reads the schema it is given, it holds no copy of its own."""
    from isobench import config as ic
    from isobench import settings

    schema = yaml.safe_load(SCHEMA.read_text())
    schema["properties"]["measure"]["default"]["rounds"] = 13
    path = tmp_path / "schema.yaml"
    path.write_text(yaml.safe_dump(schema))
    monkeypatch.setattr(settings, "SCHEMA", path)
    settings.block_defaults.cache_clear()
    try:

        @settings.schema_settings("measure")
        class Measure:
            rounds: int
            max_rounds: int

        assert Measure().rounds == 13 and Measure().max_rounds == 30
    finally:
        settings.block_defaults.cache_clear()
    assert ic.SCHEMA == SCHEMA


def test_one_list_of_result_shaping_llm_keys():
    """The reply cache's key and the generator job's params come from one list: the model's settings and the
    generation policy's, each a field of its settings class; endpoint, timeout, retries and cache are not in it."""
    from dataclasses import fields

    from isobench.config import LLM_SHAPING, llm_shaping
    from isobench.generate import Policy
    from isobench.llm import POLICY_SHAPING, SHAPING, LLMSettings

    assert LLM_SHAPING == (*SHAPING, *POLICY_SHAPING)
    assert set(SHAPING) <= {f.name for f in fields(LLMSettings)}
    assert set(POLICY_SHAPING) <= {f.name for f in fields(Policy)}
    assert tuple(LLMSettings(model="m").parameters()) == SHAPING
    shaping = llm_shaping(llm_settings({"llm": {"model": "m"}, "sources": {"s": {}}}, "s", SCHEMA))
    assert tuple(shaping) == LLM_SHAPING and not {"base_url", "timeout_s", "max_retries", "cache_dir"} & set(
        shaping
    )
