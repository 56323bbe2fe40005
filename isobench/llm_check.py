"""Setup mistakes found before money is spent: the LLM endpoint each source's generations will use is asked once,
when a run starts its jobs, if some commit needs an LLM-written test that it does not have yet.

One request per endpoint (the model's entry in the provider's models API, through the same SDK client the
generations use, without retries): a missing key, an endpoint that cannot be reached, a refused key, an unknown
model and a URL without the API's path each stop the run with one line naming the variable or the URL. A
provider that is busy (429, 5xx) is only a warning: the generations retry (``llm.max_retries``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from .errors import IsobenchError
from .llm import LLMSettings, make_client, url_origin

CHECK_TIMEOUT_S = 15.0


def check_endpoint(settings: LLMSettings) -> tuple[str | None, str | None]:
    """(error, warning) of one endpoint: an error stops the run, a warning is said and the run goes on."""
    key_env = settings.key_env
    has_key = bool(os.environ.get(key_env))
    if not has_key and not settings.base_url:
        return f"environment variable {key_env} is not set (the {settings.provider} API key)", None
    url, origin = url_origin(settings)
    where = f"{url} ({origin})"
    quick = dataclasses.replace(
        settings, max_retries=0, timeout_s=min(float(settings.timeout_s), CHECK_TIMEOUT_S)
    )
    client = make_client(quick)
    if settings.provider == "openai":
        import openai as sdk
    else:
        import anthropic as sdk
    try:
        client.models.retrieve(settings.model)
        return None, None
    except sdk.APIConnectionError as exc:  # timeouts included
        return f"cannot reach the {settings.provider} API at {where}: {_cause(exc)}", None
    except (sdk.AuthenticationError, sdk.PermissionDeniedError) as exc:
        said = _said(exc)
        if has_key:
            return f"{where} refused the key in {key_env} (HTTP {exc.status_code}: {said})", None
        return (
            f"{where} asks for a key (HTTP {exc.status_code}: {said}): set {key_env} (or llm.api_key_env)",
            None,
        )
    except sdk.NotFoundError:
        pass
    except (sdk.RateLimitError, sdk.InternalServerError) as exc:
        return None, f"{where} answered HTTP {exc.status_code} to a check; the generations will retry"
    except sdk.APIStatusError as exc:
        return f"{where} answered HTTP {exc.status_code} to a check of llm.model: {_said(exc)}", None
    try:  # 404: an unknown model, or a URL that is not the API's
        served = [m.id for m in client.models.list()]
    except sdk.NotFoundError:
        hint = ""
        if settings.provider == "openai" and not url.rstrip("/").endswith("/v1"):
            hint = f"; OpenAI-compatible servers answer under /v1 (e.g. {url.rstrip('/')}/v1)"
        return f"{where} has no models API (HTTP 404 for {url.rstrip('/')}/models): check the URL{hint}", None
    except sdk.APIError as exc:
        return None, f"{where}: the model could not be checked ({_said(exc)}); the generations will tell"
    if settings.model in served:  # a server that lists models but cannot look one up
        return None, None
    shown = ", ".join(served[:8]) + (f" and {len(served) - 8} more" if len(served) > 8 else "")
    return (
        f"config: field llm.model: {settings.model!r} is not served by {where} (it serves: {shown or 'none'})",
        None,
    )


def _said(exc) -> str:
    body = getattr(exc, "body", None)
    message = body.get("message") if isinstance(body, dict) else None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        message = body["error"].get("message") or message
    text = " ".join(str(message or exc).split())
    return text[:200] + ("…" if len(text) > 200 else "")


def _cause(exc: BaseException) -> str:
    inner = exc.__cause__ or exc.__context__
    text = " ".join(str(inner or exc).split()) or type(inner or exc).__name__
    return text[:200]


# targets whose jobs never generate a test (an evaluation reads a dataset file; the audit has no inputs)
NO_GENERATION_TARGETS = frozenset({"evaluate", "audit"})


def before_jobs(needs: list[tuple[str, LLMSettings, list[str]]], targets) -> None:
    """Snakemake's onstart, so only in a run that executes jobs (not ``-n``, not ``--report``): the endpoints
    asked (``check_all``) unless the targets generate nothing; a mistake ends the run before any job with one
    line (SystemExit), the warnings are said."""
    if targets and set(targets) <= NO_GENERATION_TARGETS:
        return
    try:
        lines = check_all(needs)
    except IsobenchError as exc:
        raise SystemExit(f"isobench: {exc}") from None
    for line in lines:
        sys.stderr.write(line + "\n")


def check_all(needs: list[tuple[str, LLMSettings, list[str]]]) -> list[str]:
    """``needs``: (source, its LLM settings, the commits that will ask the LLM in this run). Each distinct
    endpoint is checked once; the first error stops the run (IsobenchError, one line naming the variable or the
    URL and the commits waiting for it); the warnings are returned as lines to print."""
    checked, lines = set(), []
    for source, settings, keys in needs:
        if not keys:
            continue
        url = url_origin(settings)[0]
        endpoint = (settings.provider, url, settings.key_env, settings.model)
        if endpoint in checked:
            continue
        checked.add(endpoint)
        error, warning = check_endpoint(settings)
        waiting = f"{len(keys)} commit(s) of source {source} need an LLM-written test (e.g. {keys[0][:12]})"
        if error:
            raise IsobenchError(f"llm: {error}; {waiting}")
        if warning:
            lines.append(f"isobench: warning: llm: {warning}")
    return lines


def reset_transient(folders) -> list[str]:
    """The commit folders whose last generation got no reply (no connection, 429 or 5xx after the retries:
    ``llm.transient`` in generator.json) lose their generator outputs, so that this run asks again; their names."""
    again = []
    for folder in map(Path, folders):
        try:
            meta = json.loads((folder / "generator.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        llm = (meta.get("llm") if isinstance(meta, dict) else None) or {}
        if meta.get("status") == "generation_failed" and llm.get("transient"):
            drop_generator_outputs(folder)
            again.append(folder.name)
    return again


GENERATOR_OUTPUTS = ("generator.py", "generator.json", "llm_transcript.json")


def drop_generator_outputs(folder: Path) -> None:
    """The generator rule's outputs of one commit removed: the next run generates its test again (and then
    measures and records it again)."""
    for name in GENERATOR_OUTPUTS:
        (folder / name).unlink(missing_ok=True)
