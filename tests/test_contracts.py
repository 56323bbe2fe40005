"""ISO-Bench and GSO command-line scripts: detection, flags, parsing and failure categories."""

import json
import textwrap

import pytest

from isobench.jsonio import validate
from isobench.measure import contracts
from isobench.measure.job import Settings
from isobench.measure.rounds import measure_commit

SETTINGS = Settings(rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=1, timeout_s=3)

ISOBENCH_STYLE = """
import argparse, json, os, signal, sys, time
import toy

def setup():
    return 20000

def experiment(data):
    return toy.work(data)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eqcheck", action="store_true")
    p.add_argument("--reference", action="store_true")
    p.add_argument("--prefix", type=str, default="")
    a = p.parse_args()
    data = setup()
    start = time.perf_counter()
    for _ in range(5):
        result = experiment(data)
    avg_ms = (time.perf_counter() - start) / 5 * 1e3
    ref = f"{a.prefix}_result.json"
    if a.reference:
        json.dump(result, open(ref, "w"))
    if a.eqcheck:
        assert json.load(open(ref)) == result, "results differ"
    report = {"avg_ms": avg_ms, "target_resolved": True, "opt_path_hit": True}
    HOOK
    print("some chatter before the report")
    print(json.dumps(report))

if __name__ == "__main__":
    main()
"""

GSO_STYLE = """
import argparse, json, timeit
import toy

def setup():
    return 20000

def experiment(data):
    return toy.work(data)

def store_result(result, path):
    json.dump(result, open(path, "w"))

def load_result(path):
    return json.load(open(path))

def check_equivalence(ref, cur):
    assert ref == cur, "results differ"

def run_test(eqcheck=False, reference=False, file_prefix=""):
    data = setup()
    t = timeit.timeit(lambda: experiment(data), number=1)
    result = experiment(data)
    if reference:
        store_result(result, f"{file_prefix}_result.json")
    if eqcheck:
        check_equivalence(load_result(f"{file_prefix}_result.json"), result)
    return t

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("output_file", type=str)
    parser.add_argument("--eqcheck", action="store_true")
    parser.add_argument("--reference", action="store_true")
    parser.add_argument("--file_prefix", type=str)
    args = parser.parse_args()
    execution_time = run_test(args.eqcheck, args.reference, args.file_prefix)
    HOOK
    with open(args.output_file, "a") as f:
        f.write(LINE)

if __name__ == "__main__":
    main()
"""
GOOD_LINE = 'f"Execution time: {execution_time:.6f}s\\n"'


def measure(tmp_path, revisions, text):
    gen = tmp_path / "generator.py"
    gen.write_text(textwrap.dedent(text))
    timings = measure_commit(gen, revisions, tmp_path / "scratch", SETTINGS)
    for t in timings.values():
        validate(t, "timing", t["revision"])
    return timings


def status(t):
    return {n: (x["status"], x["category"]) for n, x in t.items()}


def test_detect():
    assert contracts.detect(ISOBENCH_STYLE) == "isobench_cli"
    assert contracts.detect(GSO_STYLE) == "gso_cli"
    assert contracts.detect("def setup():\n    pass\n") == "functions"
    assert contracts.detect("def broken(:\n") == "functions"


def test_flags(tmp_path):
    m, p, o = tmp_path / "t.py", tmp_path / "ref", tmp_path / "out.txt"
    assert contracts.command("isobench_cli", m, "reference", p, o) == [
        str(m),
        "--prefix",
        str(p),
        "--reference",
    ]
    assert contracts.command("gso_cli", m, "eqcheck", p, o) == [
        str(m),
        str(o),
        "--file_prefix",
        str(p),
        "--eqcheck",
    ]
    assert contracts.command("gso_cli", m, "time", p, o) == [str(m), str(o), "--file_prefix", str(p)]


def test_isobench_style_end_to_end(tmp_path, revisions):
    t = measure(tmp_path, revisions, ISOBENCH_STYLE.replace("HOOK", "pass"))
    assert status(t) == {n: ("ok", None) for n in ("base", "head", "main")}
    assert all(len(x["rounds_ms"]) == 2 and all(len(r) == 1 for r in x["rounds_ms"]) for x in t.values())
    assert t["head"]["contract"] == "isobench_cli" and t["head"]["equivalent"] is True
    assert 0 < t["base"]["stats"]["median"] < 1000


def test_gso_style_end_to_end(tmp_path, revisions):
    t = measure(tmp_path, revisions, GSO_STYLE.replace("HOOK", "pass").replace("LINE", GOOD_LINE))
    assert status(t) == {n: ("ok", None) for n in ("base", "head", "main")}
    assert t["main"]["contract"] == "gso_cli" and len(t["main"]["samples_ms"]) == 2


