"""Performance test: demokit.text.word_frequencies on a 12,000-word text."""

import json
import random

from demokit.text import word_frequencies


def setup():
    rng = random.Random(1234)
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = ["".join(rng.choice(letters) for _ in range(rng.randint(3, 9))) for _ in range(400)]
    return " ".join(rng.choice(vocab) for _ in range(12_000))


def experiment(data):
    return word_frequencies(data)


def store_result(result, path):
    with open(path, "w") as fh:
        json.dump(result, fh)


def load_result(path):
    with open(path) as fh:
        return json.load(fh)


def check_equivalence(reference, current):
    assert list(reference.items()) == list(current.items()), "word counts or their order differ"
