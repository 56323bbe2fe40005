"""The rounds of an evaluation job: the measure job's rounds (isobench.measure.rounds), with its own check round.

Check round, one process at a time:
1. base stores the reference, then checks a second result against it (a test whose result differs run to run is
   ``nondeterministic``, and no candidate is charged for it); head (and main) check theirs as in the dataset;
2. base's reference is moved out of the job's data folder into a vault no test process sees: from here on no
   candidate can read it (to replay it) while its code runs;
3. each candidate stores its own result, in its own folder;
4. base checks each candidate's stored result with the test's own check, in a process that runs base's code and
   never the candidate's: a candidate cannot patch the check it is judged by. A mismatch is ``not_equivalent``,
   a result base cannot load is ``eqcheck_error``, both charged to the candidate.
Later rounds only time (every revision in ``time`` mode). The adaptive stop waits for base→candidate and
head→candidate of every candidate still measured.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..measure.job import Job, Revision
from ..measure.state import RevisionState, failed

CANDIDATE_PREFIX = "cand_"


def is_candidate(name: str) -> bool:
    return name.startswith(CANDIDATE_PREFIX)


class EvaluationRounds:
    """The RoundProtocol (isobench.measure.rounds) of an evaluation job."""

    def __init__(self, vault: Path):
        self.vault = Path(vault)

    def mode(self, name: str, k: int) -> str:
        return "time"

    def pairs(self, state: dict[str, RevisionState]) -> list[tuple[str, str]]:
        cands = [n for n in state if is_candidate(n)]
        return [("base", c) for c in cands] + [("head", c) for c in cands]

    def check(self, job: Job, active: list[Revision]) -> dict[str, dict]:
        revs = {r.name: r for r in active}
        base = revs.get("base")
        reports: dict[str, dict] = {}

        def workdir(name: str, what: str) -> Path:
            return job.data / name / what

        if base is not None:
            reports["base"] = job.run(base, "reference", workdir("base", "round0"))
            if reports["base"]["status"] == "ok":
                again = job.run(base, "eqcheck", workdir("base", "selfcheck"))
                if again["status"] != "ok":
                    if again.get("category") == "not_equivalent":
                        again = {
                            **again,
                            "category": "nondeterministic",
                            "error": "base's result differs from the reference base itself stored in this job: "
                            f"the test is nondeterministic and cannot judge a candidate ({again.get('error')})",
                        }
                    reports["base"] = again
        for name in ("head", "main"):
            if name in revs:
                reports[name] = job.run(revs[name], "eqcheck", workdir(name, "round0"))
        self._lock_away(job)
        base_ok = base is not None and reports["base"]["status"] == "ok"
        for name, rev in revs.items():
            if not is_candidate(name):
                continue
            with job.storing_at(self.store(job, name)):
                rep = job.run(rev, "reference", workdir(name, "round0"))
            if rep["status"] == "ok":
                rep = (
                    self._judged(job, base, name, rep)
                    if base_ok
                    else {
                        **failed(
                            "no_reference",
                            "base has no reproducible reference to check the candidate against",
                        ),
                        "samples_ms": rep.get("samples_ms", []),
                    }
                )
            reports[name] = rep
        return reports

    def store(self, job: Job, name: str) -> Path:
        return job.data / name / "result"

    def _lock_away(self, job: Job) -> None:
        """Base's reference files out of the sandbox's sight (the job's data folder is every test's to read)."""
        self.vault.mkdir(parents=True, exist_ok=True)
        for path in list(job.data.iterdir()):
            if path.is_file() and path.name.startswith("reference"):
                shutil.move(str(path), self.vault / path.name)

    def _judged(self, job: Job, base: Revision, name: str, rep: dict) -> dict:
        """The candidate's report once base's code has checked its stored result."""
        with job.storing_at(self.store(job, name)):
            verdict = job.run(base, "eqcheck", job.data / "base" / f"check_{name}")
        if verdict["status"] == "ok" and verdict.get("equivalent") is not False:
            return {**rep, "equivalent": True}
        category = verdict.get("category") or "eqcheck_error"
        if category not in ("not_equivalent", "eqcheck_error"):
            category = "eqcheck_error"
        return {
            **failed(category, f"base's check of the candidate's stored result: {verdict.get('error')}"),
            "samples_ms": rep.get("samples_ms", []),
            "env": rep.get("env"),
            "timer": rep.get("timer"),
            "sandbox": rep.get("sandbox"),
            "first_call_ms": None,
        }
