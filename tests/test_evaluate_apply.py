"""Patches applied strictly to fresh trees of a real repository: new, deleted, renamed and binary files, a missing
final newline; a patch that does not apply is patch_failed with git's own words; identical patches are one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from isobench import git
from isobench.evaluate import apply


def sh(*args, cwd):
    return subprocess.run(args, cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """(mirror, base sha, a working clone at base) of a small repository."""
    src = tmp_path / "src"
    src.mkdir()
    sh("git", "init", "-q", "-b", "main", cwd=src)
    (src / "pkg").mkdir()
    (src / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (src / "pkg" / "old.py").write_text("X = 1\n")
    (src / "pkg" / "gone.py").write_text("Y = 2\n")
    (src / "data.bin").write_bytes(bytes(range(256)) * 4)
    (src / "tests").mkdir()
    (src / "tests" / "test_mod.py").write_text("def test_f():\n    assert True\n")
    sh("git", "add", "-A", cwd=src)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "base", cwd=src)
    base = sh("git", "rev-parse", "HEAD", cwd=src).strip()
    mirror = git.ensure_mirror(str(src), tmp_path / "mirror.git")
    return mirror, base, src


def diff_of(src: Path, edit) -> str:
    """The diff an edit of the clone makes (binary included), the clone reset after."""
    edit(src)
    sh("git", "add", "-A", cwd=src)
    out = subprocess.run(
        ["git", "diff", "--cached", "--binary"], cwd=src, capture_output=True
    ).stdout.decode()
    sh("git", "reset", "-q", "--hard", cwd=src)
    sh("git", "clean", "-qfd", cwd=src)
    return out


def test_every_kind_of_change_applies(repo, tmp_path):
    mirror, base, src = repo

    def edit(root: Path):
        (root / "pkg" / "mod.py").write_text("def f():\n    return 2")  # no final newline
        (root / "pkg" / "new.py").write_text("Z = 3\n")
        (root / "pkg" / "gone.py").unlink()
        sh("git", "mv", "pkg/old.py", "pkg/renamed.py", cwd=root)
        (root / "data.bin").write_bytes(bytes(reversed(range(256))) * 4)

    patch = diff_of(src, edit)
    assert "GIT binary patch" in patch and "\\ No newline at end of file" in patch
    tree = tmp_path / "trees" / "c1"
    done = apply.apply_patch(mirror, base, patch, tree)
    assert done.status == "applied" and done.method == "git", done.message
    assert (tree / "pkg" / "mod.py").read_text() == "def f():\n    return 2"
    assert (tree / "pkg" / "new.py").exists() and not (tree / "pkg" / "gone.py").exists()
    assert (tree / "pkg" / "renamed.py").exists() and not (tree / "pkg" / "old.py").exists()
    assert (tree / "data.bin").read_bytes() == bytes(reversed(range(256))) * 4
    applied = apply.applied_diff(tree)
    assert "pkg/new.py" in applied and "GIT binary patch" in applied
    # a second candidate starts from a fresh tree, never the used one
    (tree / "stray.txt").write_text("left by a test")
    again = apply.apply_patch(mirror, base, patch, tree)
    assert again.status == "applied" and not (tree / "stray.txt").exists()
    apply.drop_tree(mirror, tree)
    assert not tree.exists()


def test_a_patch_that_does_not_apply_is_never_forced(repo, tmp_path):
    mirror, base, src = repo
    patch = diff_of(src, lambda r: (r / "pkg" / "mod.py").write_text("def f():\n    return 3\n"))
    bad = patch.replace("-    return 1", "-    return 100")  # a line the file does not have
    tree = tmp_path / "t"
    done = apply.apply_patch(mirror, base, bad, tree)
    assert done.status == "patch_failed" and done.method is None
    assert "patch does not apply" in done.message or "patch failed" in done.message
    assert not tree.exists()  # nothing left half-applied
    # fuzzy, only when asked: `patch --fuzz` takes what git refused, and says so
    loose = (
        "--- a/pkg/mod.py\n+++ b/pkg/mod.py\n@@ -1,3 +1,3 @@\n def f():\n-    return 1\n+    return 3\n"
        " # a context line the file lacks\n"
    )
    assert apply.apply_patch(mirror, base, loose, tree).status == "patch_failed"
    fuzzy = apply.apply_patch(mirror, base, loose, tree, "fuzzy")
    assert fuzzy.status == "applied" and fuzzy.method == "fuzz", fuzzy.message
    assert (tree / "pkg" / "mod.py").read_text() == "def f():\n    return 3\n"
    garbage = apply.apply_patch(mirror, base, "not a patch at all\n", tree)
    assert garbage.status == "patch_failed"


def test_normalizing_and_flags():
    p = "diff --git a/x.py b/x.py\nindex 1111111..2222222 100644\n--- a/x.py\n+++ b/x.py\n@@ -1 +1 @@\n-a\n+b\n"
    same = p.replace("index 1111111..2222222", "index abcdef0..1234567").replace("\n", "\r\n") + "\n\n"
    assert apply.digest(p) == apply.digest(same) != apply.digest(p.replace("+b", "+c"))
    assert apply.digest("") == apply.digest(None) == apply.digest("  \n") == apply.EMPTY_DIGEST
    tests = "diff --git a/tests/test_x.py b/tests/test_x.py\n--- a/tests/test_x.py\n+++ b/tests/test_x.py\n"
    build = "diff --git a/setup.py b/setup.py\n--- a/setup.py\n+++ b/setup.py\n"
    startup = (
        "diff --git a/sitecustomize.py b/sitecustomize.py\nnew file mode 100644\n"
        "--- /dev/null\n+++ b/sitecustomize.py\n"
    )
    assert apply.flags_of(p, set())["touches_tests"] is False
    assert apply.flags_of(tests, set())["touches_tests"] is True
    assert apply.flags_of(p, {"x.py"})["touches_tests"] is True  # one of the record's own test files
    assert apply.flags_of(build, set())["touches_build"] is True
    assert apply.flags_of(startup, set())["build_paths"] == ["sitecustomize.py"]


@pytest.mark.parametrize("method", ["strict", "fuzzy"])
def test_a_patch_never_writes_outside_its_tree(repo, tmp_path, method):
    mirror, base, _ = repo
    victim = tmp_path / "victim.txt"
    for target in ("../victim.txt", str(victim), "../../victim.txt"):
        patch = f"--- /dev/null\n+++ b/{target}\n@@ -0,0 +1 @@\n+owned\n"
        git_style = f"diff --git a/{target} b/{target}\nnew file mode 100644\n" + patch
        for text in (patch, git_style):
            done = apply.apply_patch(mirror, base, text, tmp_path / "trees" / "t", method)
            assert not victim.exists(), (target, method, done)
            assert not (tmp_path / "trees" / "victim.txt").exists()
