import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from isobench import git, worktrees
from isobench.errors import IsobenchError

ROOT = Path(__file__).resolve().parents[1]


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
    wt = worktrees.ensure_worktree(mirror, shas["primes"], tmp_path / "wt")
    marker = wt / "demokit" / "numbers.py"
    assert "for divisor in primes" in marker.read_text()
    mtime = marker.stat().st_mtime_ns
    assert worktrees.ensure_worktree(mirror, shas["primes"], tmp_path / "wt") == wt
    assert marker.stat().st_mtime_ns == mtime  # reused, not checked out again
    marker.write_text("tampered\n")  # a dirty worktree is rebuilt
    worktrees.ensure_worktree(mirror, shas["primes"], tmp_path / "wt")
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
    a = worktrees.ensure_worktree(mirror, shas["primes"], tmp_path / "a")
    b = worktrees.ensure_worktree(mirror, shas["histogram"], tmp_path / "b")
    same = a / "demokit" / "numbers.py"  # unchanged between the two commits
    assert same.read_text() == (b / "demokit" / "numbers.py").read_text()
    assert same.stat().st_ino == (b / "demokit" / "numbers.py").stat().st_ino and same.stat().st_nlink >= 2
    assert not git.git("status", "--porcelain", cwd=a).strip()
    original = same.read_text()
    os.chmod(same, 0o644)
    with open(same, "a") as fh:  # an in-place edit reaches the store and every worktree linking it
        fh.write("# edited\n")
    for path, sha in ((a, shas["primes"]), (b, shas["histogram"])):
        worktrees.ensure_worktree(mirror, sha, path)
        assert (path / "demokit" / "numbers.py").read_text() == original
        assert not git.git("status", "--porcelain", "--untracked-files=no", cwd=path).strip()


def test_worktree_registrations_are_the_ones_git_writes(demo, tmp_path):
    """git registers worktrees (`git worktree add --no-checkout`): it lists, keeps and prunes them, a deleted
    folder's registration is taken over when the folder comes back, and two folders of one name in
    different places get registrations of their own."""
    repo, shas = demo
    mirror = git.ensure_mirror(str(repo), tmp_path / "mirror.git")
    one = worktrees.ensure_worktree(mirror, shas["primes"], tmp_path / "x" / "wt")
    two = worktrees.ensure_worktree(mirror, shas["histogram"], tmp_path / "y" / "wt")
    listed = git.git("worktree", "list", "--porcelain", cwd=mirror)
    for path, sha in ((one, shas["primes"]), (two, shas["histogram"])):
        assert f"worktree {path.resolve()}\nHEAD {sha}\ndetached" in listed
        assert git.git("rev-parse", "HEAD", cwd=path).strip() == sha
    git.git("worktree", "prune", cwd=mirror)  # both folders exist: nothing pruned
    assert len(list((mirror / "worktrees").iterdir())) == 2

    shutil.rmtree(one)  # a stale registration: reused when the folder comes back
    again = worktrees.ensure_worktree(mirror, shas["histogram"], one)
    assert len(list((mirror / "worktrees").iterdir())) == 2
    assert git.git("rev-parse", "HEAD", cwd=again).strip() == shas["histogram"]
    assert not git.git("status", "--porcelain", cwd=again).strip()
    shutil.rmtree(two)
    git.git("worktree", "prune", cwd=mirror)  # git prunes ours like its own
    assert [p.name for p in (mirror / "worktrees").iterdir()] == ["wt"]


def _commit(repo: Path, message: str, author: str, email: str, date: str) -> str:
    env = {
        **os.environ,
        **git.GIT_ENV,
        "GIT_AUTHOR_NAME": author,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": "Committer",
        "GIT_COMMITTER_EMAIL": "c@isobench.invalid",
        "GIT_COMMITTER_DATE": "2024-05-02T03:04:05-07:00",
    }
    subprocess.run(["git", "add", "-A"], cwd=repo, env=env, check=True)
    subprocess.run(
        ["git", "commit", "-q", "--allow-empty", "--cleanup=verbatim", "-F", "-"],
        cwd=repo,
        env=env,
        input=message.encode(),
        check=True,
    )
    return git.git("rev-parse", "HEAD", cwd=repo).strip()


