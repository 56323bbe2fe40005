"""Secrets, in one place: which environment variables hold keys, which names look secret (never passed into a
sandbox), redacting key values from anything kept, and the scan for keys in files and records (the audit's,
and the refusal before anything is exported or pushed)."""

from __future__ import annotations

import base64
import bisect
import json
import os
import re
from functools import cache
from pathlib import Path

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


# An absolute local path (not a URL's path): folders of at least two levels
_LOCAL_PATH = re.compile(r"(?<![\w.~/:-])/(?:[\w.+@-]+/){2,}[\w.+@-]*")


def hide_local_paths(text: str, named: dict[str, str] | None = None) -> str:
    """``text`` for a provider: the folders in ``named`` by their names (the revision's tree → ``<repo>``), any
    other absolute path cut to its last two parts (``.../numpy/core.py``): this machine's layout (users, project
    folders) never leaves it."""
    for path, name in sorted((named or {}).items(), key=lambda kv: -len(kv[0])):
        text = text.replace(path, name)

    def short(m: re.Match) -> str:
        parts = m.group(0).rstrip("/").split("/")
        return ".../" + "/".join(parts[-2:])

    return _LOCAL_PATH.sub(short, text)


SECRET_PATTERNS = {
    "Anthropic key": r"sk-ant-[A-Za-z0-9_-]{20,}",
    "OpenAI key": r"sk-(?!ant-)(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}",
    "Hugging Face token": r"hf_[A-Za-z0-9]{30,}",
    "GitHub token": r"(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,})",
    "AWS access key": r"(?:AKIA|ASIA)(?!IOSFODNN7EXAMPLE)[0-9A-Z]{16}",  # not the documentation's example key
    "Slack token": r"xox[abposr]-[A-Za-z0-9-]{10,}",
    "Google API key": r"AIza[0-9A-Za-z_-]{35}",
    # PEM (PKCS#1, PKCS#8, SEC1, encrypted, OpenSSH) and PGP private key blocks
    "private key": r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
    "OpenSSH private key": r"openssh-key-v1\x00",  # the binary form, inside a decoded key body
    "bearer token": r"(?:Authorization|authorization): *[Bb]earer +[A-Za-z0-9._~+/-]{16,}",
    # crypt(3) password hashes, as in /etc/shadow: sha512/sha256-crypt, yescrypt, bcrypt, md5-crypt
    "password hash (shadow line)": r"\$(?:[56]\$(?:rounds=\d+\$)?[./A-Za-z0-9]{1,16}\$[./A-Za-z0-9]{43,86}"
    r"|(?:y|gy|7)\$[./A-Za-z0-9]{1,12}\$[./A-Za-z0-9]{1,64}\$[./A-Za-z0-9]{43}"
    r"|2[abxy]\$\d\d\$[./A-Za-z0-9]{53}|1\$[./A-Za-z0-9]{1,8}\$[./A-Za-z0-9]{22})",
}
# One regex per shape (each starts with a literal, which the regex engine finds fast; one alternation of all
# of them is ten times slower). A shape not in _ANYWHERE must start a word.
_ANYWHERE = ("private key", "OpenSSH private key", "password hash (shadow line)")  # distinctive anywhere
_SHAPES = [(kind, re.compile(p.encode()), kind not in _ANYWHERE) for kind, p in SECRET_PATTERNS.items()]
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
# base64, standard or URL-safe, long enough to hide a key; line breaks (real, or JSON's \n and \r) may wrap it
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-\r\n")
_B64_MAP = bytes(ord("a") if c in _B64 else ord(" ") for c in range(256))
_B64_RUN = re.compile(b"a" * 24 + b"a*")
_URLSAFE = bytes.maketrans(b"-_", b"+/")
MIN_KNOWN = 12  # a known secret shorter than this is not looked for: too likely to occur by chance


def _starts_word(data: bytes, at: int) -> bool:
    """Whether ``data[at:]`` starts a word: JSON escapes (\\n, \\t, ...) count as separators, so that a key
    starting a line inside a JSON string is found."""
    return (
        at == 0
        or data[at - 1] not in _WORD
        or (at >= 2 and data[at - 2] == 0x5C and data[at - 1] in b"nrtbf")
    )


def _look(data: bytes, known: dict[bytes, str], hits: dict[str, int], note: str, where) -> None:
    """Record the shapes and the known values in ``data`` (``where(offset)``: the offset to report)."""
    for kind, pattern, word in _SHAPES:
        if kind + note not in hits:
            at = next(
                (m.start() for m in pattern.finditer(data) if not word or _starts_word(data, m.start())), -1
            )
            if at >= 0:
                hits[kind + note] = where(at)
    for value, name in known.items():
        at = data.find(value)
        if at >= 0:
            hits.setdefault(name + note, where(at))


