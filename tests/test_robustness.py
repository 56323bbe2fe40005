"""One bad input never costs the others, and nothing earned is thrown away: caches, mirrors, base's self-check,
isolation, secrets on the way out, file modes, config messages, dependencies (issue-level cases; the workflow
cases are in test_failures_workflow.py)."""

import importlib.metadata
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import FIXTURES, ROOT

from isobench import config, git, run_bounds
from isobench import plan as planning
from isobench.cli import main as cli
from isobench.config import SCHEMA
from isobench.dataset import damaged_records, write_dataset, write_record
from isobench.errors import IsobenchError
from isobench.jsonio import validate, write_json
from isobench.llm import LLMSettings, sdk_base_url
from isobench.measure import sandbox
from isobench.measure.cache import MeasurementCache
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit
from isobench.measure.sandbox import SandboxSettings
from isobench.secrecy import refuse_secrets

FAST = Settings(rounds=3, max_rounds=3, warmup=0, warmup_ms=0, repeat=2, timeout_s=60)
FUNCTIONS = """
import json, os, random
import toy

def setup():
    return 2000

def experiment(n):
    return RESULT

def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(reference, current):
    assert reference == current, (reference, current)
"""


def measure(tmp_path, revisions, result="toy.work(n)", **kw):
    gen = tmp_path / "generator.py"
    gen.write_text(FUNCTIONS.replace("RESULT", result))
    timings = measure_commit(gen, revisions, tmp_path / "scratch", kw.pop("settings", FAST), **kw)
    for t in timings.values():
        validate(t, "timing", t["revision"])
    return timings


def test_a_nondeterministic_test_is_named_at_base_never_blamed_on_head(tmp_path, revisions):
    t = measure(tmp_path, revisions, result="random.random()")
    assert (t["base"]["status"], t["base"]["category"]) == ("failed", "nondeterministic")
    assert "nondeterministic" in t["base"]["error"] and len(t["base"]["rounds_ms"]) == 1  # round 1 is kept
    for name in ("head", "main"):  # their mismatch in round 1 says nothing about their code
        assert t[name]["category"] == "nondeterministic" and t[name]["equivalent"] is None
    deterministic = measure(tmp_path, revisions)
    assert all(x["status"] == "ok" for x in deterministic.values())


def test_failing_in_round_one_is_not_a_time_limit(tmp_path, revisions):
    t = measure(tmp_path, revisions, result="toy.no_such_function(n)")
    for x in t.values():
        assert x["category"] == "experiment_error"
        assert not any("time limit" in w for w in x["warnings"])


def test_a_cache_that_cannot_be_written_keeps_the_timings(tmp_path, caplog):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    cache = MeasurementCache(blocker / "measure")
    cache.put("ab" * 32, {"base": {}, "head": {}, "main": {}})  # no exception: a warning
    assert "cannot be written" in caplog.text


def test_invalid_cache_entries_are_misses(tmp_path, revisions):
    t = measure(tmp_path, revisions)
    timings = {n: {**x, "measurement": {"key": "k", "cached": False}} for n, x in t.items()}
    cache = MeasurementCache(tmp_path / "cache")
    key = "cd" * 32
    cache.put(key, timings)
    assert cache.get(key) == timings
    path = tmp_path / "cache" / key[:2] / f"{key}.json"
    for bad in (
        {"cache_version": 1, "timings": {}},
        {"cache_version": 1, "timings": {**timings, "head": {**timings["head"], "status": "maybe"}}},
        {
            "cache_version": 1,
            "timings": {n: {k: v for k, v in x.items() if k != "measurement"} for n, x in timings.items()},
        },
    ):
        write_json(path, bad)
        assert cache.get(key) is None
    path.write_text("{truncated")
    assert cache.get(key) is None
    cache.put(key, timings)  # replaced by the next measurement
    assert cache.get(key) == timings


def _repo(path: Path, text: str) -> str:
    path.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=path, check=True, capture_output=True, text=True).stdout  # noqa
    run("init", "-q", "-b", "main")
    (path / "f.txt").write_text(text)
    run("add", "-A")
    run("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", text)
    return run("rev-parse", "HEAD").strip()


def test_a_mirror_follows_its_source_repo(tmp_path, capsys):
    a, b = _repo(tmp_path / "a", "upstream"), _repo(tmp_path / "b", "fork")
    mirror = tmp_path / "m.git"
    git.ensure_mirror(str(tmp_path / "a"), mirror, identity=str(tmp_path / "a"))
    assert git.resolve(mirror, a) == a
    git.ensure_mirror(str(tmp_path / "b"), mirror, identity=str(tmp_path / "b"))  # repo: changed
    assert git.resolve(mirror, b) == b and git.resolve(mirror, a) is None
    assert "mirroring it afresh" in capsys.readouterr().err
    moved = tmp_path / "b-moved"
    (tmp_path / "b").rename(
        moved
    )  # same source (identity), new place: the remote follows, nothing is re-cloned
    git.ensure_mirror(str(moved), mirror, identity=str(tmp_path / "b"))
    assert "afresh" not in capsys.readouterr().err
    assert git.git("config", "--get", "remote.origin.url", cwd=mirror).strip() == str(moved.resolve())


