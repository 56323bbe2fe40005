"""The harness and the measurement driver, on purpose-written tests and toy revisions."""

import textwrap

import pytest
from conftest import ROOT

from isobench.categories import CATEGORIES
from isobench.jsonio import validate
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit
from isobench.measure.sandbox import SandboxSettings

FAST = Settings(rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=3, timeout_s=20)


def script(tmp_path, body: str, **overrides) -> str:
    parts = {
        "setup": "def setup():\n    return 20000\n",
        "experiment": "def experiment(data):\n    return toy.work(data)\n",
        "store_result": "def store_result(result, path):\n    open(path, 'w').write(json.dumps(result))\n",
        "load_result": "def load_result(path):\n    return json.loads(open(path).read())\n",
        "check_equivalence": "def check_equivalence(ref, cur):\n    assert ref == cur, f'{ref} != {cur}'\n",
    }
    parts.update({k: textwrap.dedent(v) for k, v in overrides.items()})
    text = (
        "import json, os, sys, time\nimport toy\n" + textwrap.dedent(body) + "\n" + "\n".join(parts.values())
    )
    path = tmp_path / "generator.py"
    path.write_text(text)
    return path


def run(tmp_path, revisions, settings=FAST, writable=None, **kw):
    gen = script(tmp_path, kw.pop("body", ""), **kw)
    before = gen.read_text()
    sandbox = SandboxSettings(write_allow=(str(writable),) if writable else ())
    timings = measure_commit(gen, revisions, tmp_path / "scratch", settings, sandbox=sandbox)
    assert gen.read_text() == before  # generator.py is never edited
    for t in timings.values():
        validate(t, "timing", t["revision"])
    return timings


def statuses(timings):
    return {name: (t["status"], t["category"]) for name, t in timings.items()}


def test_all_ok(tmp_path, revisions):
    t = run(tmp_path, revisions)
    assert statuses(t) == {n: ("ok", None) for n in ("base", "head", "main")}
    for name in ("base", "head", "main"):
        assert len(t[name]["samples_ms"]) == FAST.rounds * FAST.repeat
        assert len(t[name]["rounds_ms"]) == FAST.rounds
        assert t[name]["stats"]["n"] == 6 and t[name]["timer"] == "perf_counter_ns"
        assert t[name]["env"]["python"] and t[name]["env"]["cpu_count"]
    assert (
        t["base"]["equivalent"] is None
        and t["head"]["equivalent"] is True
        and t["main"]["equivalent"] is True
    )


def test_reference_is_written_before_head_runs(tmp_path, revisions):
    # head's setup asserts that base's reference exists already.
    body = "REF = os.path.join(os.path.dirname(os.path.dirname(os.getcwd())), 'reference.out')\n"
    t = run(
        tmp_path,
        revisions,
        body=body,
        setup="""
        def setup():
            if toy.VERSION != 'base':
                assert os.path.exists(REF), REF
            return 100
        """,
    )
    assert statuses(t)["head"] == ("ok", None)


def test_not_equivalent(tmp_path, revisions):
    t = run(
        tmp_path,
        revisions,
        experiment="""
        def experiment(data):
            return toy.work(data) + (1 if toy.VERSION == 'head' else 0)
        """,
    )
    assert statuses(t) == {"base": ("ok", None), "head": ("failed", "not_equivalent"), "main": ("ok", None)}
    assert t["head"]["equivalent"] is False and t["head"]["samples_ms"] == []
    assert "!=" in t["head"]["error"]


def test_import_error_at_main(tmp_path, revisions):
    (revisions[2].worktree / "toy.py").write_text("VERSION = 'main'\n")  # 'work' was renamed away
    t = run(tmp_path, revisions, body="from toy import work\n")
    assert statuses(t)["main"] == ("failed", "import_error")
    assert "cannot import name 'work'" in t["main"]["error"]
    assert statuses(t)["head"] == ("ok", None)


@pytest.mark.parametrize(
    "fn, code, category",
    [
        (
            "setup",
            "def setup():\n    if toy.VERSION == 'head':\n        raise RuntimeError('no data')\n    return 5\n",
            "setup_error",
        ),
        (
            "experiment",
            "def experiment(data):\n    if toy.VERSION == 'head':\n        raise KeyError('x')\n    return 1\n",
            "experiment_error",
        ),
        (
            "experiment",
            "def experiment(data):\n    if toy.VERSION == 'head':\n        time.sleep(60)\n    return 1\n",
            "timeout",
        ),
        (
            "experiment",
            "def experiment(data):\n    if toy.VERSION == 'head':\n        os._exit(3)\n    return 1\n",
            "crash",
        ),
    ],
)
def test_failures_at_head_only(tmp_path, revisions, fn, code, category):
    t = run(
        tmp_path,
        revisions,
        settings=Settings(rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=2, timeout_s=3),
        **{fn: code},
    )
    assert statuses(t) == {"base": ("ok", None), "head": ("failed", category), "main": ("ok", None)}
    assert category in CATEGORIES and t["head"]["error"]


