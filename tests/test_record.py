import pytest

from isobench.dataset import merge, read_dataset, write_dataset
from isobench.errors import IsobenchError
from isobench.jsonio import dumps, schema, validate, write_json
from isobench.measure.stats import describe
from isobench.provenance import generator_of, generator_provenance, origin_string, parse_origin
from isobench.record import build_record, human_performance

ANALYSIS = {"min_effect": 0.05, "alpha": 0.01, "ci_level": 0.95, "bootstrap": 500, "seed": 0}
SHA = {"base": "a" * 40, "head": "b" * 40, "main": "c" * 40}


def timing(name, samples, status="ok", category=None):
    return {
        "schema_version": 1,
        "revision": name,
        "sha": SHA[name],
        "status": status,
        "category": category,
        "error": None if status == "ok" else "boom",
        "traceback": None,
        "equivalent": None if name == "base" else status == "ok",
        "samples_ms": samples,
        "rounds_ms": [samples],
        "stats": describe([samples]) if samples else None,
        "warnings": [],
        "unit": "ms",
        "contract": "functions",
        "timer": "perf_counter_ns",
        "device": "cpu",
        "env": {"python": "3.11", "host": "h"},
        "settings": {},
        "harness_version": "1",
        "stderr_tail": "",
    }


PREGENERATED = {
    "generator": {"source": "pregenerated", "provider": None, "model": None, "path": "x"},
    "origin": "pregenerated:x",
    "status": "pregenerated",
    "error": None,
    "llm": None,
}
LLM_META = {
    "generator": {"source": "llm", "provider": "anthropic", "model": "org/model-1", "path": None},
    "origin": "llm:anthropic/org/model-1",
    "status": "accepted",
    "contract": "functions",
    "sha256": "0" * 64,
    "error": None,
    "llm": {"provider": "anthropic", "model": "org/model-1", "api_requests": 1},
}
OK = {"base": ("base", [2.0]), "head": ("head", [1.0]), "main": ("main", [1.0])}


def record(
    timings,
    head=SHA["head"],
    repo="org/repo",
    created="2024-01-01T00:00:00+00:00",
    meta=PREGENERATED,
    pr=None,
    source_cfg=None,
):
    extraction = {
        "repo": repo,
        "head_commit": head,
        "base_commit": SHA["base"],
        "created_at": created,
        "patch": "p",
        "test_patch": "",
        "affected_apis": ["f", "g"],
        "message": "msg",
        "source": "s",
        "extraction_file": None,
        "extraction_sha256": None,
        "warnings": [],
        "patch_functions": ["pkg/m.py::C.f"],
        "test_functions": [],
        "pr_number": pr,
    }
    hashes = {
        "extraction": "1",
        "template": "2",
        "prompt": "3",
        "generator": "4",
        "timing_base": "5",
        "timing_head": "6",
        "timing_main": "7",
    }
    return build_record(
        extraction=extraction,
        source_cfg=source_cfg or {"setup_commands": ["x"]},
        generator_text="code",
        timings=timings,
        main_sha=SHA["main"],
        hashes=hashes,
        generator_meta=meta,
        template="t.md",
        analysis=ANALYSIS,
    )


def test_record_ok_validates():
    r = record(
        {
            "base": timing("base", [10.0, 12.0]),
            "head": timing("head", [2.0, 3.0]),
            "main": timing("main", [2.0]),
        }
    )
    validate(r, "record", "r")
    assert r["human_performance"] == 11.0 / 2.5
    assert r["duration_changes"] == [{"base": [10.0, 12.0], "head": [2.0, 3.0], "main": [2.0]}]
    assert r["api"] == "f, g" and r["status"] == "ok" and r["efficiency_test"] == ["code"]
    assert r["instance_id"] == "org__repo-" + SHA["head"][:7]
    assert (
        r["test_failed"] == "No" and r["patch_functions"] == ["pkg/m.py::C.f"] and r["test_functions"] == []
    )


