"""Performance test: demokit.numbers.primes_below(30000)."""

import json

from demokit.numbers import primes_below


def setup():
    return 30_000


def experiment(data):
    return primes_below(data)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert len(reference) == len(current), f"{len(current)} primes instead of {len(reference)}"
    assert reference == current, "the primes differ"