def test_failing_base_leaves_no_reference(tmp_path, revisions):
    t = run(
        tmp_path,
        revisions,
        store_result="""
        def store_result(result, path):
            if toy.VERSION == 'base':
                raise OSError('disk full')
        """,
    )
    assert statuses(t) == {
        "base": ("failed", "store_error"),
        "head": ("failed", "no_reference"),
        "main": ("failed", "no_reference"),
    }


def test_invalid_script(tmp_path, revisions):
    gen = tmp_path / "generator.py"
    gen.write_text("def setup():\n    return 1\n")
    t = measure_commit(gen, revisions, tmp_path / "scratch", FAST)
    assert statuses(t)["base"] == ("failed", "invalid_script")
    assert "experiment" in t["base"]["error"]


def test_stderr_tail_is_kept(tmp_path, revisions):
    t = run(tmp_path, revisions, body="sys.stderr.write('x' * 10000 + 'THE END')\n")
    assert t["base"]["stderr_tail"].endswith("THE END") and len(t["base"]["stderr_tail"]) <= 4000


def test_rounds_interleave_base_head_main(tmp_path, revisions):
    order = tmp_path / "order.txt"
    t = run(
        tmp_path,
        revisions,
        settings=Settings(
            rounds=3, max_rounds=3, warmup=1, warmup_ms=0, repeat=1, timeout_s=20, interleave="sequential"
        ),
        writable=tmp_path,
        setup=f"""
        def setup():
            with open({str(order)!r}, "a") as fh:
                fh.write(toy.VERSION + "\\n")
            return 10
        """,
    )
    assert statuses(t)["main"] == ("ok", None)
    assert order.read_text().split() == ["base", "head", "main"] * 3


def test_job_time_limit_keeps_what_was_measured(tmp_path, revisions):
    t = run(
        tmp_path,
        revisions,
        settings=Settings(
            rounds=50, max_rounds=50, warmup=1, warmup_ms=0, repeat=1, timeout_s=20, job_timeout_s=0.5
        ),
    )
    assert statuses(t)["head"] == ("ok", None)
    assert 1 <= len(t["head"]["rounds_ms"]) < 50
    assert any("job time limit" in w for w in t["head"]["warnings"])


def test_time_based_warmup(tmp_path, revisions):
    calls = tmp_path / "calls.txt"
    run(
        tmp_path,
        revisions,
        settings=Settings(rounds=1, max_rounds=1, warmup=1, warmup_ms=300, repeat=1, timeout_s=20),
        writable=tmp_path,
        experiment=f"""
        def experiment(data):
            with open({str(calls)!r}, "a") as fh:
                fh.write("x")
            time.sleep(0.01)
            return 1
        """,
    )
    # three revisions, each warming up for >= 300 ms of 10 ms calls, then one timed call
    assert len(calls.read_text()) > 3 * 20


def test_categories_table_is_what_schemas_docs_and_cache_say():
    """isobench/categories.py is the one table: the timing schema names every category, the extraction schema those
    of its stage, docs/measurement.md's table each once; the measurement cache keeps exactly the cached ones."""
    import re

    from isobench.categories import TABLE, blames_candidate, named
    from isobench.jsonio import schema
    from isobench.measure.cache import NOT_RUN

    assert set(schema("timing")["properties"]["category"]["enum"]) - {None} == set(CATEGORIES)
    assert set(schema("extraction")["properties"]["category"]["enum"]) == set(named("extraction"))
    docs = (ROOT / "docs" / "measurement.md").read_text()
    section = docs[docs.index("### Failure categories") :]
    section = section[: section.index("\n\n", section.index("| --- |"))]
    rows = re.findall(r"^\| `(\w+)` \|", section, flags=re.M)
    assert sorted(rows) == sorted(TABLE) and len(rows) == len(set(rows))
    assert {"env_failed", "generation_failed", "isolation_unavailable"} <= set(NOT_RUN)
    assert set(NOT_RUN) == {n for n, c in TABLE.items() if not c.cached}
    assert all(c.meaning and c.stage in ("extraction", "generator", "env", "measure", "record", "evaluation")
               for c in TABLE.values())  # fmt: skip
    assert blames_candidate("not_equivalent") and blames_candidate("guard_tests_failed")
    assert not blames_candidate("capability_unsupported") and not blames_candidate("repo_unavailable")


def test_a_report_the_test_forges_is_a_failed_round_never_a_crash(tmp_path, revisions):
    # the test replaces json.dump, which the harness then uses to write its report: a list, not a report
    body = 'json.dump = lambda obj, fh, **kw: fh.write("[1, 2]")\n'
    t = run(tmp_path, revisions, body=body)
    for name in ("base", "head", "main"):
        assert (t[name]["status"], t[name]["category"]) == ("failed", "harness_error"), t[name]["error"]
        assert "not a JSON object with a status" in t[name]["error"]
