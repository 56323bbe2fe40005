"""Secrets never leave (issue 23): the scan before export and push finds private keys, password hashes of
shadow files and the contents of the host's secret files (the ones the sandbox hides from tests), plain or
base64-encoded at any alignment, and refuses with one line naming the line and field, never the value."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FIXTURES

from isobench.errors import IsobenchError
from isobench.secrecy import SECRET_FILES_ENV, host_secrets, refuse_secrets, secret_hits

ROWS = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """A HOME with a real private key (ssh-keygen), an AWS credentials file, a netrc and a Hub token; a
    shadow-format file with real password hashes (openssl passwd) named by ISOBENCH_SECRET_FILES."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    sh(
        "ssh-keygen",
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        "planted",
        "-f",
        str(home / ".ssh" / "id_ed25519"),
    )
    (home / ".aws").mkdir()
    (home / ".aws" / "credentials").write_text(
        "[default]\naws_access_key_id = AKIAQ3EGUNUSEDKEY7XZ\naws_secret_access_key = "
        "tq8Vb2rJ/kW9cLxZ0mNp4sYdE1fGh7iUoR3aTvB6\nregion = eu-west-1\n"
    )
    (home / ".netrc").write_text(
        "machine example.org login me password Zx9!qT4w$Lm2vR8k\nmachine b password short\n"
    )
    (home / ".cache" / "huggingface").mkdir(parents=True)
    (home / ".cache" / "huggingface" / "token").write_text("hf_" + "Qw3rTy" * 6 + "\n")
    hashes = [sh("openssl", "passwd", f"-{n}", "-salt", "s4ltS4lt", "hunter2").strip() for n in (6, 5, 1)]
    shadow = tmp_path / "shadow"
    shadow.write_text(
        "root:*:19000:0:99999:7:::\n"
        + "".join(f"user{i}:{h}:19000:0:99999:7:::\n" for i, h in enumerate(hashes))
        + "nobody:!:19000::::::\n"
    )
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(SECRET_FILES_ENV, str(shadow))
    return home


LEAKING_TEST = '''
"""A generated test that reads what it must not, and carries it out in its error, base64-encoded."""
import base64, os, sys

def setup():
    key = open(os.path.expanduser("~/.ssh/id_ed25519"), "rb").read()
    shadow = open(os.environ["SHADOW"], "rb").read()
    raise RuntimeError("setup failed; context: " + base64.b64encode(b"ctx" + key + shadow).decode())

def experiment(data):
    return data

if __name__ == "__main__":
    setup()
'''


def leaked_error(tmp_path: Path, home: Path) -> str:
    """The error a measurement would record: the tail of the test's stderr."""
    script = tmp_path / "generator.py"
    script.write_text(LEAKING_TEST)
    env = {**os.environ, "HOME": str(home), "SHADOW": os.environ[SECRET_FILES_ENV]}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, env=env)
    assert proc.returncode == 1 and "RuntimeError: setup failed" in proc.stderr
    return proc.stderr[-4000:]


def with_error(error: str, line: int = 3) -> list[dict]:
    rows = json.loads(json.dumps(ROWS))
    rows[line - 1]["revisions"]["head"]["error"] = error
    return rows


def test_private_keys_and_password_hashes_are_found_plain_and_base64(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # nothing known: found by their shape alone
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "k"))
    sh(
        "openssl",
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:1024",
        "-out",
        str(tmp_path / "r"),
    )
    openssh, rsa = (tmp_path / "k").read_text(), (tmp_path / "r").read_text()
    body = "".join(openssh.splitlines()[1:-1])
    shadow = (
        "alice:" + sh("openssl", "passwd", "-6", "-salt", "pepper", "correct horse").strip() + ":19000:::"
    )
    b64 = lambda text: base64.b64encode(text.encode()).decode()  # noqa: E731
    cases = {
        "private key": [openssh, rsa],
        "private key (base64)": [b64(openssh), b64("x" + rsa), b64("yz" + openssh)],
        "OpenSSH private key (base64)": [body],  # the body alone, its header cut off
        "OpenSSH private key (base64, twice)": [b64(body)],
        "password hash (shadow line)": [shadow],
        "password hash (shadow line) (base64)": [b64("root:x\n" + shadow)],
    }
    for kind, texts in cases.items():
        for text in texts:
            for wrapped in (text, "\n".join(text[i : i + 76] for i in range(0, len(text), 76))):
                data = json.dumps({"error": "Traceback:\n" + wrapped}).encode()
                assert kind in secret_hits(data, {}), (kind, wrapped[:80])
    clean = json.dumps(ROWS).encode()
    assert secret_hits(clean, {}) == {}  # the demo dataset, its patches, scripts and samples: nothing


