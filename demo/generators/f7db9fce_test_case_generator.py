"""Performance test: demokit.text.tokenize on a long text."""

import json
import random

from demokit.text import tokenize


def setup():
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "don't", "epsilon", "zeta", "eta"]
    return " ".join(rng.choice(words) + rng.choice([",", ".", "", "!"]) for _ in range(40_000))


def experiment(data):
    return tokenize(data)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert reference == current, "the tokens differ"