@pytest.fixture
def crafted(tmp_path):
    """(mirror, base, head) of a repository whose second commit renames a file, changes a binary one, turns a
    file into a symlink and edits files with non-ASCII and tab characters in their names."""
    repo = tmp_path / "crafted"
    git.git("init", "-q", "-b", "main", str(repo))
    (repo / "old name.txt").write_text("line\n" * 5)
    (repo / "data.bin").write_bytes(bytes(range(256)))
    (repo / "café.py").write_text("x = 1\n")
    (repo / "link").write_text("plain\n")
    base = _commit(repo, "initial\n", "A", "a@a", "2020-01-01T00:00:00+00:00")
    os.rename(repo / "old name.txt", repo / "new name.txt")
    (repo / "data.bin").write_bytes(bytes(range(256)) * 2)
    (repo / "café.py").write_text("x = 2\ny = 3\n")
    (repo / "link").unlink()
    os.symlink("café.py", repo / "link")
    (repo / "tab\there.txt").write_text("t\n")
    message = "\n[Perf] Faster   \nparsing of things\n\nWhy: the body,\n  over lines.\n\n"
    head = _commit(repo, message, "Zoë Ünïcode", "zoe@isobench.invalid", "2024-03-05T10:20:30+05:30")
    return git.ensure_mirror(str(repo), tmp_path / "crafted.git"), base, head


def test_commit_info_of_a_multi_line_message_and_non_ascii_author(crafted):
    mirror, _, head = crafted
    assert git.commit_info(mirror, head[:10]) == {
        "sha": head,
        "author": "Zoë Ünïcode <zoe@isobench.invalid>",
        "authored_at": "2024-03-05T10:20:30+05:30",
        "committed_at": "2024-05-02T03:04:05-07:00",
        "date_git": "2024-03-05 10:20:30 +0530",
        "subject": "[Perf] Faster parsing of things",  # git's %s: the first paragraph on one line
        "message": "\n[Perf] Faster   \nparsing of things\n\nWhy: the body,\n  over lines.",
    }
    with pytest.raises(IsobenchError) as err:
        git.commit_info(mirror, "0" * 40)
    assert "\n" not in str(err.value)


def test_changed_files_and_diff_with_a_rename_a_binary_file_and_odd_names(crafted):
    mirror, base, head = crafted
    files = {
        f["file_path"]: (f["change_type"], f["lines_added"], f["lines_removed"])
        for f in git.changed_files(mirror, base, head)
    }
    assert files == {
        "café.py": ("modified", 2, 1),  # the real name, not git's quoted "caf\303\251.py"
        "data.bin": ("modified", 0, 0),  # binary: no lines counted
        "link": ("modified", 1, 1),  # a file turned into a symlink: one entry
        "new name.txt": ("added", 5, 0),  # renames are a deletion and an addition
        "old name.txt": ("deleted", 0, 5),
        "tab\there.txt": ("added", 1, 0),
    }
    d = git.diff(mirror, base, head)
    assert "Binary files a/data.bin and b/data.bin differ\n" in d and "+y = 3\n" in d
    assert "deleted file mode 100644" in d and d.endswith("\n")
    only = git.diff(mirror, base, head, ["café.py"])
    assert only.startswith("diff --git") and "data.bin" not in only and "+x = 2\n" in only
    with pytest.raises(IsobenchError, match="^git diff failed"):
        git.diff(mirror, "0" * 40, head)


def test_reading_ignores_the_users_git_config(crafted, tmp_path, monkeypatch):
    """git run by GitPython has GIT_ENV too: a user's config (here: no a/ b/ prefixes) changes nothing."""
    mirror, base, head = crafted
    expected = git.diff(mirror, base, head)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / ".gitconfig").write_text("[diff]\n\tnoprefix = true\n")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "home"))
    plain = subprocess.run(["git", "diff", base, head], cwd=mirror, capture_output=True, text=True).stdout
    assert "diff --git data.bin data.bin" in plain  # the config works on git run without GIT_ENV
    assert git.diff(mirror, base, head) == expected and "diff --git a/data.bin b/data.bin" in expected


