"""Performance test: demokit.binning.histogram of 60,000 values over 48 bins."""

import json
import random

from demokit.binning import histogram


def setup():
    rng = random.Random(3)
    values = [rng.random() for _ in range(60_000)]
    edges = [i / 48 for i in range(1, 48)]
    return values, edges


def experiment(data):
    values, edges = data
    return histogram(values, edges)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert reference == current, f"bin counts differ: {reference} != {current}"
