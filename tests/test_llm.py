"""LLM generation through the real openai/anthropic SDKs, against a local server speaking their wire formats."""

import json
import textwrap
from pathlib import Path

import pytest
from conftest import ROOT
from llm_server import FakeLLM, error, reply

from isobench import llm
from isobench.candidate import check_candidate, extract_code
from isobench.errors import IsobenchError
from isobench.generate import Cache, Generator, Policy
from isobench.measure.rounds import smoke_run
from isobench.secrecy import REDACTED

KEYS = {
    "OPENAI_API_KEY": "sk-test-SECRET-openai-0123456789",
    "ANTHROPIC_API_KEY": "sk-ant-SECRET-anthropic-98765",
}
PROVIDERS = ("openai", "anthropic")

GOOD = textwrap.dedent("""\
    import json

    import toy


    def setup():
        return 20000


    def experiment(n):
        return toy.work(n)


    def store_result(result, path):
        with open(path, "w") as fh:
            json.dump(result, fh)


    def load_result(path):
        with open(path) as fh:
            return json.load(fh)


    def check_equivalence(reference, current):
        assert reference == current, (reference, current)
    """)
CRASHES = GOOD.replace("return toy.work(n)", "return toy.no_such_function(n)")
NO_CHECK = GOOD[: GOOD.index("def check_equivalence")]


def fenced(code: str, before: str = "", after: str = "") -> str:
    return f"{before}```python\n{code}```\n{after}"


@pytest.fixture
def fake():
    server = FakeLLM().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    for name, value in KEYS.items():
        monkeypatch.setenv(name, value)


def generator(fake, tmp_path, revisions, provider="openai", smoke=True, settings=None, **policy):
    counter = tmp_path / "candidate"

    def run_smoke(script: str):
        path = tmp_path / "candidate.py"
        path.write_text(script)
        counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
        return smoke_run(path, revisions[1], tmp_path / "smoke", timeout_s=30)

    settings = settings or llm.LLMSettings(
        provider=provider, model="test-model", base_url=fake.base_url(provider), timeout_s=10, max_retries=2
    )
    system = (ROOT / "prompts" / "system.md").read_text()
    repair = (ROOT / "prompts" / "repair.md").read_text()
    return Generator(
        settings,
        Policy(**policy),
        Cache(tmp_path / "cache"),
        system,
        repair,
        smoke=run_smoke if smoke else None,
    )


def kinds(outcome):
    return [a["kind"] for a in outcome.transcript["attempts"]]


def no_secret_in(folder: Path):
    for path in folder.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for value in KEYS.values():
                assert value.encode() not in data, path


@pytest.mark.parametrize("provider", PROVIDERS)
def test_good_script_then_cache(fake, tmp_path, revisions, provider):
    fake.script(reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions, provider).generate("write a test for toy.work")
    assert (
        out.status == "accepted"
        and out.script == GOOD
        and out.contract == "functions"
        and out.generator == {"source": "llm", "provider": provider, "model": "test-model", "path": None}
    )
    assert len(fake.requests) == 1 and kinds(out) == ["initial"]
    attempt = out.transcript["attempts"][0]
    assert attempt["smoke_run"] == "passed" and attempt["accepted"] and attempt["http_statuses"] == [200]
    assert attempt["usage"]["input_tokens"] > 0 and attempt["usage"]["output_tokens"] > 0
    assert out.totals["api_requests"] == 1 and out.totals["output_tokens"] > 0
    sent = fake.requests[0]
    if provider == "openai":
        assert (
            sent["path"] == "/v1/chat/completions"
            and sent["headers"]["authorization"] == f"Bearer {KEYS['OPENAI_API_KEY']}"
        )
        assert sent["body"]["messages"][0]["role"] == "system" and sent["body"]["max_tokens"] == 8192
    else:
        auth = sent["headers"].get("x-api-key") or sent["headers"]["authorization"]  # SDK versions differ
        assert sent["path"] == "/v1/messages" and auth.endswith(KEYS["ANTHROPIC_API_KEY"])
        assert sent["body"]["max_tokens"] == 8192 and "system" in sent["body"]
    assert "temperature" not in sent["body"]  # none configured: the provider's default

    again = generator(fake, tmp_path, revisions, provider).generate("write a test for toy.work")
    assert again.script == GOOD and len(fake.requests) == 1
    assert again.generator == {"source": "cache", "provider": provider, "model": "test-model", "path": None}
    assert again.totals["api_requests"] == 0 and again.totals["cache_hit"]
    no_secret_in(tmp_path)


