"""Every JSON file the workflow writes has a schema (isobench/artifacts.py), and is valid against it."""

import json
from collections import Counter

import pytest

from isobench import artifacts
from isobench.errors import IsobenchError
from isobench.jsonio import write_valid

pytestmark = pytest.mark.slow


def kinds_of(results) -> Counter:
    """The schema of every JSON file the run wrote; a file without one, or invalid, fails the test."""
    seen = Counter()
    for path, schema in artifacts.walk(results):
        assert schema, f"{path}: a JSON file the workflow wrote has no schema in isobench/artifacts.py"
        assert artifacts.check(path, schema) is None
        seen[schema] += 1
    return seen


def test_every_artifact_of_the_demo_run_has_its_schema(demo_run):
    seen = kinds_of(demo_run[0] / "results")
    commits = seen["record"]
    assert commits == 7 and seen["timing"] == 3 * commits and seen["seal"] == 2 * commits
    for schema in ("extraction", "prompt", "generator", "llm_transcript"):
        assert seen[schema] == commits, schema
    assert seen["worktree_marker"] == seen["env_marker"] > 0 and seen["llm_summary"] == 1


def test_a_step_never_writes_what_its_schema_refuses(tmp_path):
    path = tmp_path / "results" / "demo" / "_worktrees" / ("ab" * 20 + ".json")
    with pytest.raises(IsobenchError, match=r"_worktrees/abab.*\.json: field sha"):
        write_valid(path, {"sha": "not a sha", "path": "x"}, artifacts.schema_of("demo/_worktrees/x.json"))
    assert not path.exists()
    write_valid(path, {"sha": "ab" * 20, "path": "x"}, "worktree_marker")
    assert json.loads(path.read_text())["sha"] == "ab" * 20
    assert (
        artifacts.schema_of("demo/_worktrees/" + "ab" * 20 + "/pyproject.json") is None
    )  # the checkout's own