def test_without_isolation_no_test_runs_unless_allowed(tmp_path, revisions, monkeypatch, capsys):
    # This host has bubblewrap, namespaces and Landlock: take them away at the boundary that probes the OS.
    monkeypatch.setattr(sandbox.view, "bwrap_works", lambda: "bubblewrap (bwrap) is not installed")
    monkeypatch.setattr(sandbox, "namespace_prefix", lambda net=True: ())
    monkeypatch.setattr(sandbox.sandbox_exec, "landlock_abi", lambda: 0)
    t = measure(tmp_path, revisions)
    assert {x["category"] for x in t.values()} == {"isolation_unavailable"}
    assert "sandbox.require_isolation: false" in t["base"]["error"] and t["base"]["samples_ms"] == []
    assert "apt-get install bubblewrap" in t["base"]["error"]
    allowed = measure(tmp_path, revisions, sandbox=SandboxSettings(require_isolation=False))
    assert all(x["status"] == "ok" for x in allowed.values())
    config = {"sources": {"s": {"repo": "x"}}}
    lines = run_bounds.isolation_lines(config, SCHEMA)
    assert len(lines) == 1 and "isolation unavailable on this host" in lines[0]
    config["sandbox"] = {"require_isolation": False}
    assert "WITHOUT isolation" in run_bounds.isolation_lines(config, SCHEMA)[0]