def test_prose_around_the_code(fake, tmp_path, revisions):
    fake.script(reply(fenced(GOOD, "Here is the test you asked for:\n\n", "\nIt times toy.work.\n")))
    out = generator(fake, tmp_path, revisions).generate("p")
    assert out.status == "accepted" and out.script == GOOD and len(fake.requests) == 1


@pytest.mark.parametrize("provider", PROVIDERS)
def test_syntax_error_is_repaired(fake, tmp_path, revisions, provider):
    broken = "I think this works:\n" + fenced(GOOD.replace("def setup():", "def setup(:"))
    fake.script(reply(broken), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions, provider).generate("p")
    assert out.status == "accepted" and kinds(out) == ["initial", "repair"] and len(fake.requests) == 2
    first = out.transcript["attempts"][0]
    assert first["error"].startswith("validation: the script: syntax error at line 6")
    messages = fake.requests[1]["body"]["messages"]
    assert messages[-2] == {"role": "assistant", "content": broken}
    assert "syntax error at line 6" in messages[-1]["content"]


def test_missing_function_is_repaired(fake, tmp_path, revisions):
    fake.script(reply(fenced(NO_CHECK)), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions).generate("p")
    assert out.status == "accepted" and kinds(out) == ["initial", "repair"] and len(fake.requests) == 2
    assert "does not define check_equivalence" in fake.requests[1]["body"]["messages"][-1]["content"]


def test_smoke_run_failure_is_repaired_with_the_traceback(fake, tmp_path, revisions):
    fake.script(reply(fenced(CRASHES)), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions).generate("p")
    assert out.status == "accepted" and out.script == GOOD and kinds(out) == ["initial", "repair"]
    first = out.transcript["attempts"][0]
    assert first["smoke_run"] == "failed" and first["error"].startswith(
        "smoke run: experiment_error (reference run)"
    )
    repair = fake.requests[1]["body"]["messages"][-1]["content"]
    assert "no_such_function" in repair and "Traceback" in repair
    assert (tmp_path / "candidate").read_text() == "2"  # both candidates were smoke-run


def test_empty_reply_is_asked_again(fake, tmp_path, revisions):
    fake.script(reply(""), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions).generate("p")
    assert out.status == "accepted" and kinds(out) == ["initial", "regeneration"] and len(fake.requests) == 2
    assert fake.requests[0]["body"]["messages"] == fake.requests[1]["body"]["messages"]
    assert out.transcript["attempts"][0]["error"] == "validation: the reply contains no code"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_rate_limit_is_retried_by_the_sdk(fake, tmp_path, revisions, provider):
    fake.script(error(429, "slow down", headers={"retry-after-ms": "20"}), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions, provider).generate("p")
    assert out.status == "accepted" and len(fake.requests) == 2 and kinds(out) == ["initial"]
    assert out.transcript["attempts"][0]["http_statuses"] == [429, 200] and out.totals["api_requests"] == 2


@pytest.mark.parametrize("provider", PROVIDERS)
def test_server_error_every_time_fails_the_generation(fake, tmp_path, revisions, provider):
    fake.default = error(500, "overloaded")
    out = generator(fake, tmp_path, revisions, provider).generate("p")
    assert out.status == "generation_failed" and out.script is None
    assert out.generator == {"source": "llm", "provider": provider, "model": "test-model", "path": None}
    assert len(fake.requests) == 3  # the first request and the SDK's 2 retries
    assert "InternalServerError (HTTP 500)" in out.error and "overloaded" in out.error
    attempt = out.transcript["attempts"][0]
    assert attempt["http_statuses"] == [500, 500, 500] and attempt["reply"] is None
    assert not (tmp_path / "cache" / "accepted").exists()  # nothing was accepted, nothing cached


def test_reply_slower_than_the_timeout(fake, tmp_path, revisions):
    settings = llm.LLMSettings(model="m", base_url=fake.base_url("openai"), timeout_s=0.5, max_retries=1)
    fake.default = reply(fenced(GOOD), delay=2.0)
    out = generator(fake, tmp_path, revisions, settings=settings).generate("p")
    assert out.status == "generation_failed" and len(fake.requests) == 2
    assert "APITimeoutError" in out.error
    assert out.transcript["attempts"][0]["http_statuses"] == [None, None]


