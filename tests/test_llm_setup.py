"""Setup mistakes caught before money is spent, and generations that got no reply asked again (issue 26, point 3).
The real openai and anthropic SDKs against the local server (tests/llm_server.py); real snakemake runs."""

from __future__ import annotations

import json
import socket

import pytest
import yaml
from conftest import ROOT, copy_workflow, demo_subset, snakemake
from llm_server import FakeLLM, error, reply

from isobench.llm import LLMSettings
from isobench.llm_check import check_endpoint


@pytest.fixture
def fake():
    server = FakeLLM().start()
    yield server
    server.stop()


def closed_port() -> int:
    with socket.socket() as sock:  # nothing listens on it once closed
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings(provider="openai", **kw) -> LLMSettings:
    return LLMSettings.from_config({"provider": provider, "model": "test-model", **kw})


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_served_model_passes_with_one_request(fake, provider, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    assert check_endpoint(settings(provider, base_url=fake.base_url(provider))) == (None, None)
    assert [r["path"] for r in fake.model_requests] == ["/v1/models/test-model"] and fake.requests == []


def test_a_bare_host_is_understood_as_the_openai_api(fake, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert check_endpoint(settings(base_url=fake.url)) == (None, None)  # no /v1 written
    assert fake.model_requests[-1]["path"] == "/v1/models/test-model"


def test_each_mistake_is_one_line_naming_the_variable_or_the_url(fake, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    error_of = lambda s: check_endpoint(s)[0]  # noqa: E731
    assert error_of(settings()) == "environment variable OPENAI_API_KEY is not set (the openai API key)"
    port = closed_port()
    said = error_of(settings(base_url=f"http://127.0.0.1:{port}/v1"))
    assert said.startswith(f"cannot reach the openai API at http://127.0.0.1:{port}/v1 (llm.base_url): ")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{port}/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert f"http://127.0.0.1:{port}/v1 (OPENAI_BASE_URL)" in error_of(settings())
    monkeypatch.delenv("OPENAI_BASE_URL")
    fake.key = "sk-right"
    said = error_of(settings(base_url=fake.base_url("openai")))
    assert said.startswith(
        f"{fake.base_url('openai')} (llm.base_url) refused the key in OPENAI_API_KEY (HTTP 401"
    )
    monkeypatch.delenv(
        "OPENAI_API_KEY"
    )  # a local server with a key: the placeholder is refused, the variable named
    said = error_of(settings(base_url=fake.base_url("openai")))
    assert "asks for a key (HTTP 401" in said and said.endswith("set OPENAI_API_KEY (or llm.api_key_env)")
    fake.key, fake.models = None, ["served-a", "served-b"]
    said = error_of(settings(base_url=fake.base_url("openai")))
    assert said == (
        f"config: field llm.model: 'test-model' is not served by {fake.base_url('openai')} (llm.base_url) "
        "(it serves: served-a, served-b)"
    )
    said = error_of(settings(base_url=fake.url + "/api"))
    assert "has no models API (HTTP 404" in said and f"(e.g. {fake.url}/api/v1)" in said and "\n" not in said


def test_a_busy_provider_is_a_warning(fake, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    fake.models_status = 503
    err, warning = check_endpoint(settings("anthropic", base_url=fake.base_url("anthropic"), max_retries=5))
    assert (
        err is None
        and warning == f"{fake.url} (llm.base_url) answered HTTP 503 to a check; the generations will retry"
    )
    assert len(fake.model_requests) == 1  # the check itself never retries


def llm_project(tmp_path, shas, llm: dict):
    """A copy of the workflow measuring one demo commit (histogram) that has no pre-generated test."""
    work = copy_workflow(tmp_path / "project")
    demo_subset(work, shas, "one", ["histogram"], ())
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    config["sources"]["demo"].update(
        extractions="one/extractions",
        generators="one/generators",
        measure={"rounds": 2, "max_rounds": 2, "repeat": 2, "warmup": 1},
    )
    config["llm"] = {
        "provider": "openai",
        "model": "test-model",
        "max_retries": 0,
        "cache_dir": "cache/llm",
        **llm,
    }
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def test_an_unreachable_endpoint_stops_the_run_before_any_job(tmp_path, demo, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    port = closed_port()
    work = llm_project(tmp_path, demo[1], {"base_url": f"http://127.0.0.1:{port}/v1"})
    proc = snakemake(work)
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("isobench: llm:")]
    assert len(lines) == 1, proc.stderr[-3000:]
    assert f"cannot reach the openai API at http://127.0.0.1:{port}/v1 (llm.base_url)" in lines[0]
    assert (
        f"1 commit(s) of source demo need an LLM-written test (e.g. {demo[1]['histogram'][:12]})" in lines[0]
    )
    assert not list((work / "results").glob("demo/*/generator.json")) and "Traceback" not in proc.stderr


def test_no_reply_is_asked_again_by_the_next_plain_run_and_no_local_path_reaches_the_provider(
    tmp_path, demo, monkeypatch
):
    _, shas = demo
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    key = shas["histogram"]
    good = (ROOT / "demo" / "generators" / f"{key[:8]}_test_case_generator.py").read_text()
    broken = good + (
        "\n\ndef experiment(data):\n    import demokit\n"
        "    raise RuntimeError('broken on purpose near ' + demokit.__file__)\n"
    )
    fake = FakeLLM().start()
    try:
        fake.default = error(503, "the provider is overloaded")
        work = llm_project(tmp_path, shas, {"base_url": fake.url, "repairs": 1, "regenerations": 0})
        first = snakemake(work)
        assert first.returncode == 0, first.stderr[-3000:]
        folder = work / "results" / "demo" / key
        meta = json.loads((folder / "generator.json").read_text())
        assert meta["status"] == "generation_failed" and meta["llm"]["transient"]
        assert meta["llm"]["base_url"] == fake.url + "/v1"  # the URL as used (the bare host understood)
        assert "(1 refused or unanswered)" in first.stderr
        assert "  failed commits: 1 of 1 (generation_failed 1)" in first.stderr
        assert f"    {key}.json: generation_failed: no reply from the openai API" in first.stderr
        assert "the next plain run asks again" in first.stderr
        # the provider is back: the plain rerun asks again, a broken script is repaired
        asked = len(fake.requests)
        fake.default = None
        fake.script(reply(f"```python\n{broken}```\n"), reply(f"```python\n{good}```\n"))
        second = snakemake(work)
        assert second.returncode == 0, second.stderr[-3000:]
        assert f"1 commit(s) whose generation got no reply from the LLM API are asked again: {key[:12]}" in (
            second.stderr
        )
        assert len(fake.requests) == asked + 2
        record = json.loads((folder / "record.json").read_text())
        assert record["status"] == "ok" and record["efficiency_test"] == [good]
        repair = fake.requests[-1]["body"]["messages"][-1]["content"]
        assert "broken on purpose near <repo>/demokit/__init__.py" in repair, repair
        sent = json.dumps([r["body"] for r in fake.requests])
        assert str(tmp_path) not in sent and str(work) not in sent and "/tmp/" not in sent
    finally:
        fake.stop()
