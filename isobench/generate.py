"""Generate one commit's performance test with an LLM: ask, check, smoke-run, repair, cache.

Flow: the prompt is sent (``initial``); the reply's Python block is checked (``isobench.candidate``:
parses, follows a contract, is not trivial) and smoke-run once at head. An empty reply or one without code is asked
again (``regeneration``); a script that fails a check or the smoke run goes back to the model with
the exact error (``repair``). Each kind has its own budget; when one is spent the other is used.

Two caches make sure nothing is paid twice for the same content:
- accepted: key = sha256 of (provider, model, parameters, system/repair prompts, prompt bytes)
  -> the accepted script and its transcript; a hit makes no request and no smoke run;
- replies: key = sha256 of one exact request (parameters, messages, sample number) -> the reply;
  rerunning a failed generation replays the same replies and pays only for requests never made.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import llm
from .candidate import check_candidate, extract_code, parses
from .errors import IsobenchError
from .jsonio import load_json, sha256_bytes, write_json
from .provenance import generator_provenance
from .secrecy import hide_local_paths, redact, secret_values
from .settings import schema_settings

TRANSCRIPT_VERSION = 1
CACHE_VERSION = 1


@schema_settings("llm")
class Policy:
    """How hard generation tries (part of the config's ``llm`` block; defaults in the schema)."""

    regenerations: int  # fresh requests after a failed one
    repairs: int  # repair requests per candidate that failed a check
    smoke_run: bool  # run each candidate once at head before accepting it
    smoke_timeout_s: float  # the time limit of a smoke run's process
    cache: bool  # reuse replies and accepted scripts of the same content
    cache_dir: str  # where replies and accepted scripts are kept


@dataclass
class Outcome:
    status: str  # "accepted" or "generation_failed"
    script: str | None
    contract: str | None
    error: str | None
    generator: dict  # its provenance (isobench.provenance): source "llm" (asked now) or "cache"
    transcript: dict
    totals: dict = field(default_factory=dict)


def _key(doc: dict) -> str:
    return sha256_bytes(json.dumps(doc, sort_keys=True, ensure_ascii=False).encode("utf-8"))


class Cache:
    """Content-addressed files under ``root``: accepted/<key>.json and replies/<key>.json."""

    def __init__(self, root: str | Path, read: bool = True):
        self.root, self.read = Path(root), read

    def _path(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / f"{key}.json"

    FIELDS = {
        "accepted": ("script", "contract", "transcript"),
        "replies": ("request", "reply", "usage", "finish_reason", "model"),
    }

    def get(self, kind: str, key: str) -> dict | None:
        path = self._path(kind, key)
        if not self.read or not path.is_file():
            return None
        try:
            entry = load_json(path)
        except IsobenchError:
            return None  # a damaged entry is a miss; it is written anew
        if (
            not isinstance(entry, dict)
            or entry.get("cache_version") != CACHE_VERSION
            or any(f not in entry for f in self.FIELDS[kind])
        ):
            return None  # another version's entry, or a damaged one
        return entry

    def put(self, kind: str, key: str, value: dict) -> None:
        write_json(self._path(kind, key), {**value, "cache_version": CACHE_VERSION})

    def drop(self, kind: str, key: str) -> None:
        self._path(kind, key).unlink(missing_ok=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class Generator:
    """Generates one script; ``smoke(script) -> error text or None`` runs it once at head."""

    def __init__(
        self,
        settings: llm.LLMSettings,
        policy: Policy,
        cache: Cache,
        system: str,
        repair_template: str,
        smoke: Callable[[str], str | None] | None = None,
        client=None,
    ):
        self.settings, self.policy, self.cache = settings, policy, cache
        self.system, self.repair_template, self.smoke = system, repair_template, smoke
        self._client = client
        self.attempts: list[dict] = []
        self._asked: dict[str, int] = {}

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = llm.make_client(self.settings)
            except llm.APIFailure:
                raise
            except IsobenchError as exc:  # no model, no key: nothing was sent
                raise llm.APIFailure(
                    str(exc), {"http_requests": 0, "http_statuses": []}, fatal=True
                ) from None
        return self._client

    def accepted_key(self, prompt: str) -> str:
        return _key(
            {
                "parameters": self.settings.parameters(),
                "system": self.system,
                "repair": self.repair_template,
                "regenerations": self.policy.regenerations,
                "repairs": self.policy.repairs,
                "smoke_run": self.policy.smoke_run,
                "prompt_sha256": sha256_bytes(prompt.encode("utf-8")),
            }
        )

    def _ask(self, kind: str, messages: list[dict]) -> tuple[dict, llm.Reply | None]:
        # The same request asked again in one generation is a new sample (a model at temperature > 0
        # answers differently); replayed from the cache, the samples come back in the same order.
        request = {"parameters": self.settings.parameters(), "system": self.system, "messages": messages}
        sample = self._asked.get(_key(request), 0)
        self._asked[_key(request)] = sample + 1
        key = _key({**request, "sample": sample})
        attempt = {
            "n": len(self.attempts) + 1,
            "kind": kind,
            "started_at": _now(),
            "request_key": key,
            "messages": messages,
            "cached": False,
            "http_requests": 0,
            "http_statuses": [],
            "error": None,
        }
        self.attempts.append(attempt)
        hit = self.cache.get("replies", key)
        if hit is not None:
            attempt.update(
                cached=True,
                request=hit["request"],
                reply=hit["reply"],
                usage=hit["usage"],
                latency_s=0.0,
                finish_reason=hit["finish_reason"],
                model=hit["model"],
            )
            return attempt, llm.Reply(
                text=hit["reply"], finish_reason=hit["finish_reason"], model=hit["model"]
            )
        try:
            reply = self.llm_chat(messages)
        except llm.APIFailure as exc:
            attempt.update(
                **exc.http,
                latency_s=round(exc.latency_s, 3),
                request=exc.request,
                reply=None,
                usage={"input_tokens": 0, "output_tokens": 0},
                error=f"API: {exc}",
            )
            raise
        # a key echoed back goes nowhere
        reply.text = redact(reply.text, secret_values([self.settings.key_env]))
        usage = {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens}
        attempt.update(
            **reply.http,
            latency_s=reply.latency_s,
            request=reply.request,
            reply=reply.text,
            usage=usage,
            finish_reason=reply.finish_reason,
            model=reply.model,
            adapted=reply.adapted,
        )
        self.cache.put(
            "replies",
            key,
            {
                "request": reply.request,
                "reply": reply.text,
                "usage": usage,
                "finish_reason": reply.finish_reason,
                "model": reply.model,
                "created_at": _now(),
            },
        )
        return attempt, reply

    def llm_chat(self, messages: list[dict]) -> llm.Reply:
        return llm.chat(self.client, self.settings, self.system, messages)

    def _judge(self, attempt: dict, reply: llm.Reply) -> tuple[str | None, str | None, str]:
        """(script, contract, '') when usable, else (None, None, error kind) with the error in the attempt."""
        script = extract_code(reply.text)
        attempt["script_sha256"] = sha256_bytes(script.encode("utf-8")) if script else None
        try:
            contract = check_candidate(script)
        except IsobenchError as exc:
            cut = " (the reply was cut at max_output_tokens)" if reply.finish_reason == "length" else ""
            # prose without any code (no fence, and not Python either) is asked again, like an empty reply
            no_code = not script.strip() or ("```" not in reply.text and not parses(script))
            attempt["error"] = (
                "validation: the reply contains no code"
                if no_code and script.strip() and not cut
                else f"validation: {exc}{cut}"
            )
            return None, None, "empty" if no_code else "invalid"
        if self.policy.smoke_run and self.smoke is not None:
            problem = self.smoke(script)
            problem = redact(problem, secret_values([self.settings.key_env])) if problem else problem
            attempt["smoke_run"] = "failed" if problem else "passed"
            if problem:
                attempt["error"] = f"smoke run: {problem}"
                return None, None, "smoke"
        return script, contract, ""

    def _provenance(self, source: str) -> dict:
        return generator_provenance(source, self.settings.provider, self.settings.model)

    def generate(self, prompt: str) -> Outcome:
        key = self.accepted_key(prompt)
        hit = self.cache.get("accepted", key)
        if hit is not None:
            transcript = dict(hit["transcript"], served_from_cache_at=_now())
            return Outcome(
                "accepted",
                hit["script"],
                hit["contract"],
                None,
                self._provenance("cache"),
                transcript,
                totals(transcript["attempts"], cache_hit=True),
            )
        base = [{"role": "user", "content": prompt}]
        regen_left, repair_left = self.policy.regenerations, self.policy.repairs
        kind, messages = "initial", base
        script = contract = error = None
        transient = False
        while True:
            try:
                attempt, reply = self._ask(kind, messages)
            except llm.APIFailure as exc:
                if exc.fatal:  # a setup mistake (no key, no model, refused key, unknown model): fix and rerun
                    raise IsobenchError(f"{self.settings.provider} API: {exc}") from None
                error = f"no reply from the {self.settings.provider} API: {exc}"
                transient = exc.transient
                break
            script, contract, problem = self._judge(attempt, reply)
            if script is not None:
                attempt["accepted"] = True
                break
            attempt["accepted"] = False
            error = attempt["error"]
            prefer_regeneration = problem == "empty"
            if regen_left and (prefer_regeneration or not repair_left):
                regen_left -= 1
                kind, messages = "regeneration", base
            elif repair_left:
                repair_left -= 1
                # what the provider reads: no path of this machine (the smoke run names the tree <repo>)
                repair = self.repair_template.replace("{{ error }}", hide_local_paths(error))
                said = reply.text if reply.text.strip() else "(an empty reply)"  # APIs refuse empty turns
                kind, messages = (
                    "repair",
                    base + [{"role": "assistant", "content": said}, {"role": "user", "content": repair}],
                )
            else:
                error = f"no usable script after {len(self.attempts)} replies; last: {error}"
                break
        status = "accepted" if script is not None else "generation_failed"
        transcript = {
            "schema_version": TRANSCRIPT_VERSION,
            "status": status,
            "error": None if script else error,
            "transient": script is None and transient,  # the next run asks again (isobench/llm_check.py)
            "accepted_key": key,
            "provider": self.settings.provider,
            "model": self.settings.model,
            "base_url": llm.url_origin(self.settings)[0],  # the URL the SDK used, however it was set
            "parameters": self.settings.parameters(),
            "policy": {
                "regenerations": self.policy.regenerations,
                "repairs": self.policy.repairs,
                "smoke_run": self.policy.smoke_run,
                "cache": self.policy.cache,
            },
            "system": self.system,
            "repair_template": self.repair_template,
            "created_at": _now(),
            "attempts": self.attempts,
        }
        transcript = redact(transcript, secret_values([self.settings.key_env]))
        outcome = Outcome(
            status,
            script,
            contract,
            transcript["error"],
            self._provenance("llm"),
            transcript,
            totals(self.attempts),
        )
        if script is not None:
            self.cache.put(
                "accepted", key, {"script": script, "contract": contract, "transcript": transcript}
            )
        return outcome


def totals(attempts: list[dict], cache_hit: bool = False) -> dict:
    """Cost of one generation: requests paid now, replies replayed from the cache, tokens of paid requests."""

    def tokens(kind: str, among: list[dict]) -> int:
        return sum(a.get("usage", {}).get(kind, 0) for a in among)

    paid = [] if cache_hit else [a for a in attempts if not a["cached"]]
    return {
        "api_requests": sum(a["http_requests"] for a in paid),
        # requests that got an error or no answer at all (the SDK's retries included)
        "refused_requests": sum(
            1 for a in paid for st in a.get("http_statuses") or [] if st is None or st >= 400
        ),
        "cached_replies": 0 if cache_hit else len(attempts) - len(paid),
        "cache_hit": cache_hit,
        "replies": len(attempts),
        "input_tokens": tokens("input_tokens", paid),
        "output_tokens": tokens("output_tokens", paid),
        "original_input_tokens": tokens("input_tokens", attempts),
        "original_output_tokens": tokens("output_tokens", attempts),
    }
