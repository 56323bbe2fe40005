import os
import shutil
from pathlib import Path

import pytest

from isobench import git
from isobench.errors import IsobenchError


def test_resolve_and_resolve_many(mirror, demo):
    _, shas = demo
    assert git.resolve(mirror, "main") == shas["release"]
    assert git.resolve(mirror, shas["primes"][:8]) == shas["primes"]
    assert git.resolve(mirror, "0" * 40) is None
    got = git.resolve_many(mirror, [shas["topk"][:10], "deadbeef", "main"])
    assert got == {shas["topk"][:10]: shas["topk"], "deadbeef": None, "main": shas["release"]}


def test_first_parents(mirror, demo):
    _, shas = demo
    got = git.first_parents(mirror, [shas["wordfreq"], shas["initial"]])
    assert got == {shas["wordfreq"]: shas["readme-usage"], shas["initial"]: None}


def test_commit_info_and_changed_files(mirror, demo):
    _, shas = demo
    info = git.commit_info(mirror, shas["moving-average"])
    assert info["subject"] == "[Perf] Running-sum moving average"
    assert info["author"] == "Demo Author <demo@isobench.invalid>"
    assert info["authored_at"].startswith("2024-03-")
    files = git.changed_files(mirror, shas["primes"], shas["moving-average"])
    assert [(f["file_path"], f["change_type"]) for f in files] == [
        ("demokit/series.py", "modified"),
        ("tests/test_series.py", "modified"),
    ]
    assert files[1]["lines_added"] == 4 and files[1]["lines_removed"] == 0


def test_diff_restricted_to_paths(mirror, demo):
    _, shas = demo
    d = git.diff(mirror, shas["primes"], shas["moving-average"], ["tests/test_series.py"])
    assert "tests/test_series.py" in d and "demokit/series.py" not in d
    assert git.diff(mirror, shas["primes"], shas["moving-average"], []) == ""


def test_worktree_is_shared_and_reused(mirror, demo, tmp_path):
    _, shas = demo
    wt = git.ensure_worktree(mirror, shas["primes"], tmp_path / "wt")
    marker = wt / "demokit" / "numbers.py"
    assert "for divisor in primes" in marker.read_text()
    mtime = marker.stat().st_mtime_ns
    assert git.ensure_worktree(mirror, shas["primes"], tmp_path / "wt") == wt
    assert marker.stat().st_mtime_ns == mtime  # reused, not checked out again
    marker.write_text("tampered\n")  # a dirty worktree is rebuilt
    git.ensure_worktree(mirror, shas["primes"], tmp_path / "wt")
    assert "for divisor in primes" in marker.read_text()


def test_mirror_of_missing_repo_is_a_clear_error(tmp_path):
    with pytest.raises(IsobenchError, match="no such path"):
        git.ensure_mirror(str(tmp_path / "nope"), tmp_path / "m.git")


def test_mirror_fetch_sees_new_commits(demo, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(demo[0], src)
    m = git.ensure_mirror(str(src), tmp_path / "m.git")
    before = git.resolve(m, "main")
    (src / "NEW.txt").write_text("x\n")
    git.git("add", "NEW.txt", cwd=src)
    git.git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "new", cwd=src)
    git.ensure_mirror(str(src), m, fetch=False)
    assert git.resolve(m, "main") == before
    git.ensure_mirror(str(src), m, fetch=True)
    assert git.resolve(m, "main") == git.resolve(Path(src), "main") != before


def test_mirror_from_a_url(demo, tmp_path):
    m = git.ensure_mirror(demo[0].resolve().as_uri(), tmp_path / "url.git")
    assert git.resolve(m, "main") == demo[1]["release"]


def test_worktrees_share_file_contents_and_heal_in_place_edits(demo, mirror, tmp_path):
    _, shas = demo
    a = git.ensure_worktree(mirror, shas["primes"], tmp_path / "a")
    b = git.ensure_worktree(mirror, shas["histogram"], tmp_path / "b")
    same = a / "demokit" / "numbers.py"  # unchanged between the two commits
    assert same.read_text() == (b / "demokit" / "numbers.py").read_text()
    assert same.stat().st_ino == (b / "demokit" / "numbers.py").stat().st_ino and same.stat().st_nlink >= 2
    assert not git.git("status", "--porcelain", cwd=a).strip()
    original = same.read_text()
    os.chmod(same, 0o644)
    with open(same, "a") as fh:  # an in-place edit reaches the store and every worktree linking it
        fh.write("# edited\n")
    for path, sha in ((a, shas["primes"]), (b, shas["histogram"])):
        git.ensure_worktree(mirror, sha, path)
        assert (path / "demokit" / "numbers.py").read_text() == original
        assert not git.git("status", "--porcelain", "--untracked-files=no", cwd=path).strip()


def test_worktree_registrations_are_the_ones_git_writes(demo, tmp_path):
    """Registrations are written directly (no `git worktree add`): git must list, keep and prune them as
    its own, a deleted folder's registration is reused, and two folders of one name in different places
    get registrations of their own."""
    repo, shas = demo
    mirror = git.ensure_mirror(str(repo), tmp_path / "mirror.git")
    one = git.ensure_worktree(mirror, shas["primes"], tmp_path / "x" / "wt")
    two = git.ensure_worktree(mirror, shas["histogram"], tmp_path / "y" / "wt")
    listed = git.git("worktree", "list", "--porcelain", cwd=mirror)
    for path, sha in ((one, shas["primes"]), (two, shas["histogram"])):
        assert f"worktree {path.resolve()}\nHEAD {sha}\ndetached" in listed
        assert git.git("rev-parse", "HEAD", cwd=path).strip() == sha
    git.git("worktree", "prune", cwd=mirror)  # both folders exist: nothing pruned
    assert len(list((mirror / "worktrees").iterdir())) == 2

    shutil.rmtree(one)  # a stale registration: reused when the folder comes back
    again = git.ensure_worktree(mirror, shas["histogram"], one)
    assert len(list((mirror / "worktrees").iterdir())) == 2
    assert git.git("rev-parse", "HEAD", cwd=again).strip() == shas["histogram"]
    assert not git.git("status", "--porcelain", cwd=again).strip()
    shutil.rmtree(two)
    git.git("worktree", "prune", cwd=mirror)  # git prunes ours like its own
    assert [p.name for p in (mirror / "worktrees").iterdir()] == ["wt"]
