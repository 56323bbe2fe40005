"""What the integrity checks cost at scale: the secret scan before export and push, and the checks at the start
of every run (record seals, the dataset's digest), on N realistic records.

    python benchmarks/integrity.py [--records 2000]

Records are the demo dataset's (tests/fixtures/demo_dataset.jsonl), each copied with another commit, a patch
and a test eight times as long, a failure's traceback and 200 samples per revision: about 28 KB each, as
records of real repositories are. The scan reads this host's secret files as `isobench export` does (what it
finds there is counted, never printed), then again with 50 more secret values (a file named in
ISOBENCH_SECRET_FILES). Prints the time of each check.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isobench.dataset import damaged_records, protect_dataset, write_dataset, write_record  # noqa: E402
from isobench.errors import IsobenchError  # noqa: E402
from isobench.secrecy import ALL_KEY_ENVS, SECRET_FILES_ENV, known_values, refuse_secrets  # noqa: E402

TRACEBACK = (
    'Traceback (most recent call last):\n  File "/work/harness.py", line 210, in <module>\n'
    '    result = experiment(data)\n  File "generator.py", line 31, in experiment\n'
    "    return demokit.moving_average(values, 25)\nAttributeError: module 'demokit' has no attribute "
    "'moving_average'\n"
)


def records(n: int) -> list[dict]:
    demo = [
        json.loads(line) for line in (ROOT / "tests/fixtures/demo_dataset.jsonl").read_text().splitlines()
    ]
    rng = random.Random(0)
    out = []
    for i in range(n):
        r = json.loads(json.dumps(demo[i % len(demo)]))
        r["head_commit"] = f"{rng.getrandbits(160):040x}"
        r["instance_id"] = f"org__repo-{r['head_commit'][:7]}"
        r["patch"] *= 8
        r["efficiency_test"] = [t * 8 for t in r["efficiency_test"]]
        r["revisions"]["main"]["error"] = TRACEBACK * 3
        r["duration_changes"] = [
            {k: [rng.uniform(1, 50) for _ in range(200)] for k in ("base", "head", "main")}
        ]
        out.append(r)
    return out


def timed(what: str, fn) -> None:
    started = time.perf_counter()
    result = fn()
    print(f"{what}: {time.perf_counter() - started:.2f} s{f' ({result})' if result else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args()
    rows = records(args.records)
    size = sum(len(json.dumps(r)) for r in rows)
    print(
        f"{len(rows)} records, {size / 1e6:.1f} MB as JSON; {len(known_values(ALL_KEY_ENVS))} known secret values"
    )
    timed("secret scan, clean dataset (export, push)", lambda: refuse_secrets(rows, "d", list(ALL_KEY_ENVS)))
    rows[-1]["revisions"]["head"]["error"] = (
        "context: " + "LS0tLS1CRUdJTiBPUEVOU1NIIFBSSVZBVEUgS0VZLS0tLS0K" * 2
    )

    def refused() -> str:
        try:
            refuse_secrets(rows, "d", list(ALL_KEY_ENVS))
        except IsobenchError as exc:
            return "refused: " + str(exc).split(": looks like")[0]
        return "NOT refused"

    timed("secret scan, a base64 private key in the last record", refused)
    rows[-1]["revisions"]["head"]["error"] = None
    with tempfile.TemporaryDirectory() as tmp:
        extra = Path(tmp) / "secrets"
        rng = random.Random(1)
        extra.write_text("".join(f"token_{i} = {rng.getrandbits(240):060x}\n" for i in range(50)))
        os.environ[SECRET_FILES_ENV] = str(extra)
        print(f"{len(known_values(ALL_KEY_ENVS))} known secret values")
        timed("secret scan, clean dataset, with them", lambda: refuse_secrets(rows, "d", list(ALL_KEY_ENVS)))
        del os.environ[SECRET_FILES_ENV]
    with tempfile.TemporaryDirectory() as tmp:
        paths = [Path(tmp) / f"r{i}" / "record.json" for i in range(len(rows))]
        for path, row in zip(paths, rows):
            write_record(path, row)
        dataset = Path(tmp) / "dataset.jsonl"
        write_dataset(paths, dataset, f"{dataset}.complete")
        timed("start of a run: every record against its seal", lambda: len(damaged_records(paths)) or None)
        timed("start of a run: the dataset against its digest", lambda: protect_dataset(dataset))


if __name__ == "__main__":
    main()
