import json

from conftest import ROOT

from isobench import extraction_writer, git
from isobench.demo import build_demo_repo, measured_steps
from isobench.demo.history import STEPS
from isobench.measure.contracts import check_script
from isobench.pregenerated import find_pregenerated

# The demo's history is fixed: these SHAs are the same on every machine.
EXPECTED = {
    "initial": "ec4fe6a5ddb45d70bae46981469457192c74456d",
    "wordfreq": "f38af46306e798e24e159b1fe286f3cbe4cd25ba",
    "primes": "d8b3dfa732c62d10731f499260fc0b29f213a000",
    "moving-average": "b4810b61e1ebebf853a8d70b094c09e99200bd69",
    "regex": "f7db9fce94fa123432bbb378cddc7fcb9c3ec9f0",
    "histogram": "4c442c6e53dfef740b17f99fa3d40736e33f7800",
    "topk": "1981ab3653732db8646d85edc8be128f476b3b3e",
    "pairwise": "fcefefa521ff7d97797fbcb2a3c37b20075c4b20",
    "rename": "3385c38d99697a955e5cf9f06360b332b03463f5",
    "release": "f87d66bc0d86c64c106d3096e32ead74ddc33a49",
}


def test_demo_shas_are_deterministic(demo):
    _, shas = demo
    for key, sha in EXPECTED.items():
        assert shas[key] == sha, key


def test_rebuilding_in_place_keeps_the_repo(demo):
    path, shas = demo
    assert build_demo_repo(path) == shas


def test_history_has_the_commits_the_demo_needs():
    kinds = [s.kind for s in STEPS]
    assert kinds[0] == "initial"
    perf = [s for s in STEPS if s.kind == "perf"]
    assert len(perf) >= 4
    assert min(s.expected for s in perf) < 2 and max(s.expected for s in perf) > 10
    assert kinds.count("wrong") == 1 and kinds.count("noop") == 1
    assert kinds.count("unrelated") >= 3
    assert kinds.index("rename") > max(i for i, k in enumerate(kinds) if k in ("perf", "wrong", "noop"))
    # At least one workload uses torch.
    assert "import torch" in STEPS[0].writes["demokit/geometry.py"]
    assert any(path == "demokit/geometry.py" for s in perf for path, _, _ in s.replaces)


def test_shipped_extractions_and_generators_match_the_history(demo, tmp_path):
    path, shas = demo
    shipped = sorted((ROOT / "demo" / "extractions").glob("*.json"))
    want = sorted(shas[s.key] for s in measured_steps())
    assert sorted(p.stem for p in shipped) == want
    for sha in want:
        script = find_pregenerated(ROOT / "demo" / "generators", sha)
        assert script is not None, sha
        check_script(script.read_text(), str(script))
    # The shipped files are exactly what `isobench extract` writes.
    extraction_writer.write_extractions(path, want, tmp_path)
    for p in shipped:
        assert json.loads(p.read_text()) == json.loads((tmp_path / p.name).read_text()), p.name


def test_rename_breaks_the_series_api_at_main(demo):
    path, shas = demo
    assert "def moving_average(" not in git.show_file(path, shas["release"], "demokit/series.py")
    assert "def moving_average(" in git.show_file(path, shas["moving-average"], "demokit/series.py")
