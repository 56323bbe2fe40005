"""One chat request to an LLM through the official SDKs (``openai``, ``anthropic``).

Retries of 408/409/429/5xx and timeouts, with backoff and ``Retry-After``, are the SDKs' own
(``max_retries``). What is ours: settings from config, the API key from the environment only,
the known parameter quirks, one normalized reply, and scrubbing secrets from any text we keep.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

from .errors import IsobenchError
from .secrecy import PROVIDER_KEY_ENV
from .settings import schema_settings

PROVIDERS = ("openai", "anthropic")
# OpenAI's reasoning models reject `temperature` and `max_tokens` (they take `max_completion_tokens`).
_REASONING_MODEL = re.compile(r"^(?:[\w.-]+/)?(?:o\d|gpt-5)", re.I)


# The settings that shape the model's answer: the reply cache's key (``LLMSettings.parameters``) and, with the
# generation policy's (fields of isobench.generate.Policy), what reruns a commit's generator job when changed.
SHAPING = ("provider", "model", "temperature", "max_output_tokens", "reasoning")
POLICY_SHAPING = ("regenerations", "repairs", "smoke_run")


@schema_settings("llm")
class LLMSettings:
    """How the model is asked (part of the config's ``llm`` block; defaults in the schema)."""

    provider: str
    model: str | None
    temperature: float | None  # None: the provider's default (newer models accept nothing else)
    max_output_tokens: int
    base_url: str | None
    api_key_env: str | None
    timeout_s: float
    max_retries: int
    reasoning: object  # "auto", True or False

    @property
    def key_env(self) -> str:
        return self.api_key_env or PROVIDER_KEY_ENV[self.provider]

    def is_reasoning(self) -> bool:
        if self.reasoning == "auto":
            return self.provider == "openai" and bool(_REASONING_MODEL.match(self.model or ""))
        return bool(self.reasoning)

    def parameters(self) -> dict:
        """What shapes the model's answer (part of the cache key); not the endpoint, timeout or retries."""
        values = {k: getattr(self, k) for k in SHAPING}
        if values["temperature"] is not None:
            values["temperature"] = float(values["temperature"])  # 0 and 0.0 are one key
        values["reasoning"] = self.is_reasoning()  # "auto" as it was decided for this model
        return values


@dataclass
class Reply:
    text: str
    finish_reason: str | None
    model: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    http: dict = field(default_factory=dict)  # HTTP requests sent (SDK retries included) and their statuses
    request: dict = field(default_factory=dict)  # the parameters finally sent (after quirk fixes)
    adapted: list = field(default_factory=list)


class APIFailure(IsobenchError):
    """The provider could not give a reply (after the SDK's retries): no point in asking again now."""

    def __init__(
        self,
        message: str,
        http: dict,
        latency_s: float = 0.0,
        request: dict | None = None,
        fatal: bool = False,
        transient: bool = False,
    ):
        super().__init__(message)
        self.http, self.latency_s, self.request, self.fatal = http, latency_s, request or {}, fatal
        # not the reply's fault (no connection, 429 or 5xx after the SDK's retries): a later run asks again
        self.transient = transient


def sdk_base_url(settings: LLMSettings) -> str | None:
    """The base URL as the SDK wants it, however it was written: Anthropic's SDK adds /v1 itself, so a URL
    ending in /v1 (as OpenAI-compatible servers are written) is cut back to the host; OpenAI's does not, so a
    bare host (http://localhost:8000) gets the API's /v1."""
    from urllib.parse import urlsplit

    url = settings.base_url
    if url and settings.provider == "anthropic":
        url = url.rstrip("/")
        url = url[:-3] if url.endswith("/v1") else url
    elif url and urlsplit(url).path in ("", "/"):
        url = url.rstrip("/") + "/v1"
    return url


BASE_URL_ENV = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
DEFAULT_URL = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com"}


def url_origin(settings: LLMSettings) -> tuple[str, str]:
    """(the base URL the SDK will use, where it came from: llm.base_url, the SDK's variable, or its default)."""
    if settings.base_url:
        return sdk_base_url(settings), "llm.base_url"
    env = BASE_URL_ENV[settings.provider]
    if os.environ.get(env):
        return os.environ[env], env
    return DEFAULT_URL[settings.provider], f"the {settings.provider} SDK's default"


def make_client(settings: LLMSettings):
    if settings.provider not in PROVIDERS:
        raise IsobenchError(
            f"config: field llm.provider: {settings.provider!r} is not one of {list(PROVIDERS)}"
        )
    if not settings.model:
        raise IsobenchError(
            "config: field llm.model: not set, so a commit without a pre-generated script "
            "(<sha>_test_case_generator.py in the source's generators folder) gets no test"
        )
    key = os.environ.get(settings.key_env)
    if not key:
        if not settings.base_url:
            raise IsobenchError(
                f"environment variable {settings.key_env} is not set (the {settings.provider} API key)"
            )
        key = "not-needed"  # a local OpenAI-compatible server (vLLM, Ollama) usually takes any key
    if settings.provider == "openai":
        import openai as sdk

        cls = sdk.OpenAI
    else:
        import anthropic as sdk

        cls = sdk.Anthropic
    wire = HttpLog()
    http = sdk.DefaultHttpxClient(event_hooks={"request": [wire.on_request], "response": [wire.on_response]})
    client = cls(
        api_key=key,
        base_url=sdk_base_url(settings),
        timeout=settings.timeout_s,
        max_retries=settings.max_retries,
        http_client=http,
    )
    client.isobench_wire = wire
    return client


class HttpLog:
    """Every HTTP exchange the SDK makes, its own retries included: what a reply really cost.

    One client serves one generation at a time, so a response belongs to the latest request;
    a request left at None got no response (timeout, connection error)."""

    def __init__(self):
        self.statuses: list[int | None] = []

    def on_request(self, request) -> None:
        self.statuses.append(None)

    def on_response(self, response) -> None:
        if self.statuses:
            self.statuses[-1] = response.status_code

    def mark(self) -> int:
        return len(self.statuses)

    def since(self, mark: int) -> dict:
        """HTTP requests sent since ``mark`` and their statuses (None: no response)."""
        return {"http_requests": len(self.statuses) - mark, "http_statuses": self.statuses[mark:]}


def _request(settings: LLMSettings, system: str | None, messages: list[dict]) -> dict:
    if settings.provider == "anthropic":
        req = {"model": settings.model, "max_tokens": settings.max_output_tokens, "messages": messages}
        if system:
            req["system"] = system
        if settings.temperature is not None:
            # anthropic>=1 dropped the keyword (newer models take only the default); the wire field stays.
            req["extra_body"] = {"temperature": settings.temperature}
        return req
    msgs = ([{"role": "system", "content": system}] if system else []) + messages
    req = {"model": settings.model, "messages": msgs}
    if settings.is_reasoning():
        req["max_completion_tokens"] = settings.max_output_tokens
    else:
        req["max_tokens"] = settings.max_output_tokens
        if settings.temperature is not None:
            req["temperature"] = settings.temperature
    return req


def _adapt(req: dict, message: str) -> str | None:
    """Fix a request the server refused for a known parameter quirk; return what was changed."""
    text = message.lower()
    if "max_tokens" in req and "max_completion_tokens" in text:
        req["max_completion_tokens"] = req.pop("max_tokens")
        return "max_tokens -> max_completion_tokens"
    if "temperature" in text and ("unsupported" in text or "not support" in text or "deprecated" in text):
        if "temperature" in req:
            del req["temperature"]
            return "temperature dropped"
        if "temperature" in req.get("extra_body", {}):
            del req["extra_body"]
            return "temperature dropped"
    return None


def _error_text(exc: Exception) -> str:
    status = getattr(exc, "status_code", None)
    text = " ".join(str(exc).split())
    if len(text) > 500:
        text = text[:500] + "…"
    return f"{type(exc).__name__}{f' (HTTP {status})' if status else ''}: {text}"


def chat(client, settings: LLMSettings, system: str | None, messages: list[dict]) -> Reply:
    """One completion; a refused quirk is fixed and asked again (at most twice)."""
    if settings.provider == "openai":
        import openai as sdk

        create = client.chat.completions.create
    else:
        import anthropic as sdk

        create = client.messages.create
    req = _request(settings, system, messages)
    adapted: list[str] = []
    wire = getattr(client, "isobench_wire", None)
    mark = wire.mark() if wire else None

    def http() -> dict:
        return wire.since(mark) if wire else {"http_requests": len(adapted) + 1, "http_statuses": []}

    started = time.monotonic()
    while True:
        try:
            resp = create(**req)
            break
        except sdk.BadRequestError as exc:
            change = _adapt(req, str(exc)) if len(adapted) < 2 else None
            if change is None:
                raise APIFailure(_error_text(exc), http(), time.monotonic() - started, _shown(req)) from None
            adapted.append(change)
        except sdk.APIError as exc:
            # a refused key or an unknown model is a setup mistake, not this commit's failure
            status = getattr(exc, "status_code", None)
            fatal = status in (401, 403, 404)
            transient = status is None or status == 429 or status >= 500  # no connection, busy, broken
            raise APIFailure(
                _error_text(exc), http(), time.monotonic() - started, _shown(req), fatal, transient
            ) from None
    latency = round(time.monotonic() - started, 3)
    if settings.provider == "openai":
        choice = resp.choices[0] if resp.choices else None
        message = getattr(choice, "message", None)
        text = (getattr(message, "content", None) or "") if message else ""
        usage = resp.usage
        tokens = (getattr(usage, "prompt_tokens", 0) or 0, getattr(usage, "completion_tokens", 0) or 0)
        finish = choice.finish_reason if choice else None
    else:
        text = "".join(
            getattr(b, "text", "") or "" for b in (resp.content or []) if getattr(b, "type", "") == "text"
        )
        tokens = (resp.usage.input_tokens or 0, resp.usage.output_tokens or 0)
        finish = resp.stop_reason
    if finish in ("length", "max_tokens"):
        finish = "length"
    return Reply(
        text=text,
        finish_reason=finish,
        model=getattr(resp, "model", None),
        input_tokens=tokens[0],
        output_tokens=tokens[1],
        latency_s=latency,
        http=http(),
        request=_shown(req),
        adapted=adapted,
    )


def _shown(req: dict) -> dict:
    """The request's parameters for the transcript (messages are kept there separately)."""
    shown = {k: v for k, v in req.items() if k not in ("messages", "system", "extra_body")}
    return {**shown, **req.get("extra_body", {})}