def _runs(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, base64 characters) of each run of ``data`` that may be base64 (JSON's \\n and \\r are read as the
    line breaks they stand for: byte for byte, so that offsets stay those of ``data``)."""
    flat = data.replace(b"\\n", b"\r\n").replace(b"\\r", b"\r\r")
    out = []
    for m in _B64_RUN.finditer(flat.translate(_B64_MAP)):
        run = flat[m.start() : m.end()].translate(None, b"\r\n")
        if len(run) >= 16:
            out.append((m.start(), run))
    return out


def _decoded(run: bytes) -> list[bytes]:
    """``run`` decoded as base64 from each of its first four characters (where the encoding starts is unknown)."""
    run = run.translate(_URLSAFE)
    out = []
    for shift in range(4):
        part = run[shift:]
        part = part[: len(part) - len(part) % 4]
        if len(part) >= 16:
            out.append(base64.b64decode(part))
    return out


@cache
def base64_forms(value: bytes) -> tuple[bytes, ...]:
    """The base64 of ``value`` wherever it starts in what was encoded (three alignments), standard and URL-safe:
    the characters that depend on its bytes alone."""
    forms: list[bytes] = []
    for k in range(3):
        encoded = base64.b64encode(b"\0" * k + value)
        total = k + len(value)
        middle = encoded[(0, 2, 3)[k] : 4 * (total // 3) + total % 3]
        if len(middle) >= 16:
            forms += [middle, middle.translate(bytes.maketrans(b"+/", b"-_"))]
    return tuple(forms)


def secret_hits(data: bytes, known: dict[bytes, str]) -> dict[str, int]:
    """What in ``data`` looks like a secret -> its first byte offset (no part of the value is kept): key shapes,
    private keys and password hashes, the ``known`` values (value -> what it is), and all of these once or twice
    base64-encoded (a hit inside base64 is reported at the offset of its run)."""
    hits: dict[str, int] = {}
    _look(data, known, hits, "", lambda at: at)
    runs = _runs(data)
    if not runs:
        return hits
    joined = b"\n".join(run for _, run in runs)
    for value, name in known.items():  # a known value's base64, at any of the three alignments
        forms = [form for form in base64_forms(value) if form in joined]
        if forms:
            hits.setdefault(f"{name} (base64)", next(at for at, run in runs if any(f in run for f in forms)))
    for note in (" (base64)", " (base64, twice)"):
        chunks, origins, starts, at = [], [], [], 0
        for origin, run in runs:
            for decoded in _decoded(run):
                chunks.append(decoded)
                origins.append(origin)
                starts.append(at)
                at += len(decoded) + 1
        if not chunks:
            break
        blob = b"\0".join(chunks)

        def where(offset: int, origins=origins, starts=starts) -> int:
            return origins[bisect.bisect_right(starts, offset) - 1]

        _look(blob, known, hits, note, where)
        runs = [(where(offset), run) for offset, run in _runs(blob)]
    return hits


def known_values(variables) -> dict[bytes, str]:
    """Secrets to look for by value: those of the key ``variables`` set here, and those of the host's secret
    files (``host_secrets``)."""
    out = dict(host_secrets())
    for name in variables:
        if len(os.environ.get(name, "")) >= 8:
            out[os.environ[name].encode()] = f"the value of {name} (set in this environment)"
    return out


def refuse_secrets(rows: list[dict], where: str, variables: list[str]) -> None:
    """Nothing that the secret scan flags is published: one line naming the first line and field that hold
    something like a secret, and what it looks like (never the value). The dataset is scanned as one text."""
    known = known_values(variables)
    texts = [json.dumps(row, ensure_ascii=False).encode() for row in rows]
    hits = secret_hits(b"\n".join(texts), known)
    if not hits:
        return
    first, starts, at = min(hits.values()), [], 0
    for text in texts:
        starts.append(at)
        at += len(text) + 1
    index = max(bisect.bisect_right(starts, first) - 1, 0)
    row = rows[index]
    field, kinds = _field_of(row, known)
    raise IsobenchError(
        f"{where}: line {index + 1} ({row.get('instance_id')}), field {field}: looks like a secret "
        f"({', '.join(sorted(kinds or hits))}); nothing was published (remove it, or rebuild the record, then run "
        "isobench audit)"
    )


def _field_of(row, known: dict[bytes, str], path: str = "") -> tuple[str, dict[str, int]]:
    """The first field of ``row`` (a dotted path) holding something the scan flags, and what it holds."""
    if isinstance(row, dict):
        items = row.items()
    elif isinstance(row, list):
        items = ((f"[{i}]", v) for i, v in enumerate(row))
    else:
        hits = secret_hits(json.dumps(row, ensure_ascii=False).encode(), known)
        return (path or "(top level)", hits) if hits else ("", {})
    for key, value in items:
        sub = f"{path}{key}" if str(key).startswith("[") else f"{path}.{key}" if path else str(key)
        found = _field_of(value, known, sub)
        if found[1]:
            return found
    return (path or "(the line)", {})


# The host's secret files, which the sandbox hides from tests: if their contents leak into a dataset anyway,
# the dataset is refused. Only distinctive values are taken from them (hashes, key bodies, tokens).
HOST_SECRET_FILES = (
    "/etc/shadow",
    "/etc/gshadow",
    "~/.ssh/id_*",
    "~/.netrc",
    "~/.aws/credentials",
    "~/.config/gh/hosts.yml",
    "~/.docker/config.json",
    "~/.git-credentials",
    "~/.pypirc",
    "~/.npmrc",
    "~/.kube/config",
    "~/.cache/huggingface/token",
    "~/.huggingface/token",
    "~/.config/gcloud/application_default_credentials.json",
)
SECRET_FILES_ENV = "ISOBENCH_SECRET_FILES"  # more files to treat the same way (os.pathsep between them)
_PEM_BODY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----\s*\n(.*?)-----END [A-Z0-9 ]*PRIVATE KEY", re.S
)
_CRYPT_FIELD = re.compile(r"^[^:\s]+:!*(\$[^:\s]{19,}):", re.M)  # a locked account (!) keeps its hash
_ASSIGNED = re.compile(
    r"""(?ix)["']?([\w.-]*(?:pass|secret|token|key|auth|credential)[\w.-]*)["']?\s*(?:[:=]\s*|\s+)["']?"""
    r"""([^\s"',;]{12,})"""
)
_URL_PASSWORD = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:([^@\s/]{8,})@", re.I)


def secrets_in_text(text: str) -> set[str]:
    """The distinctive secret values of one secret file: private key bodies (a few lines of each), password
    hashes, values assigned to a name that says secret (token, password, key, auth, ...), URL passwords, a file
    that is one long token. Short values are never taken (a false alarm on every dataset)."""
    found = set()
    for body in _PEM_BODY.findall(text):
        lines = [line.strip() for line in body.splitlines() if len(line.strip()) >= 40]
        found.update(lines[1:-1][:6] or lines[:1])  # not the first line: an OpenSSH key's starts alike
    for field in _CRYPT_FIELD.findall(text):
        found.add(field)
        found.add(field.rsplit("$", 1)[-1])
    found.update(m.group(2) for m in _ASSIGNED.finditer(text) if not m.group(2).startswith("$"))
    found.update(_URL_PASSWORD.findall(text))
    token = text.strip()
    if len(token) >= 20 and not any(c.isspace() for c in token):
        found.add(token)
    return {v for v in found if len(v) >= MIN_KNOWN and len(set(v)) >= 6}


def host_secret_paths() -> list[Path]:
    extra = [p for p in os.environ.get(SECRET_FILES_ENV, "").split(os.pathsep) if p]
    # the Hub's token where the Hugging Face variables put it (the sandbox hides these files from tests too)
    extra += [os.environ[v] for v in ("HF_TOKEN_PATH",) if os.environ.get(v)]
    extra += [f"{os.environ['HF_HOME']}/{n}" for n in ("token", "stored_tokens") if os.environ.get("HF_HOME")]
    out = []
    for pattern in (*HOST_SECRET_FILES, *extra):
        expanded = Path(os.path.expanduser(pattern))
        matches = sorted(expanded.parent.glob(expanded.name)) if "*" in expanded.name else [expanded]
        out += [p for p in matches if not p.name.endswith(".pub")]
    return out


def host_secrets() -> dict[bytes, str]:
    """value -> what it is, for the secret files of this host that this process can read (HOST_SECRET_FILES,
    ``~`` being $HOME, and the files named in ISOBENCH_SECRET_FILES)."""
    out = {}
    for path in host_secret_paths():
        try:
            with open(path, "rb") as fh:
                text = fh.read(1 << 20).decode("utf-8", "replace")
        except OSError:
            continue
        for value in secrets_in_text(text):
            out[value.encode()] = f"the contents of {path} (a host secret file)"
    return out