def test_the_host_secret_files_are_found_plain_and_base64_at_every_alignment(home):
    known = host_secrets()
    kinds = set(known.values())
    assert {
        f"the contents of {home / p} (a host secret file)" for p in (".ssh/id_ed25519", ".netrc")
    } <= kinds
    values = {v.decode() for v in known}
    assert "tq8Vb2rJ/kW9cLxZ0mNp4sYdE1fGh7iUoR3aTvB6" in values and "Zx9!qT4w$Lm2vR8k" in values
    assert (
        "short" not in values and "eu-west-1" not in values and "root" not in values
    )  # never short or common
    aws = "tq8Vb2rJ/kW9cLxZ0mNp4sYdE1fGh7iUoR3aTvB6"
    for prefix in ("", "a", "ab", "abc"):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            leak = encode((prefix + "secret=" + aws + "\n").encode()).decode()
            data = json.dumps({"error": "boom " + leak + " end"}).encode()
            hits = secret_hits(data, known)
            assert f"the contents of {home / '.aws' / 'credentials'} (a host secret file) (base64)" in hits, (
                prefix
            )
    middle = base64.b64encode(b"......" + aws.encode() + b"......").decode()[5:-5]  # a piece of a longer run
    assert any(k.endswith("(base64)") for k in secret_hits(json.dumps([middle]).encode(), known))


def test_refusal_names_the_line_and_field_never_the_value(tmp_path, home):
    error = leaked_error(tmp_path, home)
    rows = with_error(error)
    with pytest.raises(IsobenchError) as exc:
        refuse_secrets(rows, "d.jsonl", [])
    message = str(exc.value)
    assert message.startswith(f"d.jsonl: line 3 ({rows[2]['instance_id']}), field revisions.head.error: ")
    assert "private key (base64)" in message and "password hash (shadow line) (base64)" in message
    assert f"the contents of {home / '.ssh' / 'id_ed25519'} (a host secret file) (base64)" in message
    assert "\n" not in message and error.split("context: ")[1][:40] not in message


def isobench(*args: str, env: dict) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "isobench.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


def test_export_and_push_dry_run_refuse_a_test_that_leaked_host_secrets(tmp_path, home, monkeypatch):
    from hub_server import FakeHub

    error = leaked_error(tmp_path, home)
    dataset = tmp_path / "dataset.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in with_error(error)))
    hub = FakeHub().start()
    try:
        env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_TOKEN": hub.token, "HF_HOME": str(tmp_path / "hf")}
        out = tmp_path / "export"
        for args in (
            ["export", "--dataset", str(dataset), "--out", str(out)],
            ["push", "org/name", "--dataset", str(dataset), "--dry-run"],
            ["push", "org/name", "--dataset", str(dataset)],
        ):
            proc = isobench(*args, env=env)
            assert proc.returncode == 1 and proc.stdout == "", (args, proc.stdout)
            assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
            assert "line 3 " in proc.stderr and "field revisions.head.error" in proc.stderr
            assert "private key (base64)" in proc.stderr
            assert error.split("context: ")[1][:40] not in proc.stderr
        assert not out.exists() and not hub.writes()
        # the same dataset with the error redacted is published
        dataset.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
        proc = isobench("push", "org/name", "--dataset", str(dataset), "--dry-run", env=env)
        assert proc.returncode == 0 and "would add" in proc.stdout, proc.stderr
    finally:
        hub.stop()