def test_a_test_cannot_read_the_workflows_keys_from_its_parents(tmp_path, revisions):
    """A job process born with a key in its environment (as Snakemake's jobs are) measures a test that scans every
    /proc/<pid>/environ for it; the same scan outside the sandbox finds it (the probe works)."""
    probe = textwrap.dedent("""
        import glob
        def scan():
            found = []
            for path in glob.glob("/proc/[0-9]*/environ"):
                try:
                    if b"PARENT-ENVIRON" in open(path, "rb").read():
                        found.append(path)
                except OSError:
                    pass
            return found
    """)
    gen = tmp_path / "probe.py"
    gen.write_text(
        FUNCTIONS.replace("RESULT", "toy.work(n)").replace(
            "def setup():\n", probe + "\ndef setup():\n    assert not scan(), scan()\n"
        )
    )
    (tmp_path / "scan.py").write_text(probe + "\nprint(len(scan()))\n")
    driver = textwrap.dedent(f"""
        import json, subprocess, sys
        from pathlib import Path
        from isobench.measure.job import Revision, Settings
        from isobench.measure.rounds import measure_commit
        revs = [Revision(n, str(i) * 40, Path({str(revisions[0].worktree.parent)!r}) / n)
                for i, n in enumerate(("base", "head", "main"))]
        t = measure_commit(Path({str(gen)!r}), revs, Path({str(tmp_path / "scratch")!r}),
                           Settings(rounds=2, max_rounds=2, warmup=0, warmup_ms=0, repeat=1, timeout_s=60))
        seen = subprocess.run([sys.executable, {str(tmp_path / "scan.py")!r}], capture_output=True, text=True)
        print(json.dumps({{"base": [t["base"]["status"], t["base"]["error"], t["base"]["sandbox"]],
                          "unsandboxed_finds": int(seen.stdout)}}))
    """)
    env = {**os.environ, "OPENAI_API_KEY": "sk-test-PARENT-ENVIRON-0123456789", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", driver], env=env, capture_output=True, text=True, timeout=300)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["unsandboxed_finds"] >= 1  # the job process's environ holds the key and the probe sees it
    status, error, protections = result["base"]
    assert status == "ok", error  # ... but not from inside the sandbox
    assert protections["pid_namespace"] is True


def test_export_and_push_refuse_what_the_secret_scan_flags(tmp_path, capsys):
    rows = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]
    refuse_secrets(rows, "d.jsonl", [])  # the demo dataset is clean
    rows[2]["notes"] = "debug: sk-ant-api03-" + "x" * 40
    with pytest.raises(IsobenchError, match=r"d.jsonl: line 3 .*looks like a secret \(Anthropic"):
        refuse_secrets(rows, "d.jsonl", [])
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "export"
    assert cli(["export", "--dataset", str(dataset), "--out", str(out), "-d", str(ROOT)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "looks like a secret" in err and "sk-ant" not in err
    assert not out.exists()
    assert cli(["push", "org/name", "--dataset", str(dataset), "--dry-run", "-d", str(ROOT)]) == 1


@pytest.mark.parametrize("umask, mode", [(0o002, 0o664), (0o022, 0o644), (0o077, 0o600)])
def test_files_get_the_umasks_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        from isobench.jsonio import file_mode

        file_mode.cache_clear()
        write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
        file_mode.cache_clear()
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == mode


def test_unwritable_places_are_one_line(tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(
        IsobenchError, match=r"results/x.json: cannot write \(File exists\); check the folder"
    ):
        write_json(blocker / "x.json", {})


def test_config_errors_name_the_file_and_line(tmp_path):
    schema = SCHEMA
    base = tmp_path / "config.yaml"
    base.write_text((ROOT / "config" / "config.yaml").read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text("measure:\n  rounds: [1\n  warmup: 2\n")
    with pytest.raises(IsobenchError, match=r"bad.yaml: not YAML at line \d+, column \d+"):
        config.load_config(base, schema, [bad])
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("measure:\n  rounds: many\n")
    with pytest.raises(IsobenchError) as exc:
        config.load_config(base, schema, [wrong])
    assert str(exc.value).startswith(
        f"{wrong}: field measure.rounds"
    )  # the file that set it, not config.yaml


def test_no_commit_to_measure_is_an_error_before_any_work(tmp_path, monkeypatch, demo):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "empty").mkdir()
    cfg = {
        "prompt_template": str(ROOT / "prompts" / "test_generator.md"),
        "sources": {
            "demo": {"repo": "isobench:demo", "extractions": "empty", "commits": [], "main_ref": "main"}
        },
    }
    with pytest.raises(IsobenchError, match="no commit to measure .* the dataset was left as it is"):
        planning.plan_sources(cfg, prepare=True)


def test_a_missing_model_is_caught_at_planning(tmp_path, monkeypatch, demo):
    monkeypatch.chdir(tmp_path)
    _, shas = demo
    cfg = {
        "prompt_template": str(ROOT / "prompts" / "test_generator.md"),
        "llm": {"model": None},
        "sources": {
            "demo": {
                "repo": "isobench:demo",
                "commits": [shas["primes"]],
                "main_ref": "main",
                "generators": str(ROOT / "demo" / "generators"),
            }
        },
    }
    plans = planning.plan_sources(cfg, prepare=True)
    run_bounds.check_llm_work(cfg, plans, SCHEMA)  # it has a pre-generated script
    cfg["sources"]["demo"]["commits"].append(shas["docs-dev"])
    plans = planning.plan_sources(cfg, prepare=True)
    with pytest.raises(
        IsobenchError, match=r"config: field llm.model: not set, and 1 commit\(s\) of source demo"
    ):
        run_bounds.check_llm_work(cfg, plans, SCHEMA)


def test_anthropic_base_url_works_however_it_is_written():
    for url in ("http://h:1", "http://h:1/", "http://h:1/v1", "http://h:1/v1/"):
        assert sdk_base_url(LLMSettings(provider="anthropic", model="m", base_url=url)) == "http://h:1"
    assert (
        sdk_base_url(LLMSettings(provider="openai", model="m", base_url="http://h:1/v1")) == "http://h:1/v1"
    )


def test_damaged_records_are_set_aside_and_the_dataset_kept(tmp_path, capsys):
    rows = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]
    paths = []
    for i, row in enumerate(rows):
        paths.append(tmp_path / f"r{i}" / "record.json")
        write_record(paths[-1], row)
    dataset = tmp_path / "dataset.jsonl"
    assert write_dataset(paths, dataset) == 7
    before = dataset.read_bytes()
    paths[3].write_text(paths[3].read_text()[:200])  # truncated
    with pytest.raises(
        IsobenchError, match=r"r3/record.json: damaged record \(set aside as record.json.damaged-"
    ):
        write_dataset(paths, dataset)
    assert dataset.read_bytes() == before  # never destroyed
    assert not paths[3].exists() and list(paths[3].parent.glob("record.json.damaged-*"))
    write_json(paths[4], {**rows[4], "status": "fine"})  # parses, fails the schema
    assert damaged_records(paths) == list(paths[4].parent.glob("record.json.damaged-*"))
    assert "damaged record" in capsys.readouterr().err


def test_export_push_and_report_need_no_extra():
    required = [r for r in importlib.metadata.requires("isobench") if "extra ==" not in r]
    names = {r.split(">")[0].split("=")[0].split("<")[0].strip().lower().replace("_", "-") for r in required}
    assert {"datasets", "huggingface-hub", "pygments"} <= names


def test_audit_piped_into_head_ends_quietly(tmp_path):
    rows = [json.loads(line) for line in (FIXTURES / "demo_dataset.jsonl").read_text().splitlines()]
    many = [{**r, "head_commit": f"{i:040x}"} for i in range(2000) for r in rows[:1]]
    dataset = tmp_path / "big.jsonl"
    dataset.write_text("".join(json.dumps(r) + "\n" for r in many))  # far more than a pipe holds
    cmd = f"{sys.executable} -m isobench.cli summary --dataset {dataset} -d {ROOT} | head -1"
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=300)
    assert proc.stdout.startswith("commit") and proc.stderr == ""  # no "Broken pipe", no traceback


def test_check_names_the_configfile_and_line(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("measure:\n  rounds: [1\n  warmup: 2\n")
    assert cli(["check", "-d", str(ROOT), "--configfile", str(bad)]) == 1
    assert f"{bad}: not YAML at line 3" in capsys.readouterr().err
    assert cli(["check", "-d", str(ROOT)]) == 0 and "config OK" in capsys.readouterr().out