def test_resolve_names_tags_and_relative_revisions(crafted):
    mirror, base, head = crafted
    git.git(
        "tag",
        "-a",
        "-m",
        "v1",
        "v1",
        base,
        cwd=mirror,
        env={"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"},
    )
    assert git.resolve(mirror, "v1") == base  # an annotated tag: its commit
    assert git.resolve(mirror, "main~1") == base and git.resolve(mirror, "main") == head
    assert git.resolve(mirror, f"{head}^{{tree}}") is None and git.resolve(mirror, "no/such") is None
    got = git.resolve_many(mirror, ["v1", head[:7], "main^", "zzz", "line\nbreak"])
    assert got == {"v1": base, head[:7]: head, "main^": base, "zzz": None, "line\nbreak": None}
    assert git.first_parents(mirror, [head, base]) == {head: base, base: None}


def test_show_file_reads_blobs(crafted):
    mirror, base, head = crafted
    assert git.show_file(mirror, head, "café.py") == "x = 2\ny = 3\n"
    assert git.show_file(mirror, base, "café.py") == "x = 1\n"
    assert git.show_file(mirror, head, "link") == "café.py"  # a symlink's blob: its target
    assert (
        git.show_file(mirror, head, "old name.txt") is None and git.show_file(mirror, "0" * 40, "x") is None
    )


def test_worktree_whose_folder_was_deleted_is_made_again(crafted, tmp_path):
    """Also when `git worktree add` was killed half-way, leaving its registration locked."""
    mirror, base, head = crafted
    wt = worktrees.ensure_worktree(mirror, head, tmp_path / "wt")
    assert os.readlink(wt / "link") == "café.py" and (wt / "tab\there.txt").read_text() == "t\n"
    assert f"worktree {wt.resolve()}\nHEAD {head}\ndetached" in git.git(
        "worktree", "list", "--porcelain", cwd=mirror
    )
    shutil.rmtree(wt)
    (mirror / "worktrees" / "wt" / "locked").write_text("initializing\n")
    worktrees.ensure_worktree(mirror, base, wt)
    assert git.git("rev-parse", "HEAD", cwd=wt).strip() == base
    assert not git.git("status", "--porcelain", cwd=wt).strip()
    assert [p.name for p in (mirror / "worktrees").iterdir()] == ["wt"]


_WORKER = """
import sys
from pathlib import Path
from isobench import worktrees
mirror, sha, path = sys.argv[1:]
print(worktrees.ensure_worktree(Path(mirror), sha, Path(path)))
"""


def test_worktrees_made_by_several_processes_at_once(crafted, tmp_path):
    mirror, base, head = crafted
    jobs = [(sha, tmp_path / name) for sha, name in ((head, "a"), (base, "b")) for _ in range(3)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(mirror), sha, str(path)], cwd=ROOT, stderr=subprocess.PIPE
        )
        for sha, path in jobs
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs), [p.stderr.read() for p in procs]
    for sha, path in jobs[::3]:
        assert git.git("rev-parse", "HEAD", cwd=path).strip() == sha
        assert not git.git("status", "--porcelain", cwd=path).strip()
    assert len(list((mirror / "worktrees").iterdir())) == 2


def test_a_crafted_tree_never_writes_outside_its_worktree(tmp_path):
    """A repository is an input too: a tree entry named ``..`` (git itself refuses to check it out) makes the
    worktree fail with one line, and nothing lands beside it."""
    repo = tmp_path / "crafted-repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def git_out(*args, stdin=None):
        return subprocess.run(
            ["git", "-C", str(repo), *args], input=stdin, capture_output=True, text=True, check=True
        ).stdout.strip()

    blob = git_out("hash-object", "-w", "--stdin", stdin="pwned\n")
    inner = git_out("mktree", stdin=f"100644 blob {blob}\tevil.txt\n")
    outer = git_out("mktree", stdin=f"040000 tree {inner}\t..\n")
    env = {**os.environ, "GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a"}
    env["GIT_COMMITTER_EMAIL"] = "a@b"
    sha = subprocess.run(
        ["git", "-C", str(repo), "commit-tree", "-m", "crafted", outer],
        env=env,
        capture_output=True,
        text=True,
    ).stdout.strip()
    subprocess.run(["git", "-C", str(repo), "update-ref", "refs/heads/main", sha], check=True)
    mirror = git.ensure_mirror(str(repo), tmp_path / "m" / "mirror.git")
    with pytest.raises(IsobenchError, match="not a safe path"):
        worktrees.ensure_worktree(mirror, sha, tmp_path / "wt" / sha)
    assert not (tmp_path / "wt" / "evil.txt").exists() and not list(tmp_path.rglob("evil.txt"))
