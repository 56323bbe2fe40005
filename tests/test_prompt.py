import pytest
from conftest import ROOT

from isobench.errors import IsobenchError
from isobench.extraction import normalize
from isobench.prompt import budget_diff, render

TEMPLATE = ROOT / "prompts" / "test_generator.md"


@pytest.fixture(scope="module")
def extraction(mirror, demo):
    _, shas = demo
    return normalize(
        source="demo",
        repo_name="isobench/demokit",
        mirror=mirror,
        commit=shas["moving-average"],
        extraction_file=None,
    )


def test_prompt_holds_contract_commit_and_diff(extraction):
    text, facts = render(TEMPLATE, extraction, 30000)
    for needle in (
        "setup()",
        "experiment(data)",
        "store_result(result, path)",
        "load_result(path)",
        "check_equivalence(reference, current)",
        extraction["head_commit"],
        extraction["subject"],
        "- demokit/series.py (modified",
        "- moving_average",
        "+    total = sum(values[: window - 1])",
    ):
        assert needle in text, needle
    assert "{{" not in text and facts["diff_truncated"] is False


def test_diff_budget_cuts_with_a_visible_marker(extraction):
    text, facts = render(TEMPLATE, extraction, 300)
    assert facts["diff_truncated"] is True
    assert "[... diff truncated by isobench:" in text


def test_budget_diff_cuts_at_a_line():
    kept, cut = budget_diff("a\n" * 100, "t\n" * 10, 50)
    body = kept.split("\n[...")[0]
    assert cut and len(body) <= 50 and body.endswith("\n") and "of 220 characters shown" in kept
    assert budget_diff("abc\n", "", 100) == ("abc\n", False)


def test_unknown_placeholder_names_the_template(tmp_path, extraction):
    t = tmp_path / "t.md"
    t.write_text("Hello {{ comit }}\n")
    with pytest.raises(IsobenchError, match=r"t.md: unknown placeholder \{\{ comit \}\}"):
        render(t, extraction, 1000)
    with pytest.raises(IsobenchError, match="cannot read the prompt template"):
        render(tmp_path / "missing.md", extraction, 1000)
