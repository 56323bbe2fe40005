import json

from conftest import FIXTURES

from isobench import apis
from isobench.cli import main


def test_changed_lines():
    diff = (
        "diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n"
        "@@ -3,3 +3,4 @@ def f():\n ctx\n-old\n+new\n+--- not a header\n ctx\n"
    )
    assert apis.changed_lines(diff) == ({4}, {4, 5})


def test_affected_apis_names_methods_and_functions(tmp_path):
    from isobench import git

    repo = tmp_path / "r"
    repo.mkdir()
    git.git("init", "-q", "-b", "main", cwd=repo)
    src = "class A:\n    def m(self):\n        return 1\n\n\ndef f():\n    return 2\n\n\ndef g():\n    return 3\n"
    (repo / "mod.py").write_text(src)
    git.git("add", "-A", cwd=repo)
    git.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "one", cwd=repo)
    (repo / "mod.py").write_text(src.replace("return 1", "return 10").replace("return 3", "return 30"))
    git.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "two", cwd=repo)
    head = git.resolve(repo, "HEAD")
    base = git.resolve(repo, "HEAD~1")
    assert apis.affected_apis(repo, base, head, ["mod.py"]) == ["A.m", "g"]


def test_extract_command_writes_isobench_format(demo, tmp_path, capsys):
    path, shas = demo
    assert main(["extract", "--repo", str(path), "--out", str(tmp_path), "--grep", r"^\[Perf\] Running"]) == 0
    out = tmp_path / f"{shas['moving-average']}.json"
    assert capsys.readouterr().out.strip() == str(out)
    data = json.loads(out.read_text())
    assert list(data)[:2] == ["commit_hash", "parent_hash"]  # ISO-Bench's key order
    assert data["parent_hash"] == shas["primes"]
    assert all("old_content" not in f for f in data["files_changed"])
    assert data["summary"] == {"total_files": 2, "files_added": 0, "files_deleted": 0, "files_modified": 2}
    shipped = json.loads((FIXTURES / f"{shas['moving-average']}.json").read_text())
    assert shipped["files_changed"][0]["old_content"].startswith('"""Time-series helpers."""')


def test_extract_command_errors_are_one_line(demo, tmp_path, capsys):
    path, _ = demo
    assert main(["extract", "--repo", str(path), "--out", str(tmp_path), "0" * 40]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not found" in err
    assert main(["extract", "--repo", str(path), "--out", str(tmp_path), "--grep", "no such subject"]) == 1
