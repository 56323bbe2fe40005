"""Parse-time planning (isobench.plan) and the step runner's error handling."""

import json
import os
import types

import pytest
from conftest import ROOT

from isobench import plan as planning
from isobench.cli import main
from isobench.errors import IsobenchError
from isobench.jsonio import load_json, write_json
from isobench.steps import run_step


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def source(**kw):
    cfg = {
        "repo": "isobench:demo",
        "extractions": str(ROOT / "demo" / "extractions"),
        "commits": [],
        "main_ref": "main",
    }
    cfg.update(kw)
    return cfg


def test_plan_demo_source(in_tmp, demo):
    _, shas = demo
    plan = planning.plan_source("demo", source(commits=[shas["topk"][:9], "no-such-ref"]), prepare=True)
    assert plan.main_sha == shas["release"]
    assert (in_tmp / "results" / "demo" / "_git" / "mirror.git" / "HEAD").exists()
    assert plan.commits[shas["wordfreq"]].base == shas["readme-usage"]
    assert plan.commits[shas["wordfreq"]].extraction_file.endswith(f"{shas['wordfreq']}.json")
    # a commit named both by a file and by the list is planned once, with its file
    assert plan.commits[shas["topk"]].extraction_file is not None
    # an unresolvable commit stays in the plan: its own step reports the error
    assert plan.commits["no-such-ref"].head is None
    assert len(plan.commits) == 8
    assert shas["release"] in plan.shas()


def test_plan_errors_name_the_field(in_tmp, demo):
    with pytest.raises(IsobenchError, match="field sources.demo.main_ref: 'trunk' is not a commit"):
        planning.plan_source("demo", source(main_ref="trunk"), prepare=True)
    with pytest.raises(IsobenchError, match="field sources.demo.extractions: nowhere is not a directory"):
        planning.plan_source("demo", source(extractions="nowhere"), prepare=True)
    with pytest.raises(IsobenchError, match="field sources.x.repo: .*no such path"):
        planning.plan_source("x", source(repo=str(in_tmp / "missing")), prepare=True)
    with pytest.raises(IsobenchError, match="field sources.demo.generators: nope is not a directory"):
        planning.plan_source("demo", source(generators="nope"), prepare=True)
    with pytest.raises(IsobenchError, match="field sources.demo.prompt_template: t.md is not a file"):
        planning.plan_source("demo", source(prompt_template="t.md"), prepare=True)
    with pytest.raises(IsobenchError, match="config: field prompt_template: p.md is not a file"):
        planning.plan_sources({"prompt_template": "p.md", "sources": {"demo": source()}}, prepare=True)


def test_plan_reads_commit_and_parent_from_file_contents(in_tmp, demo):
    _, shas = demo
    ext = in_tmp / "ext"
    ext.mkdir()
    data = json.loads((ROOT / "demo" / "extractions" / f"{shas['primes']}.json").read_text())
    (ext / "some-name.json").write_text(json.dumps(data))
    plan = planning.plan_source("demo", source(extractions=str(ext)), prepare=True)
    assert list(plan.commits) == [shas["primes"]]
    assert plan.commits[shas["primes"]].base == shas["changelog"]


def smk(tmp_path, rule="extraction"):
    return types.SimpleNamespace(log=[str(tmp_path / "logs" / f"{rule}.log")], rule=rule)


def test_run_step_turns_errors_into_one_line(tmp_path, capsys):
    def bad(_):
        raise IsobenchError("x.json: field y:\n  bad")

    with pytest.raises(SystemExit) as exit_:
        run_step(smk(tmp_path), bad)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err == "isobench: x.json: field y: bad\n"
    assert (tmp_path / "logs" / "extraction.log").read_text() == err


def test_run_step_keeps_tracebacks_of_bugs_in_the_log(tmp_path, capsys):
    def buggy(_):
        return {}["missing"]

    with pytest.raises(SystemExit):
        run_step(smk(tmp_path), buggy)
    err = capsys.readouterr().err
    assert err.startswith("isobench: internal error in rule extraction: KeyError") and err.count("\n") == 1
    assert "Traceback" in (tmp_path / "logs" / "extraction.log").read_text()


def test_json_helpers(tmp_path):
    p = tmp_path / "a.json"
    write_json(p, {"b": 1, "a": [1.5]})
    assert load_json(p) == {"a": [1.5], "b": 1}
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]
    (tmp_path / "bad.json").write_bytes(b"\xff\xfe")
    with pytest.raises(IsobenchError, match="bad.json: not UTF-8"):
        load_json(tmp_path / "bad.json")
    with pytest.raises(IsobenchError, match="nope.json: file not found"):
        load_json(tmp_path / "nope.json")


def test_cli_file_errors_are_one_line(tmp_path, capsys):
    assert main(["extract", "--repo", str(tmp_path / "nope"), "--out", str(tmp_path), "abc"]) == 1
    assert main(["demo-repo", "/dev/null/x"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("isobench: ") for line in err)


def test_demo_repo_command(tmp_path, capsys, demo):
    _, shas = demo
    assert main(["demo-repo", str(tmp_path / "d")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"{shas['initial']} initial" and len(lines) == len(shas)
