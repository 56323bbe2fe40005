import pytest

from isobench.errors import IsobenchError
from isobench.measure.contracts import check_script
from isobench.pregenerated import find_pregenerated

SHA = "4c442c6e53dfef740b17f99fa3d40736e33f7800"
GOOD = "\n".join(
    f"def {n}(*a):\n    pass\n"
    for n in ("setup", "experiment", "store_result", "load_result", "check_equivalence")
)


def test_full_hash_wins_over_hash8(tmp_path):
    assert find_pregenerated(tmp_path, SHA) is None
    (tmp_path / f"{SHA[:8]}_test_case_generator.py").write_text(GOOD)
    assert find_pregenerated(tmp_path, SHA).name.startswith(SHA[:8] + "_")
    (tmp_path / f"{SHA}_test_case_generator.py").write_text(GOOD)
    assert find_pregenerated(tmp_path, SHA).name.startswith(SHA + "_")
    assert find_pregenerated(None, SHA) is None


def test_check_script():
    check_script(GOOD, "g.py")
    with pytest.raises(IsobenchError, match=r"g.py: syntax error at line 2"):
        check_script("def setup():\n  return (\n", "g.py")
    with pytest.raises(IsobenchError, match="does not define check_equivalence"):
        check_script(GOOD.replace("check_equivalence", "check"), "g.py")