@pytest.mark.parametrize(
    "hook, category",
    [
        ('report["avg_ms"] = float("inf")', "bad_output"),  # printed as Infinity
        ('report = "garbage"', "bad_output"),
        ('report["avg_ms"] = "12 ms"', "bad_output"),
        ('report["error"] = "CUDA not available"', "experiment_error"),
        ('report["target_resolved"] = False', "target_not_resolved"),
        ('report["opt_path_hit"] = toy.VERSION == "base"', "opt_path_missed"),
        ("os.kill(os.getpid(), signal.SIGSEGV)", "crash"),
        ("time.sleep(60)", "timeout"),
        ("sys.exit(3)", "experiment_error"),
    ],
)
def test_isobench_style_failures_at_head(tmp_path, revisions, hook, category):
    guarded = f'if toy.VERSION == "head":\n        {hook}' if "opt_path_hit" not in hook else hook
    t = measure(tmp_path, revisions, ISOBENCH_STYLE.replace("HOOK", guarded))
    assert status(t)["head"] == ("failed", category), t["head"]["error"]
    assert status(t)["base"] == ("ok", None)
    assert t["head"]["samples_ms"] == []


def test_isobench_style_not_equivalent(tmp_path, revisions):
    (revisions[1].worktree / "toy.py").write_text(
        "VERSION = 'head'\n\ndef work(n):\n    return sum(range(n)) + 1\n"
    )
    t = measure(tmp_path, revisions, ISOBENCH_STYLE.replace("HOOK", "pass"))
    assert status(t)["head"] == ("failed", "not_equivalent") and t["head"]["equivalent"] is False


@pytest.mark.parametrize(
    "line, category",
    [
        ('f"Execution time: {execution_time * 1e3:.3f}ms\\n"', "bad_output"),  # wrong units
        ('"Execution time: infs\\n"', "bad_output"),
        ('"Elapsed: 1.0\\n"', "bad_output"),
    ],
)
def test_gso_style_bad_lines(tmp_path, revisions, line, category):
    t = measure(tmp_path, revisions, GSO_STYLE.replace("HOOK", "pass").replace("LINE", line))
    assert status(t)["base"] == ("failed", category)
    assert status(t)["head"] == ("failed", "no_reference") or status(t)["head"][1] == "bad_output"


def test_gso_style_missing_reference(tmp_path, revisions):
    text = GSO_STYLE.replace("HOOK", "pass").replace("LINE", GOOD_LINE)
    text = text.replace('store_result(result, f"{file_prefix}_result.json")', "pass")
    t = measure(tmp_path, revisions, text)
    assert status(t)["head"] == ("failed", "no_reference")


def test_parsers():
    assert contracts.parse_isobench('x\n{"avg_ms": 2.5}\n', "head")[:3] == (2.5, None, None)
    assert contracts.parse_isobench('{"avg_ms": NaN}', "head")[1] == "bad_output"
    assert contracts.parse_isobench('{"avg_ms": -1}', "head")[1] == "bad_output"
    assert contracts.parse_isobench('{"avg_ms": 1, "opt_path_hit": false}', "base")[3]
    assert contracts.parse_gso("Execution time: 0.001500s\n") == (1.5, None, None)
    assert contracts.parse_gso("Execution time: 1.0s\nExecution time: 2.0s\n")[0] == 2000.0


# ISO-Bench's real scripts: a reference file named from IMPL_TAG/COMMIT_HASH, and a check skipped when that
# file is missing (`if eqcheck and os.path.exists(ref_file)`).
ISO_SHAPED = """
import argparse, json, os, sys
import toy

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--eqcheck", action="store_true")
    p.add_argument("--reference", action="store_true")
    p.add_argument("--prefix", type=str, default="")
    a = p.parse_args()
    result = toy.work(20000)
    ref_file = f"{a.prefix}_{os.getenv('IMPL_TAG', 'child')}_{os.getenv('COMMIT_HASH', 'abc')}_reference.json"
    if a.reference and STORE:
        json.dump(result, open(ref_file, "w"))
    if a.eqcheck and os.path.exists(CHECKED):
        assert json.load(open(CHECKED)) == result, "results differ"
    HOOK
    print(json.dumps({"avg_ms": 1.5, "opt_path_hit": True}))

if __name__ == "__main__":
    main()
"""


def iso_shaped(store="True", checked="ref_file", hook="pass"):
    return ISO_SHAPED.replace("STORE", store).replace("CHECKED", checked).replace("HOOK", hook)


