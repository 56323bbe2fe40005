"""Performance test: demokit.series.moving_average over 100,000 values, window 30."""

import json
import math
import random

from demokit.series import moving_average


def setup():
    rng = random.Random(42)
    return [rng.uniform(-1.0, 1.0) for _ in range(100_000)], 30


def experiment(data):
    values, window = data
    return moving_average(values, window)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert len(reference) == len(current), "different number of windows"
    for i, (a, b) in enumerate(zip(reference, current)):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"window {i}: {a} != {b}"
