"""The words records are written in: the revisions measured, and the failure categories a timing file, a record
or an evaluation row may name, in one table: each category's stage (the rule whose step writes it), whether a
timing file of it is kept in the measurement cache (no: nothing, or not everything, ran, so a plain rerun runs
it once the cause is fixed), whether it is the candidate's fault when an agent's patch is evaluated, and what it
means. The timing and extraction schemas, the docs' table (docs/measurement.md), the measurement cache and the
evaluation's report take their lists from here or are tested against it (tests/test_measure.py).

A new category is one line of ``_TABLE`` (and its name in the schema of the stage that writes it)."""

from __future__ import annotations

from typing import NamedTuple

REVISIONS = ("base", "head", "main")  # the parent of the commit, the commit, the branch tip

STAGES = ("extraction", "generator", "env", "measure", "record", "evaluation")

# name                    stage      cached candidate meaning
_TABLE = """
extraction_invalid        extraction no     no        the commit's extraction file (or bundle line) is
                                                      unreadable or invalid, so nothing was run
commit_not_found          extraction no     no        the commit (or the parent its extraction names) is not
                                                      in the source's repository
no_parent                 extraction no     no        the commit has no parent: nothing to compare against
duplicate_extraction      extraction no     no        two extraction files name the commit, so neither is
                                                      trusted
invalid_script            generator  no     no        the test does not parse or lacks one of the contract's
                                                      functions, so nothing was run
generation_failed         generator  no     no        no usable test could be generated for the commit, so
                                                      nothing was run
env_failed                env        no     no        the revision's environment could not be built or
                                                      verified (its log is kept), so nothing was run
import_error              measure    yes    yes       the test module could not be imported (syntax error,
                                                      missing module or name)
setup_error               measure    yes    yes       setup() raised
experiment_error          measure    yes    yes       experiment() raised
store_error               measure    yes    yes       store_result() failed at base, so no reference exists
no_reference              measure    yes    no        no reference result from base to check head or main
                                                      against
eqcheck_error             measure    yes    yes       load_result() failed while checking equivalence
not_equivalent            measure    yes    yes       the result differs from base's reference
                                                      (check_equivalence failed)
nondeterministic          measure    yes    no        base's own result differs from the reference base
                                                      stored: the test cannot judge equivalence
timeout                   measure    yes    yes       a round ran past its time limit and was killed
crash                     measure    yes    yes       the process died without a report (signal, os._exit,
                                                      out of memory)
harness_error             measure    yes    yes       the harness itself failed
bad_output                measure    yes    yes       a command-line script printed no usable time (missing,
                                                      non-finite, negative or wrong units)
target_not_resolved       measure    yes    yes       a command-line script reports target_resolved: false
                                                      (the API under test is missing)
capability_unsupported    measure    yes    no        a command-line script reports that this machine lacks
                                                      what the test needs (error_name CAPABILITY_UNSUPPORTED
                                                      or error_code 2, e.g. no CUDA device): not a bug in
                                                      the code
opt_path_missed           measure    yes    yes       a command-line script reports opt_path_hit: false (or
                                                      OPT_PATH_NOT_TRIGGERED) at head or main
eqcheck_skipped           measure    yes    no        a command-line script's --eqcheck run ended without
                                                      reading base's reference, so equivalence was never
                                                      checked
isolation_unavailable     measure    no     no        this host cannot isolate a test (namespaces, Landlock)
                                                      and sandbox.require_isolation is on, so nothing was
                                                      run
target_not_exercised      measure    yes    yes       the test's calls executed none of the code the commit
                                                      changes (a traced, untimed call at base and head: no
                                                      changed line or touched function ran, or no changed
                                                      module was imported), so its timings say nothing of
                                                      the change
target_imported_elsewhere measure    yes    yes       a module the commit changes was imported from outside
                                                      the revision's worktree and environment (site-
                                                      packages, a copy), so the revision's own code was not
                                                      what was timed
sandbox_violation         measure    yes    yes       the test broke a sandbox rule: processes left running
                                                      after it exited, or output over the cap
tampered                  record     no     no        the timing file was changed after its measurement
                                                      wrote it (its sha256 no longer matches
                                                      timing_seal.json)
repo_unavailable          evaluation no     no        an evaluation could not have the record's repository
                                                      or its commits here (no network, a wrong `repos`
                                                      entry), so nothing was run
job_failed                evaluation no     no        an evaluation job could not prepare its trees or
                                                      environments (its log says why), so nothing was run
"""


class Category(NamedTuple):
    name: str
    stage: str  # one of STAGES
    cached: bool  # a timing file of it is kept in the measurement cache
    candidate: bool  # the candidate's fault, when an agent's patch is evaluated
    meaning: str


def _parse(text: str) -> dict[str, Category]:
    out: dict[str, Category] = {}
    for line in text.strip("\n").splitlines():
        if line.startswith(" "):  # the meaning goes on
            last = out.popitem()[1]
            out[last.name] = last._replace(meaning=f"{last.meaning} {line.strip()}")
            continue
        name, stage, cached, candidate, meaning = line.split(maxsplit=4)
        assert stage in STAGES and cached in ("yes", "no") and candidate in ("yes", "no"), line
        out[name] = Category(name, stage, cached == "yes", candidate == "yes", meaning)
    return out


TABLE = _parse(_TABLE)
CATEGORIES = {name: c.meaning for name, c in TABLE.items()}  # name: meaning


def named(stage: str) -> tuple[str, ...]:
    """The categories written by one stage."""
    return tuple(name for name, c in TABLE.items() if c.stage == stage)


NOT_CACHED = tuple(name for name, c in TABLE.items() if not c.cached)


def blames_candidate(status: str) -> bool:
    """Whether an evaluated candidate's status is its own fault: a category the table says is, or a status of the
    evaluation's own (patch_failed, guard_tests_failed, ...: docs/evaluation.md)."""
    c = TABLE.get(status)
    return c is None or c.candidate
