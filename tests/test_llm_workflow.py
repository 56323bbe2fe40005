"""The demo with LLM generation: two of its commits lose their pre-generated scripts and a local
OpenAI-compatible server answers for them (one well, one never usefully), through the real SDK."""

import json
import shutil
import subprocess
import sys

import pytest
import yaml
from conftest import FIXTURES, ROOT, copy_workflow, demo_subset, snakemake
from datasets import concatenate_datasets, load_dataset, load_from_disk
from llm_server import FakeLLM, reply

from isobench.dataset import read_dataset
from isobench.features import decode, record_features
from isobench.jsonio import validate

pytestmark = pytest.mark.slow
SECRET = "sk-test-SECRET-workflow-4242424242"


def no_secret_under(folder):
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_generated_and_failed_generation_through_the_workflow(tmp_path, demo, monkeypatch):
    _, shas = demo
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    work = copy_workflow(tmp_path)
    histogram_script = (
        ROOT / "demo" / "generators" / f"{shas['histogram'][:8]}_test_case_generator.py"
    ).read_text()
    # three of the demo's commits: one pre-generated test, one the LLM writes, one it cannot
    shutil.rmtree(work / "demo")
    demo_subset(work, shas, "demo", ["primes", "histogram", "regex"], ["primes"])

    def answer(request):
        prompt = (
            request["body"]["messages"][-1]["content"]
            if len(request["body"]["messages"]) < 3
            else request["body"]["messages"][1]["content"]
        )
        if shas["histogram"] in prompt:
            return reply(f"Here is the test.\n\n```python\n{histogram_script}```\n")
        return reply("I am sorry, I cannot write this test.")

    fake = FakeLLM().start()
    fake.default = answer
    try:
        config = yaml.safe_load((work / "config" / "config.yaml").read_text())
        config["sources"]["demo"].setdefault("measure", {}).update(rounds=2, max_rounds=2, repeat=2)
        config["llm"] = {
            "provider": "openai",
            "model": "test-model",
            "base_url": fake.base_url("openai"),
            "max_retries": 0,
            "regenerations": 0,
            "repairs": 1,
            "cache_dir": "cache/llm",
        }
        config["llm_prices"] = {"test-model": {"input": 2000.0, "output": 8000.0}}  # USD per million tokens
        (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))

        proc = snakemake(work, "--resources", "llm=2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(fake.requests) == 3  # histogram: 1; regex: the first reply and one repair
        assert "isobench LLM use (this run): 3 API requests" in proc.stderr
        rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
        assert set(rows) == {shas["primes"], shas["histogram"], shas["regex"]}
        for r in rows.values():
            validate(r, "record", r["instance_id"])

        primes, hist, regex = rows[shas["primes"]], rows[shas["histogram"]], rows[shas["regex"]]
        pre = primes["provenance"]["generator"]
        assert pre["source"] == "pregenerated" and pre["path"].endswith("_test_case_generator.py")
        # the deprecated string, derived from the structure
        assert primes["provenance"]["generator_origin"] == f"pregenerated:{pre['path']}"
        assert primes["provenance"]["llm"] is None
        assert hist["status"] == "ok" and hist["efficiency_test"] == [histogram_script]
        assert hist["comparisons"]["base_head"]["speedup"] > 1
        by_llm = {"source": "llm", "provider": "openai", "model": "test-model", "path": None}
        assert hist["provenance"]["generator"] == by_llm
        assert hist["provenance"]["generator_origin"] == "llm:openai/test-model"
        llm_info = hist["provenance"]["llm"]
        assert llm_info["api_requests"] == 1 and llm_info["output_tokens"] > 0 and not llm_info["cache_hit"]
        transcript_path = work / "results" / "demo" / shas["histogram"] / "llm_transcript.json"
        transcript = json.loads(transcript_path.read_text())
        assert transcript["status"] == "accepted" and transcript["attempts"][0]["smoke_run"] == "passed"
        assert hist["provenance"]["llm_transcript_sha256"] == llm_info["transcript_sha256"]

        assert regex["status"] == "generation_failed" and regex["efficiency_test"] == []
        assert regex["provenance"]["generator"] == by_llm  # asked, and no usable test came back
        assert {regex["revisions"][n]["category"] for n in ("base", "head", "main")} == {"generation_failed"}
        assert "no usable script after 2 replies" in regex["provenance"]["generation_error"]
        regex_transcript = json.loads(
            (work / "results" / "demo" / shas["regex"] / "llm_transcript.json").read_text()
        )
        assert [a["kind"] for a in regex_transcript["attempts"]] == ["initial", "repair"]

        summary = json.loads((work / "results" / "llm_summary.json").read_text())["totals"]
        assert (
            summary["api_requests"] == 3 and summary["generated"] == 2 and summary["generation_failed"] == 1
        )
        assert summary["pregenerated"] == 1
        # the cost in money: the tokens the server reported at the configured price, at the run's end and on the
        # report's first page
        cost = (summary["input_tokens"] * 2000 + summary["output_tokens"] * 8000) / 1e6
        assert summary["cost_usd"] == pytest.approx(cost) and cost > 1
        assert f"cost ${cost:.2f}" in proc.stderr.split("isobench LLM use (this run)")[1].splitlines()[0]
        assert (
            f"<th align='left'>cost</th><td>${cost:.2f}</td>"
            in (work / "results" / "report" / "workflow.rst").read_text()
        )
        no_secret_under(work / "results")
        no_secret_under(work / "cache")
        # the audit agrees: every chain intact (a generation_failed record included), and no key anywhere
        audit = subprocess.run(
            [sys.executable, "-m", "isobench.cli", "audit", "--json"],
            cwd=work,
            capture_output=True,
            text=True,
            timeout=300,
        )
        report = json.loads(audit.stdout)
        assert audit.returncode == 0 and report["ok"], report["findings"]
        assert report["counts"]["secret"] == 0 and report["failures"]["generation_failed"] == {"commit": 1}

        # This LLM run's export and a pre-generated run's (the demo's records) concatenate and load alike: the
        # columns are declared from the record schema, not guessed per export (issue 26)
        exports = []
        for name, dataset in (
            ("llm", work / "results" / "dataset.jsonl"),
            ("pre", FIXTURES / "demo_dataset.jsonl"),
        ):
            out = tmp_path / f"export-{name}"
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "isobench.cli",
                    "export",
                    "--dataset",
                    str(dataset),
                    "--out",
                    str(out),
                ],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert done.returncode == 0, done.stderr
            exports.append(out / "isobench")
        both = concatenate_datasets([load_from_disk(str(e / "hf")) for e in exports])
        assert len(both) == 3 + 7 and both.features == record_features()
        parquet = load_dataset(
            "parquet", data_files=[str(e / "test.parquet") for e in exports], split="train"
        )
        assert parquet.features == record_features()
        back = decode(parquet.to_list(), parquet.features)
        assert [r["head_commit"] for r in back[:3]] == [
            r["head_commit"] for r in read_dataset(work / "results" / "dataset.jsonl")
        ]
        assert back[0]["provenance"]["generator"]["source"] in ("pregenerated", "llm")

        # An edited step script, a deleted output and a forced rerun: the scripts come back from the
        # cache, no request is made.
        step = work / "scripts" / "generator.py"
        step.write_text(step.read_text() + "# edited\n")
        (work / "results" / "demo" / shas["histogram"] / "generator.py").unlink()
        proc = snakemake(
            work, "--resources", "llm=2", "--forcerun", f"results/demo/{shas['regex']}/generator.py"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(fake.requests) == 3
        assert "isobench LLM use (this run): 0 API requests" in proc.stderr
        meta = json.loads((work / "results" / "demo" / shas["histogram"] / "generator.json").read_text())
        assert meta["generator"] == {**by_llm, "source": "cache"} and meta["llm"]["cache_hit"]
        assert meta["origin"] == "cache:openai/test-model"
        for path in (work / "results" / "demo").glob("*/generator.json"):
            validate(json.loads(path.read_text()), "generator", str(path))
        assert (
            work / "results" / "demo" / shas["histogram"] / "generator.py"
        ).read_text() == histogram_script
        regex_meta = json.loads((work / "results" / "demo" / shas["regex"] / "generator.json").read_text())
        assert regex_meta["status"] == "generation_failed" and regex_meta["llm"]["cached_replies"] == 2

        # The documented way back for a generation_failed commit: ask again (the server answers well now).
        regex_script = (
            ROOT / "demo" / "generators" / f"{shas['regex'][:8]}_test_case_generator.py"
        ).read_text()
        fake.default = lambda request: reply(f"```python\n{regex_script}```\n")

        def retry_generation(*commits):
            return subprocess.run(
                [sys.executable, "-m", "isobench.cli", "retry-generation", *commits],
                cwd=work,
                capture_output=True,
                text=True,
                timeout=300,
            )

        unknown = retry_generation("0123456789ab")
        assert unknown.returncode == 1 and unknown.stderr == (
            "isobench: retry-generation: no planned commit is 0123456789ab\n"
        )
        # the end summary said which command retries it (the commit named), and it does
        assert f"isobench retry-generation {shas['regex'][:12]}" in proc.stderr
        retry = retry_generation(shas["regex"][:12])
        assert retry.returncode == 0 and "2 cached replies dropped" in retry.stdout, retry.stderr
        proc = snakemake(work, "--resources", "llm=2")
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert len(fake.requests) == 4  # one new request, for that commit only
        rows = {r["head_commit"]: r for r in read_dataset(work / "results" / "dataset.jsonl")}
        assert rows[shas["regex"]]["status"] == "ok" and rows[shas["histogram"]]["status"] == "ok"
    finally:
        fake.stop()