def test_equivalent_only_when_the_check_read_base_reference(tmp_path, revisions):
    t = measure(tmp_path, revisions, iso_shaped())
    assert status(t) == {n: ("ok", None) for n in ("base", "head", "main")}
    assert t["head"]["equivalent"] is True and t["main"]["equivalent"] is True


def test_no_reference_stored_is_never_equivalent(tmp_path, revisions):
    t = measure(tmp_path, revisions, iso_shaped(store="False"))
    assert status(t)["base"] == ("failed", "store_error")
    for name in (
        "head",
        "main",
    ):  # run without --eqcheck: their time is kept, their equivalence is not claimed
        assert status(t)[name] == ("failed", "no_reference") and t[name]["equivalent"] is not True
        assert "nothing to check against" in t[name]["error"] and len(t[name]["rounds_ms"]) == 1


def test_eqcheck_that_never_reads_the_reference(tmp_path, revisions):
    t = measure(tmp_path, revisions, iso_shaped(checked='ref_file + ".elsewhere"'))
    # base too, at its self-check in round 2: such a script can never check anything
    assert status(t) == {n: ("failed", "eqcheck_skipped") for n in ("base", "head", "main")}
    assert t["head"]["equivalent"] is not True and len(t["base"]["rounds_ms"]) == 2  # base's times are kept
    assert "_child_abc_reference.json" in t["head"]["error"]


@pytest.mark.parametrize(
    "hook, category, error",
    [
        # what ISO-Bench's scripts print where vllm or CUDA is missing, before exiting non-zero
        (
            'print(json.dumps({"target_resolved": False, "error": "No module named \'vllm\'"})); sys.exit(1)',
            "target_not_resolved",
            "No module named 'vllm'",
        ),
        (
            'print(json.dumps({"target_resolved": True, "error": "op requires CUDA device", "error_code": 2, '
            '"error_name": "CAPABILITY_UNSUPPORTED"})); sys.exit(2)',
            "capability_unsupported",
            "op requires CUDA device",
        ),
        (
            'print(json.dumps({"error_code": 2, "error_message": "FP8 not supported on this hardware"})); sys.exit(2)',
            "capability_unsupported",
            "FP8 not supported on this hardware",
        ),
        (
            'print(json.dumps({"target_resolved": True, "error": "only CI files", "error_code": 3, '
            '"error_name": "OPT_PATH_NOT_TRIGGERED"})); sys.exit(3)',
            "opt_path_missed",
            "only CI files",
        ),
        # target_resolved: false is checked before the error's name
        (
            'print(json.dumps({"error_code": 6, "error_name": "INVALID_CONFIG", "error_message": "bad dims", '
            '"target_resolved": False})); sys.exit(6)',
            "target_not_resolved",
            "bad dims",
        ),
        (
            'print(json.dumps({"error_code": 6, "error_name": "INVALID_CONFIG", "error_message": "bad dims"}));'
            " sys.exit(6)",
            "experiment_error",
            "bad dims",
        ),
        ("import vllm", "import_error", "ModuleNotFoundError: No module named 'vllm'"),
    ],
)
def test_script_failures_keep_their_reason(tmp_path, revisions, hook, category, error):
    t = measure(tmp_path, revisions, iso_shaped(hook=hook))
    for name in ("base", "head", "main"):
        assert status(t)[name] == ("failed", category), t[name]["error"]
        assert t[name]["error"] == error
    if hook.startswith("print"):
        # the timing file keeps the script's report line and the tail of its stdout
        assert json.loads(t["base"]["stdout_tail"].strip().splitlines()[-1]) == t["base"]["script_report"]


def test_stated_failure():
    assert contracts.stated_failure({"avg_ms": 1.0, "opt_path_hit": True}) is None
    assert contracts.stated_failure({"target_resolved": False}) == (
        "target_not_resolved",
        "the script could not resolve the API under test",
    )
    assert contracts.stated_failure({"error_name": "CAPABILITY_UNSUPPORTED"})[0] == "capability_unsupported"
    assert (
        contracts.stated_failure({"error_name": "SOMETHING_ELSE", "error_code": 2})[0] == "experiment_error"
    )
    # the report is read whatever the exit code; without one, stderr decides
    assert contracts.parse_isobench('{"target_resolved": false, "error": "x"}\n', "base", 1)[1:3] == (
        "target_not_resolved",
        "x",
    )
    assert contracts.parse_isobench("", "base", 1, "Traceback\nValueError: boom")[1:3] == (
        "experiment_error",
        "exit code 1: ValueError: boom",
    )
    assert contracts.parse_isobench('{"avg_ms": 2.0}', "head", 0)[0] == 2.0