def test_budgets_then_failure_and_a_rerun_pays_nothing(fake, tmp_path, revisions):
    fake.default = reply(fenced("import toy\ndef setup(:\n"))
    out = generator(fake, tmp_path, revisions, regenerations=1, repairs=2).generate("p")
    assert out.status == "generation_failed" and len(fake.requests) == 4
    assert kinds(out) == ["initial", "repair", "repair", "regeneration"]
    assert out.error.startswith(
        "no usable script after 4 replies; last: validation: the script: syntax error"
    )
    again = generator(fake, tmp_path, revisions, regenerations=1, repairs=2).generate("p")
    assert again.status == "generation_failed" and len(fake.requests) == 4  # every reply came from the cache
    assert again.totals["cached_replies"] == 4 and again.totals["api_requests"] == 0


def test_cache_bypass_asks_again(fake, tmp_path, revisions):
    fake.default = reply(fenced(GOOD))
    generator(fake, tmp_path, revisions).generate("p")
    gen = generator(fake, tmp_path, revisions)
    gen.cache = Cache(tmp_path / "cache", read=False)
    assert gen.generate("p").generator["source"] == "llm" and len(fake.requests) == 2
    generator(fake, tmp_path, revisions).generate("another prompt")
    assert len(fake.requests) == 3  # another prompt is other content


def test_reasoning_model_quirks_and_refused_parameters(fake, tmp_path, revisions):
    fake.default = reply(fenced(GOOD))
    settings = llm.LLMSettings(
        model="o4-mini", temperature=0.3, base_url=fake.base_url("openai"), max_retries=0
    )
    generator(fake, tmp_path, revisions, settings=settings, smoke=False).generate("p")
    body = fake.requests[-1]["body"]
    assert body["max_completion_tokens"] == 8192 and "max_tokens" not in body and "temperature" not in body

    fake.script(
        error(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
        ),
        error(400, "Unsupported value: 'temperature' does not support 0.3 with this model."),
    )
    settings = llm.LLMSettings(
        model="new-model", temperature=0.3, base_url=fake.base_url("openai"), max_retries=0
    )
    out = generator(fake, tmp_path, revisions, settings=settings, smoke=False).generate("p")
    assert out.status == "accepted"
    assert out.transcript["attempts"][0]["adapted"] == [
        "max_tokens -> max_completion_tokens",
        "temperature dropped",
    ]
    sent = [r["body"] for r in fake.requests[-3:]]
    assert [("max_tokens" in b, "temperature" in b) for b in sent] == [
        (True, True),
        (False, True),
        (False, False),
    ]

    settings = llm.LLMSettings(
        provider="anthropic", model="claude-x", temperature=0.3, base_url=fake.base_url("anthropic")
    )
    generator(fake, tmp_path, revisions, settings=settings, smoke=False).generate("p")
    assert fake.requests[-1]["body"]["temperature"] == 0.3 and fake.requests[-1]["body"]["max_tokens"] == 8192


def test_keys_never_reach_an_artifact(fake, tmp_path, revisions, monkeypatch):
    echo = fenced(GOOD.replace("import toy", f"import toy  # {KEYS['OPENAI_API_KEY']}"))
    fake.script(reply(echo))
    out = generator(fake, tmp_path, revisions, smoke=False).generate("p")
    text = json.dumps(out.transcript)
    assert KEYS["OPENAI_API_KEY"] not in text and REDACTED in text
    no_secret_in(tmp_path / "cache")


def test_setup_mistakes_fail_the_job_so_that_a_rerun_retries(fake, tmp_path, revisions, monkeypatch):
    # No key, no model, a refused key: an error (the job fails, nothing is written), not generation_failed.
    monkeypatch.delenv("OPENAI_API_KEY")
    settings = llm.LLMSettings(model="gpt-4o")  # the real endpoint: it must not be called
    with pytest.raises(IsobenchError, match="OPENAI_API_KEY is not set"):
        generator(fake, tmp_path, revisions, settings=settings).generate("p")
    with pytest.raises(
        IsobenchError, match="config: field llm.model: not set, so a commit without a pre-generated"
    ):
        generator(fake, tmp_path, revisions, settings=llm.LLMSettings()).generate("p")
    assert not fake.requests
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["OPENAI_API_KEY"])
    fake.script(error(401, "invalid api key"))
    with pytest.raises(IsobenchError, match=r"AuthenticationError \(HTTP 401\)"):
        generator(fake, tmp_path, revisions).generate("p")
    assert len(fake.requests) == 1


