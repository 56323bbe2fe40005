import json

import pytest
from conftest import FIXTURES, ROOT, SHARED_FIXTURES

from isobench.errors import IsobenchError
from isobench.extraction import commit_id_of_file, detect_format, is_test_file, normalize, read_extraction
from isobench.extraction_writer import write_extractions
from isobench.jsonio import validate

PR_FILE = FIXTURES / "pr_analysis_demokit_4c442c6e53dfef740b17f99fa3d40736e33f7800.json"
COMMIT_FILE = FIXTURES / "b4810b61e1ebebf853a8d70b094c09e99200bd69.json"


def norm(mirror, commit, path):
    return normalize(
        source="demo", repo_name="isobench/demokit", mirror=mirror, commit=commit, extraction_file=path
    )


def test_is_test_file():
    assert is_test_file("tests/test_x.py") and is_test_file("pkg/testing/util.py")
    assert is_test_file("pkg/test_api.py") and is_test_file("pkg/api_test.py") and is_test_file("conftest.py")
    assert not is_test_file("pkg/contest.py") and not is_test_file("benchmarks/latest.py")


def test_commit_id_of_file():
    assert commit_id_of_file(PR_FILE) == "4c442c6e53dfef740b17f99fa3d40736e33f7800"
    assert commit_id_of_file(COMMIT_FILE) == "b4810b61e1ebebf853a8d70b094c09e99200bd69"
    assert commit_id_of_file(FIXTURES / "notes.json") is None


def test_detect_both_formats():
    assert read_extraction(COMMIT_FILE)[0] == "commit_extractions_with_apis"
    assert read_extraction(PR_FILE)[0] == "pr_analysis"
    with pytest.raises(IsobenchError, match="unsupported extraction format"):
        detect_format({"hello": 1})


def test_formats_registry_is_the_schema_list_and_decides_as_before():
    """One module per format (isobench/formats/): the record schema's list of formats is the registry's (and
    git's), each has its schema file and its name in the docs; a file claimed by two formats goes to the surer."""
    from isobench import formats
    from isobench.jsonio import schema

    assert schema("extraction")["properties"]["format"]["enum"] == [*formats.FORMATS, "git"]
    docs = (ROOT / "docs" / "configuration.md").read_text()
    for name, fmt in formats.FORMATS.items():
        assert schema(fmt.schema)["type"] == "object" and f"`{name}`" in docs
    both = {"commit_hash": "ab" * 20, "message": "m", "diff_text": "d"}
    assert detect_format(both) == "pr_analysis"  # diff_text outranks a bare commit and message
    assert detect_format({"commit_hash": "ab" * 20, "message": "m"}) == "commit_extractions_with_apis"
    assert detect_format({**both, "subject": "s"}) == "commit_collection"
    assert detect_format({**both, "subject": "s", "parent_hash": "cd" * 20}) == "commit_extractions_with_apis"
    text = '{"commit_hash": "%s", "parent_hash": "%s", "files_changed": [' % ("ab" * 20, "CD" * 20)
    assert formats.peek(text) == ("cd" * 20, True) and formats.peek('{"commit_hash": "ab"') == (None, False)
    assert formats.commit_in_text('{"commit_hash": "ABCDEF12", "x": [broken') == "abcdef12"


@pytest.mark.skipif(not SHARED_FIXTURES.is_dir(), reason="shared ISO-Bench samples not present")
def test_real_isobench_files_are_read():
    formats = {p.name: read_extraction(p)[0] for p in SHARED_FIXTURES.glob("*.json")}
    assert formats and set(formats.values()) == {"commit_extractions_with_apis", "pr_analysis"}
    assert formats["bd852f2a8b9e9129de69fa7349906a9115538d5a.json"] == "commit_extractions_with_apis"


def test_normalize_commit_format(mirror, demo):
    _, shas = demo
    data = norm(mirror, shas["moving-average"], COMMIT_FILE)
    validate(data, "extraction", "normalized")
    assert data["format"] == "commit_extractions_with_apis" and data["parent_from"] == "extraction"
    assert data["base_commit"] == shas["primes"]
    assert "demokit/series.py" in data["patch"] and "tests/" not in data["patch"]
    assert "tests/test_series.py" in data["test_patch"] and "demokit/series.py" not in data["test_patch"]
    assert data["affected_apis"] == ["moving_average"]
    assert data["warnings"] == []


def test_what_the_writer_writes_the_reader_reads_back(mirror, demo, tmp_path):
    path, shas = demo
    (written,) = write_extractions(path, [shas["moving-average"]], tmp_path, with_old_content=True)
    fmt, data = read_extraction(written)
    assert fmt == "commit_extractions_with_apis" and data["affected_apis"] == ["moving_average"]
    normalized = norm(mirror, shas["moving-average"], written)
    assert normalized["base_commit"] == shas["primes"] and normalized["parent_from"] == "extraction"
    assert normalized["affected_apis"] == ["moving_average"] and normalized["warnings"] == []


def test_normalize_pr_format_resolves_parent_from_git(mirror, demo):
    _, shas = demo
    data = norm(mirror, shas["histogram"], PR_FILE)
    assert data["format"] == "pr_analysis" and data["parent_from"] == "git"
    assert data["base_commit"] == shas["docs-dev"]
    assert data["affected_apis"] == ["demokit.binning.histogram"]
    assert data["extra"]["perf_command"].startswith("python")
    assert data["test_patch"] == ""


def test_normalize_without_file_uses_git(mirror, demo):
    _, shas = demo
    data = norm(mirror, shas["topk"][:10], None)
    assert data["format"] == "git" and data["head_commit"] == shas["topk"]
    assert data["affected_apis"] == ["top_k"]


def write(tmp_path, name, obj):
    p = tmp_path / name
    p.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return p


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"commit_hash": "abc', "invalid JSON at line 1"),
        ([1, 2], "expected a JSON object"),
        (
            {"commit_hash": "b4810b61", "parent_hash": "d8b3dfa7", "message": "m", "files_changed": "x"},
            "field files_changed: expected array, got str",
        ),
        (
            {"commit_hash": "zzz", "parent_hash": "d8b3dfa7", "message": "m", "files_changed": []},
            "field commit_hash: 'zzz' does not match",
        ),
        ({"something": "else"}, "unsupported extraction format"),
    ],
)
def test_malformed_files_are_one_line_errors(tmp_path, content, message):
    path = write(tmp_path, "b4810b61e1ebebf853a8d70b094c09e99200bd69.json", content)
    with pytest.raises(IsobenchError) as err:
        read_extraction(path)
    text = str(err.value)
    assert message in text and str(path) in text and "\n" not in text


def test_commit_missing_from_repo(mirror, tmp_path):
    sha = "1234567" + "0" * 33
    path = write(
        tmp_path, f"{sha}.json", {"commit_hash": sha, "parent_hash": sha, "message": "m", "files_changed": []}
    )
    with pytest.raises(IsobenchError, match=f"commit {sha} not found in the repository of source demo"):
        norm(mirror, sha, path)


def test_commit_hash_must_match_file_name(mirror, demo, tmp_path):
    _, shas = demo
    data = json.loads(COMMIT_FILE.read_text())
    path = write(tmp_path, f"{shas['topk']}.json", data)
    with pytest.raises(IsobenchError, match="does not match the commit"):
        norm(mirror, shas["topk"], path)


def test_config_commit_missing_from_repo(mirror):
    with pytest.raises(IsobenchError, match="config: field sources.demo.commits: commit v9.9 not found"):
        norm(mirror, "v9.9", None)
