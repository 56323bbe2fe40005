"""The measurement core: how one commit's generated test is timed at base, head and main.

By the process each part runs in:

- the measure job (the workflow's process): ``rounds`` (the rounds of one commit, the typed state of each
  revision, the timing files; the smoke run of a candidate test), ``job`` (the job's files, its settings and
  revisions, one round of one revision under either contract), ``lockstep`` (one round's processes driven
  call by call), ``adaptive`` (when to stop, lockstep or not), ``stats`` (the statistics of samples and of a
  comparison), ``cache`` (the measurement cache), ``gpu`` (the GPU slot the job holds and the GPU's state),
  ``machine`` (facts of the host), ``contracts`` (the two ways a test is written, and their check);
- the sandbox around every run of a test: ``sandbox`` (environment, namespaces, captures; what was in
  force), ``view`` (what the test sees of the host: bubblewrap's mount namespace, or Landlock rules),
  ``process`` (one sandboxed process, its limits and what the sandbox saw), ``cgroups`` (the process limit of
  a root run), ``runners`` (the runner kinds: local, docker, podman, apptainer), and ``sandbox_exec`` (the launcher
  inside, standard library only);
- the worker, run by each revision's own Python, standard library only: ``harness`` (a function-contract
  test: reference, check, warm-up, timed calls) and ``script_runner`` (a command-line script, noting the
  reference files it reads).

The modules are imported by name (``from isobench.measure.rounds import measure_commit``): importing this
package alone loads nothing more.
"""
