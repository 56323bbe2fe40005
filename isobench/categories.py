"""The words records are written in: the revisions measured and the failure categories a timing file (and a
record's revisions) may name, with what each means."""

REVISIONS = ("base", "head", "main")  # the parent of the commit, the commit, the branch tip

# Failure categories written into timing files and records.
CATEGORIES = {
    "import_error": "the test module could not be imported (syntax error, missing module or name)",
    "invalid_script": "the test does not parse or lacks one of the contract's functions, so nothing was run",
    "extraction_invalid": "the commit's extraction file (or bundle line) is unreadable or invalid, so nothing was run",
    "commit_not_found": "the commit (or the parent its extraction names) is not in the source's repository",
    "no_parent": "the commit has no parent: nothing to compare against",
    "duplicate_extraction": "two extraction files name the commit, so neither is trusted",
    "setup_error": "setup() raised",
    "experiment_error": "experiment() raised",
    "store_error": "store_result() failed at base, so no reference exists",
    "no_reference": "no reference result from base to check head or main against",
    "eqcheck_error": "load_result() failed while checking equivalence",
    "not_equivalent": "the result differs from base's reference (check_equivalence failed)",
    "tampered": "the timing file was changed after its measurement wrote it "
    "(its sha256 no longer matches timing_seal.json)",
    "nondeterministic": "base's own result differs from the reference base stored: the test cannot judge equivalence",
    "timeout": "a round ran past its time limit and was killed",
    "crash": "the process died without a report (signal, os._exit, out of memory)",
    "harness_error": "the harness itself failed",
    "bad_output": "a command-line script printed no usable time (missing, non-finite, negative or wrong units)",
    "target_not_resolved": "a command-line script reports target_resolved: false (the API under test is missing)",
    "capability_unsupported": "a command-line script reports that this machine lacks what the test needs (error_name "
    "CAPABILITY_UNSUPPORTED or error_code 2, e.g. no CUDA device): not a bug in the code",
    "opt_path_missed": "a command-line script reports opt_path_hit: false (or OPT_PATH_NOT_TRIGGERED) at head or main",
    "eqcheck_skipped": "a command-line script's --eqcheck run ended without reading base's reference, so equivalence "
    "was never checked",
    "generation_failed": "no usable test could be generated for the commit, so nothing was run",
    "env_failed": "the revision's environment could not be built or verified (its log is kept), so nothing was run",
    "isolation_unavailable": "this host cannot isolate a test (namespaces, Landlock) and sandbox.require_isolation "
    "is on, so nothing was run",
    "target_not_exercised": "the test's calls executed none of the code the commit changes (a traced, untimed call "
    "at base and head: no changed line or touched function ran, or no changed module was imported), so its timings "
    "say nothing of the change",
    "target_imported_elsewhere": "a module the commit changes was imported from outside the revision's worktree and "
    "environment (site-packages, a copy), so the revision's own code was not what was timed",
    "repo_unavailable": "an evaluation could not have the record's repository or its commits here (no network, a "
    "wrong `repos` entry), so nothing was run",
    "job_failed": "an evaluation job could not prepare its trees or environments (its log says why), so nothing "
    "was run",
    "sandbox_violation": "the test broke a sandbox rule: processes left running after it exited, "
    "or output over the cap",
}