def test_iso_bench_fields():
    ok = {
        "base": timing("base", [10.0, 12.0, 30.0]),
        "head": timing("head", [2.0, 3.0, 4.0]),
        "main": timing("main", [2.0]),
    }
    r = record(ok, pr=21079)
    validate(r, "record", "r")
    assert r["instance_id"] == "org__repo-PR-21079" and r["pr_number"] == 21079
    # isobench's ratio is of medians; ISO-Bench's (mean over mean) is kept beside it
    assert r["human_performance"] == 12.0 / 3.0 and r["human_performance_mean"] == pytest.approx(
        (52 / 3) / 3.0
    )
    # no version in the config: composed from what was measured (Python, arch, environment, installed SHA)
    ok["head"]["env"] = {"python": "3.11.9", "machine": "x86_64"}
    ok["head"]["revision_env"] = {"mode": "venv", "image": None, "python": "/v/bin/python"}
    assert record(ok)["version"] == f"python3.11-x86_64-venv@{SHA['head'][:12]}"
    ok["head"]["env"] = {"python": "3.10.1", "platform": "Linux-6.1.0-aarch64-with-glibc2.36"}
    ok["head"]["revision_env"] = {"mode": "image", "image": "org/img:1", "python": "python3"}
    assert record(ok)["version"] == f"python3.10-aarch64-image:org/img:1@{SHA['head'][:12]}"
    configured = record(ok, source_cfg={"version": "0.5.1"})
    assert configured["version"] == "0.5.1" and configured["provenance"]["configured_version"] == "0.5.1"
    failed = record({**ok, "head": timing("head", [], "failed", "target_not_resolved")})
    assert failed["test_failed"] == "Yes" and failed["human_performance_mean"] is None


def test_failed_revision_has_empty_list_and_no_ratio():
    r = record(
        {
            "base": timing("base", [10.0]),
            "head": timing("head", [1.0], "failed", "not_equivalent"),
            "main": timing("main", [], "failed", "import_error"),
        }
    )
    validate(r, "record", "r")
    assert r["human_performance"] is None and r["status"] == "failed"
    assert r["duration_changes"] == [{"base": [10.0], "head": [], "main": []}]
    assert r["revisions"]["head"]["category"] == "not_equivalent"
    text = dumps(r)
    assert "NaN" not in text and "Infinity" not in text


def test_nan_is_never_written(tmp_path):
    with pytest.raises(IsobenchError, match="non-finite"):
        write_json(tmp_path / "x.json", {"v": float("inf")})
    assert not (tmp_path / "x.json").exists()
    assert human_performance({"base": timing("base", [1.0]), "head": timing("head", [0.0])}) is None


def test_invalid_record_is_a_one_line_error():
    r = record({"base": timing("base", [1.0]), "head": timing("head", [1.0]), "main": timing("main", [1.0])})
    r["head_commit"] = "nope"
    with pytest.raises(IsobenchError, match="rec.json: field head_commit"):
        validate(r, "record", "rec.json")


def test_dataset_order_merge_and_datasets_loading(tmp_path):
    ok = {"base": timing("base", [2.0]), "head": timing("head", [1.0]), "main": timing("main", [1.0])}
    paths = []
    for i, (repo, created, head) in enumerate(
        [("b/r", "2024-01-01", "d" * 40), ("a/r", "2024-02-01", "e" * 40), ("a/r", "2024-01-01", "f" * 40)]
    ):
        p = tmp_path / f"r{i}.json"
        write_json(p, record(ok, head=head, repo=repo, created=created))
        paths.append(p)
    out = tmp_path / "dataset.jsonl"
    assert write_dataset(paths, out) == 3
    rows = read_dataset(out)
    assert [(r["repo"], r["head_commit"][0]) for r in rows] == [("a/r", "f"), ("a/r", "e"), ("b/r", "d")]
    first = out.read_bytes()
    write_dataset(list(reversed(paths)), out)
    assert out.read_bytes() == first  # deterministic
    assert len(merge(rows + [dict(rows[0], notes="newer")])) == 3
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 3 and ds[0]["duration_changes"][0]["base"] == [2.0]


