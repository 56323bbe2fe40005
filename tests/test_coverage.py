"""Did the test run the change: the commit's diff read, one untimed traced call at base and head, the verdict."""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from conftest import JSON_CHECKS

from isobench.jsonio import validate
from isobench.measure import harness, tracer
from isobench.measure.change import Change, compiled_ranges, parse_patch
from isobench.measure.coverage import combine, side_facts
from isobench.measure.job import Revision, Settings
from isobench.measure.rounds import measure_commit
from isobench.record import figures

FAST = Settings(rounds=2, max_rounds=2, warmup=1, warmup_ms=0, repeat=2, timeout_s=60)

BASE = '''\
"""Toy kernels."""


def jit(fn):  # a compiler's decorator: the body never runs as Python
    return lambda *args: sum(args)


def fast(n):
    total = 0
    for i in range(n):
        total += i
    return total


def other(n):
    return n * 2


@jit
def kernel(a, b):
    return a - b
'''

HEAD = BASE.replace(
    "    total = 0\n    for i in range(n):\n        total += i\n    return total\n",
    "    return n * (n - 1) // 2\n",
).replace("    return a - b\n", "    return b - a\n")


def git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def change_and_revisions(tmp_path):
    """A real commit (pkg/toy.py and a CUDA file) and its three revisions' folders; (Change, revisions)."""
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / "pkg" / "__init__.py").write_text("")
    (repo / "pkg" / "toy.py").write_text(BASE)
    (repo / "csrc").mkdir()
    (repo / "csrc" / "toy.cu").write_text("int x;\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base")
    (repo / "pkg" / "toy.py").write_text(HEAD)
    (repo / "csrc" / "toy.cu").write_text("int y;\n")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "head")
    patch = git(repo, "diff", "HEAD~1", "HEAD")
    revisions = []
    for i, (name, text) in enumerate((("base", BASE), ("head", HEAD), ("main", HEAD))):
        root = tmp_path / name
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "__init__.py").write_text("")
        (root / "pkg" / "toy.py").write_text(text)
        revisions.append(Revision(name, f"{i}" * 40, root))
    functions = ("pkg/toy.py::fast", "pkg/toy.py::kernel")
    return Change(tuple(parse_patch(patch)), functions), revisions


def generator(tmp_path, experiment: str, head: str = "") -> str:
    text = (
        "import json\nimport threading\n"
        + head
        + "\nfrom pkg import toy\n\ndef setup():\n    return 300\n"
        + JSON_CHECKS
        + textwrap.dedent(experiment)
    )
    path = tmp_path / "generator.py"
    path.write_text(text)
    return path


def measured(tmp_path, change, revisions, experiment, **kw):
    timings = measure_commit(
        generator(tmp_path, experiment, **kw), revisions, tmp_path / "scratch", FAST, change=change
    )
    for t in timings.values():
        validate(t, "timing", t["revision"])
    return timings


def test_the_diff_is_read_per_file_and_side(change_and_revisions):
    change, _ = change_and_revisions
    assert change.compiled_sources() == ["csrc/toy.cu"]
    head, base = change.side("head"), change.side("base")
    assert set(head) == set(base) == {"pkg/toy.py"}
    assert head["pkg/toy.py"] == {9, 18} and base["pkg/toy.py"] == {9, 10, 11, 12, 21}
    added = parse_patch(
        "diff --git a/x.py b/x.py\nnew file mode 100644\n--- /dev/null\n+++ b/x.py\n@@ -0,0 +1 @@\n+a\n"
    )
    assert added[0].old is None and added[0].new == "x.py" and added[0].added == {1}
    renamed = parse_patch(
        "diff --git a/old.py b/new.py\nsimilarity index 100%\nrename from old.py\nrename to new.py\n"
    )
    assert (renamed[0].old, renamed[0].new) == ("old.py", "new.py")


