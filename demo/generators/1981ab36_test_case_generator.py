"""Performance test: demokit.ranking.top_k over 50,000 scores with many ties."""

import json
import random

from demokit.ranking import top_k


def setup():
    rng = random.Random(11)
    names = [f"item{i:06d}" for i in range(50_000)]
    rng.shuffle(names)
    return {name: rng.randint(0, 1000) for name in names}, 25


def experiment(data):
    scores, k = data
    return top_k(scores, k)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump([list(pair) for pair in result], fh)


def load_result(path):
    with open(path) as fh:
        return [tuple(pair) for pair in json.load(fh)]


def check_equivalence(reference, current):
    current = [tuple(pair) for pair in current]
    assert reference == current, f"ranking differs: first mismatch {next((a, b) for a, b in zip(reference, current) if a != b)}"
