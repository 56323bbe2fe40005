"""Per-revision environments: a real virtualenv with the demo package installed by pip from the worktree."""

import subprocess

import pytest

from isobench import worktrees
from isobench.envs import build_env, expand
from isobench.measure.runners import Runner

# setuptools < 70 (a fresh venv of Python 3.11) builds wheels only with `wheel` installed: a setup step.
SETUP = "{python} -m pip install --quiet wheel && echo set up {sha}"
INSTALL = "{python} -m pip install --quiet --no-deps --no-build-isolation --no-index {worktree}"
VERIFY = (
    '{python} -c "import demokit, sys; p = demokit.__file__; '
    "sys.exit(0 if '{worktree}' not in p and 'site-packages' in p else 'not installed: ' + p)\""
)


@pytest.fixture
def worktree(demo, mirror, tmp_path):
    _, shas = demo
    return shas["primes"], worktrees.ensure_worktree(mirror, shas["primes"], tmp_path / "wt")


def test_expand_placeholders_only():
    assert (
        expand(
            "pip install https://x/{sha}/a.whl && echo ${HOME} {commit} {python} {worktree}",
            sha="abc",
            worktree="/w",
            python="/p/python",
        )
        == "pip install https://x/abc/a.whl && echo ${HOME} abc /p/python /w"
    )


def test_mode_none_runs_nothing(worktree, tmp_path):
    sha, wt = worktree
    marker = build_env(
        sha=sha,
        worktree=wt,
        env_dir=tmp_path / "env",
        cfg={"mode": "none"},
        setup_commands=["touch should-not-exist"],
        install_commands=[],
        runner=Runner(),
        log_path=tmp_path / "env.log",
    )
    assert marker["status"] == "ok" and marker["worktree_on_path"] and marker["commands_not_run"]
    assert not (wt / "should-not-exist").exists()


def test_venv_installs_the_package_of_the_sha(worktree, tmp_path):
    sha, wt = worktree
    marker = build_env(
        sha=sha,
        worktree=wt,
        env_dir=tmp_path / "env",
        cfg={"mode": "venv", "verify_command": VERIFY},
        setup_commands=[SETUP],
        install_commands=[INSTALL],
        runner=Runner(),
        log_path=tmp_path / "env.log",
    )
    assert marker["status"] == "ok", marker["error"]
    assert marker["python"] == str(tmp_path.resolve() / "env" / "venv" / "bin" / "python")
    assert not marker["worktree_on_path"]
    assert [c["kind"] for c in marker["commands"]] == ["setup", "install", "verify"]
    log = (tmp_path / "env.log").read_text()
    assert f"set up {sha}" in log and "[exit 0]" in log
    out = subprocess.run(
        [marker["python"], "-c", "import demokit.numbers as n; print(n.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert "site-packages" in out.stdout


def test_commands_run_as_in_the_activated_venv(worktree, tmp_path):
    """ISO-Bench's install commands say `pip install -e .`, not `{python} -m pip`: a bare python or pip is the
    revision's venv, never the host's."""
    sha, wt = worktree
    marker = build_env(
        sha=sha,
        worktree=wt,
        env_dir=tmp_path / "env",
        cfg={"mode": "venv", "system_site_packages": True},
        setup_commands=[],
        install_commands=["python -c \"import sys; print('prefix=' + sys.prefix)\"", "pip --version"],
        runner=Runner(),
        log_path=tmp_path / "env.log",
    )
    assert marker["status"] == "ok", marker["error"]
    venv = tmp_path.resolve() / "env" / "venv"
    log = (tmp_path / "env.log").read_text()
    assert f"prefix={venv}\n" in log and f"{venv}/lib/python" in log, log


def test_failing_install_or_verification_is_reported(worktree, tmp_path):
    sha, wt = worktree
    marker = build_env(
        sha=sha,
        worktree=wt,
        env_dir=tmp_path / "env",
        cfg={"mode": "venv"},
        setup_commands=[],
        install_commands=["{python} -m pip install --no-index no-such-package-isobench"],
        runner=Runner(),
        log_path=tmp_path / "env.log",
    )
    assert marker["status"] == "failed"
    assert marker["error"].startswith("install command exited with 1:")
    assert "no-such-package-isobench" in (tmp_path / "env.log").read_text()
    marker = build_env(
        sha=sha,
        worktree=wt,
        env_dir=tmp_path / "env",
        cfg={"mode": "venv", "verify_command": "false"},
        setup_commands=[],
        install_commands=[],
        runner=Runner(),
        log_path=tmp_path / "env.log",
    )
    assert marker["status"] == "failed" and marker["error"] == "verify command exited with 1: false"
