"""The demo repository's history: one :class:`Step` per commit, oldest first.

``kind`` says what a step is for the demo and its tests:
``perf`` (a real optimization; ``expected`` is the rough speedup on a CPU),
``wrong`` (an "optimization" that changes results), ``noop`` (claimed as an
optimization, no real speedup), ``rename`` (breaks a demo test at main),
``unrelated`` and ``initial``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import files


@dataclass(frozen=True)
class Step:
    key: str
    kind: str
    message: str
    writes: dict[str, str] = field(default_factory=dict)
    replaces: tuple[tuple[str, str, str], ...] = ()
    expected: float | None = None


COUNTER_TEXT = '''\
from collections import Counter
'''

STEPS: tuple[Step, ...] = (
    Step("initial", "initial", "Initial commit: demokit helpers", writes=files.INITIAL),
    Step(
        "readme-usage",
        "unrelated",
        "Add usage examples to the README",
        replaces=(
            (
                "README.md",
                "its history holds real performance commits.\n",
                "its history holds real performance commits.\n\n"
                "    >>> from demokit.text import word_frequencies\n"
                "    >>> word_frequencies('a b a')\n"
                "    {'a': 2, 'b': 1}\n",
            ),
        ),
    ),
    Step(
        "wordfreq",
        "perf",
        "[Perf] Count word frequencies with collections.Counter\n\n"
        "word_frequencies scanned a list of unique words for every token and\n"
        "then counted each word with list.count: quadratic in the text size.\n"
        "A Counter does one pass.",
        replaces=(
            ("demokit/text.py", "import re\n", "import re\n" + COUNTER_TEXT),
            (
                "demokit/text.py",
                "    words = tokenize(text)\n"
                "    unique = []\n"
                "    for word in words:\n"
                "        if word not in unique:\n"
                "            unique.append(word)\n"
                "    return {word: words.count(word) for word in unique}\n",
                "    return dict(Counter(tokenize(text)))\n",
            ),
            (
                "tests/test_text.py",
                'assert word_frequencies("a b a") == {"a": 2, "b": 1}\n',
                'assert word_frequencies("a b a") == {"a": 2, "b": 1}\n\n\n'
                "def test_word_frequencies_keeps_first_seen_order():\n"
                '    assert list(word_frequencies("b a b c")) == ["b", "a", "c"]\n',
            ),
        ),
        expected=20.0,
    ),
    Step(
        "changelog",
        "unrelated",
        "Add a changelog",
        writes={"CHANGELOG.md": "# Changelog\n\n## 0.1.0\n\n- First release.\n"},
    ),
    Step(
        "primes",
        "perf",
        "[Perf] Trial-divide candidates by smaller primes only\n\n"
        "Composite divisors can never be the first divisor found, so testing\n"
        "only the primes collected so far is enough.",
        replaces=(
            (
                "demokit/numbers.py",
                "        is_prime = True\n"
                "        for divisor in range(2, int(candidate**0.5) + 1):\n"
                "            if candidate % divisor == 0:\n",
                "        is_prime = True\n"
                "        limit = int(candidate**0.5)\n"
                "        for divisor in primes:\n"
                "            if divisor > limit:\n"
                "                break\n"
                "            if candidate % divisor == 0:\n",
            ),
        ),
        expected=1.4,
    ),
    Step(
        "moving-average",
        "perf",
        "[Perf] Running-sum moving average\n\n"
        "Keep a running window sum instead of re-summing a slice per position.",
        replaces=(
            (
                "demokit/series.py",
                "    return [\n"
                "        sum(values[i - window + 1 : i + 1]) / window\n"
                "        for i in range(window - 1, len(values))\n"
                "    ]\n",
                "    out = []\n"
                "    total = sum(values[: window - 1])\n"
                "    for i in range(window - 1, len(values)):\n"
                "        total += values[i]\n"
                "        out.append(total / window)\n"
                "        total -= values[i - window + 1]\n"
                "    return out\n",
            ),
            (
                "tests/test_series.py",
                "[1.5, 2.5, 3.5]\n",
                "[1.5, 2.5, 3.5]\n\n\n"
                "def test_window_of_one_is_identity():\n"
                "    assert moving_average([3, 1, 2], 1) == [3, 1, 2]\n",
            ),
        ),
        expected=3.5,
    ),
    Step(
        "regex",
        "noop",
        "[Perf] Precompile the tokenizer regex\n\n"
        "Avoid compiling the word pattern on every call.",
        replaces=(
            (
                "demokit/text.py",
                "from collections import Counter\n",
                "from collections import Counter\n\n"
                "_WORD = re.compile(r\"[a-z']+\")\n",
            ),
            (
                "demokit/text.py",
                "    return re.findall(r\"[a-z']+\", text.lower())\n",
                "    return _WORD.findall(text.lower())\n",
            ),
        ),
        expected=1.0,
    ),
    Step(
        "docs-dev",
        "unrelated",
        "Document the development setup",
        replaces=(
            (
                "README.md",
                "# demokit\n",
                "# demokit\n\nDevelop with `pip install -e .` and run `pytest`.\n",
            ),
        ),
    ),
    Step(
        "histogram",
        "perf",
        "[Perf] Find histogram bins by binary search\n\n"
        "The linear scan over the bin edges costs O(bins) per value; bisect\n"
        "costs O(log bins).",
        replaces=(
            ("demokit/binning.py", '"""Histogram helpers."""\n', '"""Histogram helpers."""\n\nimport bisect\n'),
            (
                "demokit/binning.py",
                "    for value in values:\n"
                "        index = 0\n"
                "        while index < len(edges) and value >= edges[index]:\n"
                "            index += 1\n"
                "        counts[index] += 1\n",
                "    for value in values:\n"
                "        counts[bisect.bisect_right(edges, value)] += 1\n",
            ),
        ),
        expected=6.0,
    ),
    Step(
        "topk",
        "wrong",
        "[Perf] Select top_k with heapq.nlargest\n\n"
        "Sorting every item is wasteful when only k are needed.",
        replaces=(
            ("demokit/ranking.py", '"""Ranking helpers."""\n', '"""Ranking helpers."""\n\nimport heapq\n'),
            (
                "demokit/ranking.py",
                "    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))\n"
                "    return ranked[:k]\n",
                "    return heapq.nlargest(k, scores.items(), key=lambda item: item[1])\n",
            ),
        ),
    ),
    Step(
        "pairwise",
        "perf",
        "[Perf] Vectorize pairwise_sq_dists with one matrix product\n\n"
        "|a-b|^2 = |a|^2 + |b|^2 - 2 a.b: one matmul instead of a Python loop\n"
        "over rows.",
        replaces=(
            (
                "demokit/geometry.py",
                "    n = points.shape[0]\n"
                "    out = torch.empty((n, n), dtype=points.dtype, device=points.device)\n"
                "    for i in range(n):\n"
                "        out[i] = ((points - points[i]) ** 2).sum(dim=1)\n"
                "    return out\n",
                "    sq = (points * points).sum(dim=1)\n"
                "    dots = points @ points.T\n"
                "    return (sq[:, None] + sq[None, :] - 2.0 * dots).clamp_min(0.0)\n",
            ),
        ),
        expected=20.0,
    ),
    Step(
        "tests-tidy",
        "unrelated",
        "Tidy the unit tests",
        replaces=(("tests/test_numbers.py", "def test_small_primes", "def test_primes_below_twenty"),),
    ),
    Step(
        "rename",
        "rename",
        "Rename moving_average to rolling_mean",
        replaces=(
            ("demokit/series.py", "def moving_average(", "def rolling_mean("),
            ("tests/test_series.py", "import moving_average", "import rolling_mean"),
            ("tests/test_series.py", "assert moving_average(", "assert rolling_mean("),
            ("tests/test_series.py", "assert moving_average(", "assert rolling_mean("),
        ),
    ),
    Step(
        "release",
        "unrelated",
        "Release 0.2.0",
        replaces=(
            ("demokit/__init__.py", '"0.1.0"', '"0.2.0"'),
            ("pyproject.toml", 'version = "0.1.0"', 'version = "0.2.0"'),
            ("CHANGELOG.md", "## 0.1.0", "## 0.2.0\n\n- Faster helpers; rolling_mean.\n\n## 0.1.0"),
        ),
    ),
)