def test_a_test_that_runs_the_change_is_exercised_and_ok(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    t = measured(tmp_path, change, revisions, "def experiment(n):\n    return toy.fast(n)\n")
    assert {n: t[n]["status"] for n in t} == {"base": "ok", "head": "ok", "main": "ok"}
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "exercised" and cov["changed_lines_covered"] == 1.0
    assert cov["changed_lines"] == {
        "base": {"covered": 4, "measurable": 4},
        "head": {"covered": 1, "measurable": 1},
    }
    assert cov["functions_hit"] == ["pkg/toy.py::fast"] and cov["functions_missed"] == []
    # the kernel's body is compiled (never Python), the CUDA file is not Python: neither is guessed at
    assert cov["not_measurable"] == ["csrc/toy.cu", "pkg/toy.py"]
    assert cov["imported_from"] == [
        {"revision": name, "path": "pkg/toy.py", "place": "worktree"} for name in ("base", "head")
    ]
    assert t["main"]["coverage"] is None  # main is not traced
    assert t["head"]["coverage"]["method"] in ("settrace", "sys.monitoring")
    # the record's figures carry the verdict, recomputed from the timing files
    assert figures(t, {}, "ok")["coverage"] == cov


def python_only(change: Change) -> Change:
    """The commit less its CUDA file."""
    return Change(tuple(f for f in change.files if f.new.endswith(".py")), change.functions)


def test_a_test_that_runs_other_code_is_target_not_exercised(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    t = measured(tmp_path, python_only(change), revisions, "def experiment(n):\n    return toy.other(n)\n")
    assert t["head"]["category"] == "target_not_exercised" and t["base"]["status"] == "ok"
    assert (
        "none of the 1 measurable changed lines at head nor any of the 1 changed functions"
        in t["head"]["error"]
    )
    assert t["head"]["samples_ms"]  # the check round's samples are kept
    assert t["head"]["rounds_ms"] and len(t["base"]["rounds_ms"]) == FAST.rounds  # head stopped, base went on
    numbers = figures(t, {}, "ok")
    assert numbers["status"] == "failed" and numbers["coverage"]["status"] == "not_exercised"


def test_a_commit_that_also_changes_compiled_code_is_never_failed_for_its_python(
    tmp_path, change_and_revisions
):
    change, revisions = change_and_revisions  # pkg/toy.py and csrc/toy.cu
    t = measured(tmp_path, change, revisions, "def experiment(n):\n    return toy.other(n)\n")
    assert t["head"]["status"] == "ok"
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "not_measurable" and "csrc/toy.cu" in cov["reason"]
    assert cov["changed_lines_covered"] == 0


def test_a_fallback_that_never_imports_the_change_fails_even_beside_compiled_code(
    tmp_path, change_and_revisions
):
    change, revisions = change_and_revisions  # pkg/toy.py and csrc/toy.cu
    # the target's import fails (as sglang's did where ISO-Bench ran), the test times its own stand-in
    head = (
        "try:\n    from pkg.fast_toy import fast\nexcept ImportError:\n    fast = lambda n: sum(range(n))\n"
    )
    text = generator(tmp_path, "def experiment(n):\n    return fast(n)\n", head=head).read_text()
    gen = tmp_path / "generator.py"
    gen.write_text(text.replace("from pkg import toy\n", ""))
    t = measure_commit(gen, revisions, tmp_path / "scratch", FAST, change=change)
    assert t["head"]["category"] == "target_not_exercised"
    assert "no changed module was imported from the revision at head (pkg/toy.py)" in t["head"]["error"]


def test_a_test_whose_work_runs_in_another_process_is_not_failed(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    experiment = """
    import subprocess, sys
    def experiment(n):
        out = subprocess.run([sys.executable, "-c", f"from pkg import toy; print(toy.fast({n}))"],
                             capture_output=True, text=True, check=True)
        return int(out.stdout)
    """
    t = measured(tmp_path, python_only(change), revisions, experiment)
    assert t["head"]["status"] == "ok", t["head"]["error"]
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "not_measurable" and "other processes" in cov["reason"]
    assert t["head"]["coverage"]["unseen"]["spawned"] == ["subprocess.Popen"]


def test_a_change_inside_a_compiled_function_only_is_not_measurable(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    only_kernel = Change(tuple(f for f in change.files if f.new == "pkg/toy.py"), ("pkg/toy.py::kernel",))
    only_kernel = Change(
        tuple(type(f)(f.old, f.new, frozenset({21}), frozenset({18})) for f in only_kernel.files),
        only_kernel.functions,
    )
    t = measured(tmp_path, only_kernel, revisions, "def experiment(n):\n    return toy.kernel(n, 1)\n")
    assert t["head"]["status"] == "ok"
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "not_measurable" and cov["changed_lines_covered"] is None
    assert compiled_ranges(HEAD) == [(16, 18)]  # from its decorator


def test_changed_code_run_in_a_thread_is_seen(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    experiment = """
    def experiment(n):
        out = []
        worker = threading.Thread(target=lambda: out.append(toy.fast(n)))
        worker.start()
        worker.join()
        return out[0]
    """
    t = measured(tmp_path, change, revisions, experiment)
    assert t["head"]["status"] == "ok"
    assert combine(t["base"]["coverage"], t["head"]["coverage"])["status"] == "exercised"


def test_a_changed_module_from_outside_the_revision_is_target_imported_elsewhere(
    tmp_path, change_and_revisions
):
    change, revisions = change_and_revisions
    # an older release, installed where the test finds it first (written by the test: the sandbox shows it
    # nothing of the host's /tmp)
    head = textwrap.dedent(
        f"""
        import os, sys
        os.makedirs("installed/pkg", exist_ok=True)
        open("installed/pkg/__init__.py", "w").close()
        open("installed/pkg/toy.py", "w").write({BASE!r})
        sys.path.insert(0, os.path.abspath("installed"))
        """
    )
    t = measured(tmp_path, change, revisions, "def experiment(n):\n    return toy.fast(n)\n", head=head)
    for name in ("base", "head"):
        assert t[name]["category"] == "target_imported_elsewhere", t[name]["error"]
        assert "installed/pkg/toy.py" in t[name]["error"]
    assert combine(t["base"]["coverage"], t["head"]["coverage"])["status"] == "imported_elsewhere"


def test_a_package_installed_in_the_revisions_environment_counts_as_its_own(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    envs = []
    for rev in revisions:
        venv = tmp_path / f"venv-{rev.name}"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        site = next(venv.glob("lib/python3*/site-packages"))
        (site / "pkg").mkdir()
        for name in ("__init__.py", "toy.py"):
            (site / "pkg" / name).write_text((rev.worktree / "pkg" / name).read_text())
        envs.append(
            Revision(
                rev.name,
                rev.sha,
                rev.worktree,
                python=str(venv / "bin" / "python"),
                read_only=(venv,),
                on_path=False,
            )
        )
    t = measured(tmp_path, change, envs, "def experiment(n):\n    return toy.fast(n)\n")
    assert t["head"]["status"] == "ok", t["head"]["error"]
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "exercised"
    assert {r["place"] for r in cov["imported_from"]} == {"environment"}
    assert cov["changed_lines_covered"] == 1.0


CLI = """
import argparse, json, sys, time
from pkg import toy

parser = argparse.ArgumentParser()
parser.add_argument("--eqcheck", action="store_true")
parser.add_argument("--reference", action="store_true")
parser.add_argument("--prefix", type=str, default="")
args = parser.parse_args()
start = time.perf_counter()
result = CALL
ms = (time.perf_counter() - start) * 1e3
if args.reference:
    json.dump(result, open(args.prefix + "_r.json", "w"))
if args.eqcheck:
    assert json.load(open(args.prefix + "_r.json")) == result
print(json.dumps({"avg_ms": ms, "opt_path_hit": True}))
sys.exit(0)
"""


@pytest.mark.parametrize(
    "call, status", [("toy.fast(300)", "exercised"), ("toy.other(300)", "not_exercised")]
)
def test_a_command_line_script_is_traced_from_start_to_end(tmp_path, change_and_revisions, call, status):
    change, revisions = change_and_revisions
    gen = tmp_path / "generator.py"
    gen.write_text(CLI.replace("CALL", call))
    t = measure_commit(gen, revisions, tmp_path / "scratch", FAST, change=python_only(change))
    assert t["head"]["contract"] == "isobench_cli"
    cov = combine(t["base"]["coverage"], t["head"]["coverage"], opt_path_hit=True)
    assert cov["status"] == status and cov["opt_path_hit_reported"] is True
    assert (t["head"]["category"] == "target_not_exercised") is (status == "not_exercised")


def test_a_test_that_fails_only_when_traced_is_not_traced_and_says_so(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    experiment = """
    import sys
    def experiment(n):
        if sys.gettrace() is not None or getattr(getattr(sys, "monitoring", None), "get_tool", lambda t: None)(1):
            raise RuntimeError("traced")
        return toy.fast(n)
    """
    t = measured(tmp_path, change, revisions, experiment)
    assert t["head"]["status"] == "ok"
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "not_traced" and "RuntimeError: traced" in cov["reason"]
    assert any(w.startswith("coverage not known") for w in t["head"]["warnings"])
    assert json.dumps(cov)  # plain JSON


def interpreters() -> list[str]:
    """The workflow's Python and every other working Python 3 version on PATH (3.12+ takes sys.monitoring's way)."""
    found = {sys.version_info[:2]: sys.executable}
    for minor in range(8, 16):
        path = shutil.which(f"python3.{minor}")
        if not path or (3, minor) in found:
            continue
        probe = subprocess.run([path, "-c", "import json"], capture_output=True, timeout=30)
        if probe.returncode == 0:  # a pyenv shim without its version fails here
            found[(3, minor)] = path
    return [found[v] for v in sorted(found)]


@pytest.mark.parametrize("python", interpreters())
def test_the_tracer_sees_the_same_lines_in_every_python(tmp_path, python):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "toy.py").write_text(BASE)
    code = tmp_path / "code"
    code.mkdir()
    for worker in (harness, tracer):
        shutil.copy(worker.__file__, code)
    (code / "targets.json").write_text(
        json.dumps([{"rel": "pkg/toy.py", "path": str(tmp_path / "pkg" / "toy.py")}])
    )
    test = generator(code, "def experiment(n):\n    return toy.fast(n) + toy.kernel(1, 2)\n")
    out = tmp_path / "report.json"
    cmd = [python, str(code / "harness.py"), "--module", str(test), "--mode", "coverage", "--coverage"]
    cmd += [
        str(code / "targets.json"),
        "--warmup",
        "1",
        "--repeat",
        "1",
        "--warmup-ms",
        "0",
        "--out",
        str(out),
    ]
    subprocess.run(cmd, check=True, env={"PYTHONPATH": str(tmp_path)}, timeout=60)
    report = json.loads(out.read_text())
    assert report["status"] == "ok", report
    traced = report["coverage"]
    version = tuple(int(x) for x in traced["python"].split(".")[:2])
    assert traced["method"] == ("sys.monitoring" if version >= (3, 12) else "settrace")
    (entry,) = traced["files"]
    # fast's body ran (not its def line, where a call starts in some Pythons only), the kernel's body never
    # does (the compiler's one-line stand-in is a first line too), nothing at import
    assert entry["executed"] == [9, 10, 11, 12] and entry["loaded_from"] == str(tmp_path / "pkg" / "toy.py")
    assert 21 in entry["executable"] and 4 not in entry["executed"]


def test_a_forged_tracer_report_is_never_believed_nor_a_crash(tmp_path, change_and_revisions):
    change, revisions = change_and_revisions
    # the test rewrites the tracer's report from inside its process: files that are not the change's, a path
    # to a device, lines that are not numbers
    experiment = """
    import sys
    def experiment(n):
        frame = sys._getframe()
        while frame is not None:  # the tracer that traces this call, found up the stack
            tracer = frame.f_locals.get("tracer")
            if hasattr(tracer, "report"):
                type(tracer).report = lambda self: {"method": ["x"], "files": [
                    {"rel": "/dev/zero", "executable": [1], "executed": ["all"], "executed_in": ["/dev/zero"],
                     "loaded_from": None}]}
            frame = frame.f_back
        return toy.other(n)
    """
    t = measured(tmp_path, python_only(change), revisions, experiment)
    assert t["head"]["status"] == "ok", (t["head"]["category"], t["head"]["error"])
    cov = combine(t["base"]["coverage"], t["head"]["coverage"])
    assert cov["status"] == "not_traced" and "malformed" in cov["reason"]
    # a well-formed forgery that names other files only: the change's own file is judged, never imported
    forged = {
        "method": "settrace",
        "files": [
            {"rel": "/dev/zero", "executable": [1], "executed": [1], "executed_in": [], "loaded_from": None}
        ],
    }
    facts = side_facts("head", python_only(change), forged, revisions[1].worktree)
    assert [f["path"] for f in facts["files"]] == ["pkg/toy.py"] and facts["files"][0][
        "imported_from"
    ] == "not_imported"
    for bad in (
        {"files": "x"},
        {"files": [1]},
        {"files": [{"rel": 3}]},
        {"files": [{"rel": "a", "executed": None}]},
        {"files": [{"rel": "a", "executed": [], "executed_in": ["a\0b"]}]},
    ):
        with pytest.raises(ValueError):
            side_facts("head", python_only(change), bad, revisions[1].worktree)