def ok_timings():
    return {name: timing(*args) for name, args in OK.items()}


def test_the_generator_provenance_is_copied_and_the_origin_string_derived():
    r = record(ok_timings(), meta=LLM_META)
    validate(r, "record", "r")
    prov = r["provenance"]
    assert prov["generator"] == LLM_META["generator"] and prov["llm"] == LLM_META["llm"]
    assert prov["generator_origin"] == "llm:anthropic/org/model-1"  # deprecated, derived from generator
    pre = record(ok_timings())["provenance"]
    assert pre["generator"] == PREGENERATED["generator"] and pre["generator_origin"] == "pregenerated:x"


@pytest.mark.parametrize(
    "origin,generator",
    [
        ("llm:openai/gpt-4.1", generator_provenance("llm", "openai", "gpt-4.1")),
        ("cache:anthropic/org/model-1", generator_provenance("cache", "anthropic", "org/model-1")),
        (
            "pregenerated:demo/generators/ab12_test.py",
            generator_provenance("pregenerated", path="demo/generators/ab12_test.py"),
        ),
        ("none", generator_provenance("none")),
    ],
)
def test_an_old_origin_string_gives_the_structure_and_back(origin, generator):
    assert parse_origin(origin) == generator and origin_string(generator) == origin
    assert generator_of({"generator_origin": origin}) == generator  # an older record's provenance
    assert generator_of({"origin": origin}) == generator  # an older generator.json
    assert generator_of({"generator": generator, "generator_origin": "llm:other/model"}) == generator
    validate(
        {
            **LLM_META,
            "generator": generator,
            "origin": origin,
            "llm": LLM_META["llm"] if generator["source"] in ("llm", "cache") else None,
        },
        "generator",
        "generator.json",
    )


@pytest.mark.parametrize(
    "origin", [None, "", "llm:", "llm:openai", "pregenerated:", "cached:openai/m", "nothing"]
)
def test_an_unknown_origin_string_gives_no_structure(origin):
    assert parse_origin(origin) is None and generator_of({"generator_origin": origin}) is None


def test_a_record_of_an_older_generator_json_gets_the_structure():
    old = {k: v for k, v in LLM_META.items() if k != "generator"}  # only the origin string
    r = record(ok_timings(), meta=old)
    validate(r, "record", "r")
    assert r["provenance"]["generator"] == LLM_META["generator"]
    assert r["provenance"]["generator_origin"] == LLM_META["origin"]


def test_an_older_record_with_only_the_origin_string_validates():
    r = record(ok_timings(), meta=LLM_META)
    del r["provenance"]["generator"]
    validate(r, "record", "r")


@pytest.mark.parametrize(
    "change,field",
    [
        (dict(source="gpt"), "source"),
        (dict(model=None), "model"),  # an LLM's test names its model
        (dict(provider=""), "provider"),
        (dict(path="x.py"), "path"),  # a path only for a pre-generated test
        (dict(model=3), "model"),
    ],
)
def test_a_wrong_generator_provenance_is_a_schema_error(change, field):
    meta = {**LLM_META, "generator": {**LLM_META["generator"], **change}}
    with pytest.raises(IsobenchError, match=f"field provenance.generator.{field}"):
        validate(record(ok_timings(), meta=meta), "record", "rec.json")
    with pytest.raises(IsobenchError, match=f"field generator.{field}"):
        validate(meta, "generator", "generator.json")


def test_generator_json_and_record_share_one_definition_of_the_provenance():
    assert schema("generator")["$defs"]["generator"] == schema("record")["$defs"]["generator"]
    extra = {**LLM_META, "generator": {**LLM_META["generator"], "base_url": "http://x"}}
    with pytest.raises(IsobenchError, match="field generator"):
        validate(extra, "generator", "generator.json")
    with pytest.raises(IsobenchError, match="field llm"):  # the LLM's block belongs to LLM-made tests only
        validate({**PREGENERATED, "contract": "functions", "sha256": "0" * 64, "llm": {}}, "generator", "g")