def test_prose_without_code_is_asked_again(fake, tmp_path, revisions):
    fake.script(reply("I cannot write this test without more context."), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions).generate("p")
    assert out.status == "accepted" and kinds(out) == ["initial", "regeneration"]
    assert out.transcript["attempts"][0]["error"] == "validation: the reply contains no code"


def test_empty_reply_without_regenerations_is_repaired_with_a_non_empty_turn(fake, tmp_path, revisions):
    fake.script(reply(""), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions, regenerations=0).generate("p")
    assert out.status == "accepted" and kinds(out) == ["initial", "repair"]
    assert fake.requests[1]["body"]["messages"][-2] == {"role": "assistant", "content": "(an empty reply)"}


def test_async_functions_are_refused_not_a_crash(fake, tmp_path, revisions):
    fake.script(reply(fenced(GOOD.replace("def setup():", "async def setup():"))), reply(fenced(GOOD)))
    out = generator(fake, tmp_path, revisions).generate("p")
    assert out.status == "accepted" and kinds(out) == ["initial", "repair"]
    assert "setup must be plain functions, not async def" in out.transcript["attempts"][0]["error"]


def test_cache_entries_of_another_version_are_misses(fake, tmp_path, revisions):
    fake.default = reply(fenced(GOOD))
    generator(fake, tmp_path, revisions).generate("p")
    for path in (tmp_path / "cache").rglob("*.json"):
        entry = json.loads(path.read_text())
        entry["cache_version"] = 0
        path.write_text(json.dumps(entry))
    again = generator(fake, tmp_path, revisions).generate("p")
    assert again.generator["source"] == "llm" and len(fake.requests) == 2


def test_extract_code():
    assert extract_code("```python\nx = 1\n```") == "x = 1\n"
    assert extract_code("a\n```py\nshort\n```\nb\n```python\nlonger = 1\n```\n") == "longer = 1\n"
    assert extract_code("```\nplain = 1\n```") == "plain = 1\n"
    assert extract_code("```json\n{}\n```\n```python\nx = 2\n```") == "x = 2\n"
    assert extract_code("import os\nprint(os)\n") == "import os\nprint(os)\n"
    assert extract_code("```python\nimport os\ncut = (") == "import os\ncut = (\n"  # the reply hit max tokens
    assert extract_code("  \n") == ""


@pytest.mark.parametrize(
    "code, message",
    [
        (GOOD.replace("    return toy.work(n)", "    pass"), "experiment does nothing"),
        (GOOD.replace("    return 20000", "    raise NotImplementedError"), "setup does nothing"),
        (GOOD.replace("    return toy.work(n)", "    return n"), r"experiment\(\) calls nothing"),
        (
            GOOD.replace("import json\n", "").replace("import toy\n", "").replace("json.", "str"),
            "imports nothing",
        ),
    ],
)
def test_trivial_scripts_are_refused(code, message):
    with pytest.raises(IsobenchError, match=message):
        check_candidate(code)
    assert check_candidate(GOOD) == "functions"


def test_the_cost_in_money_is_priced_per_model_or_said_unknown():
    from isobench.costs import cost_text, price

    def summary():
        return {
            "totals": {"input_tokens": 3_000_000, "output_tokens": 500_000},
            "commits": [
                {"model": "gpt-4.1", "input_tokens": 2_000_000, "output_tokens": 500_000},
                {"model": "other", "input_tokens": 1_000_000, "output_tokens": 0},
                {"model": "unasked", "input_tokens": 0, "output_tokens": 0},  # a cache hit costs nothing
            ],
        }

    prices = {"gpt-4.1": {"input": 2.0, "output": 8.0}, "other": {"input": 0.5, "output": 1.0}}
    priced = price(summary(), prices)
    assert [r["cost_usd"] for r in priced["commits"]] == [8.0, 0.5, None]
    assert priced["totals"]["cost_usd"] == 8.5 and cost_text(priced["totals"]) == "$8.50"
    unknown = price(summary(), {"gpt-4.1": prices["gpt-4.1"]})["totals"]
    assert unknown["cost_usd"] is None and cost_text(unknown) == "unknown: no price for other in llm_prices"
