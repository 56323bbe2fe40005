"""Secrets, in one place: which environment variables hold keys, which names look secret (never passed into a
sandbox), redacting key values from anything kept, and the scan for keys in files and records (the audit's,
and the refusal before anything is exported or pushed)."""

from __future__ import annotations

import json
import os
import re

from .errors import IsobenchError

PROVIDER_KEY_ENV = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}  # an LLM provider's default
KEY_ENVS = tuple(PROVIDER_KEY_ENV.values())  # the LLM providers' default key variables
HUB_TOKEN_ENV = "HF_TOKEN"  # the Hugging Face Hub's token (isobench push)
ALL_KEY_ENVS = (*KEY_ENVS, HUB_TOKEN_ENV)  # every variable whose value the audit and the refusals look for
REDACTED = "[REDACTED]"
# A variable whose name looks like this never reaches a test, even when allowed ...
SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL|AUTH|COOKIE|SESSION|^AWS_|^AZURE_|^GOOGLE_|^GCP_|^GH_|"
    r"^GITHUB_|^HF_|^HUGGING|^OPENAI|^ANTHROPIC|^WANDB",
    re.I,
)
# ... except these Hugging Face variables, which name a cache folder or say "offline" (HF_TOKEN never passes).
NOT_SECRET = frozenset(
    (
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "TRANSFORMERS_CACHE",
        "TRANSFORMERS_OFFLINE",
        "HF_DATASETS_CACHE",
        "HF_DATASETS_OFFLINE",
    )
)


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it may hold a secret."""
    return name not in NOT_SECRET and bool(SECRET_NAME.search(name))


def secret_values(extra_names=()) -> list[str]:
    """The key values present in the environment (the providers' and ``extra_names``): never written anywhere."""
    names = set(KEY_ENVS) | {n for n in extra_names if n}
    return [v for v in (os.environ.get(n, "") for n in sorted(names)) if len(v) >= 4]


def redact(obj, values: list[str]):
    """``obj`` (str, list, dict) with every secret value replaced by [REDACTED]."""
    if isinstance(obj, str):
        for v in values:
            obj = obj.replace(v, REDACTED)
        return obj
    if isinstance(obj, list):
        return [redact(x, values) for x in obj]
    if isinstance(obj, dict):
        return {k: redact(v, values) for k, v in obj.items()}
    return obj


SECRET_PATTERNS = {
    "Anthropic key": r"sk-ant-[A-Za-z0-9_-]{20,}",
    "OpenAI key": r"sk-(?!ant-)(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}",
    "Hugging Face token": r"hf_[A-Za-z0-9]{30,}",
    "GitHub token": r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
    "AWS access key": r"(?:AKIA|ASIA)(?!IOSFODNN7EXAMPLE)[0-9A-Z]{16}",  # not the documentation's example key
    "Slack token": r"xox[abposr]-[A-Za-z0-9-]{10,}",
    "Google API key": r"AIza[0-9A-Za-z_-]{35}",
    "private key": r"-----BEGIN (?:RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----",
    "bearer token": r"[Aa]uthorization: *[Bb]earer +[A-Za-z0-9._~+/-]{16,}",
}
_SECRETS = re.compile(
    "|".join(f"(?<![A-Za-z0-9_])(?P<p{i}>{p})" for i, p in enumerate(SECRET_PATTERNS.values())).encode()
)
# JSON escapes (\n, \t, ...) are read as separators, so a key starting a line inside a JSON string is found.
_ESCAPE = re.compile(rb'\\[nrtbf"\\/]')


def secret_hits(data: bytes, known: dict[str, bytes]) -> dict[str, int]:
    """What in ``data`` looks like a key -> its first byte offset (no part of the value is kept)."""
    hits: dict[str, int] = {}
    for text in (data, _ESCAPE.sub(b"  ", data)):  # two bytes for two: offsets stay those of the file
        for m in _SECRETS.finditer(text):
            hits.setdefault(list(SECRET_PATTERNS)[int(m.lastgroup[1:])], m.start())
    for name, value in known.items():
        if value in data:
            hits.setdefault(f"the value of {name} (set in this environment)", data.index(value))
    return hits


def known_values(variables) -> dict[str, bytes]:
    return {name: os.environ[name].encode() for name in variables if len(os.environ.get(name, "")) >= 8}


def refuse_secrets(rows: list[dict], where: str, variables: list[str]) -> None:
    """Nothing that the secret scan flags is published: one line naming the first record and what it looks like."""
    known = known_values(variables)
    for number, row in enumerate(rows, 1):
        hits = secret_hits(json.dumps(row, ensure_ascii=False).encode(), known)
        if hits:
            kinds = ", ".join(sorted(hits))
            raise IsobenchError(
                f"{where}: line {number} ({row.get('instance_id')}): looks like a secret ({kinds}); "
                "nothing was published (remove it, or rebuild the record, then run isobench audit)"
            )
