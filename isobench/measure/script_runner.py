"""Run a command-line test script (ISO-Bench's or GSO's contract) as ``__main__`` and note which reference files
it reads.

    python script_runner.py --watch PREFIX --reads READS.txt [--coverage TARGETS --coverage-out OUT] -- SCRIPT [ARGS]

Standalone on purpose: it runs in the revision's Python, beside the test, and imports nothing of isobench.
A Python audit hook sees every ``open`` of the process (builtins.open, io.open, os.open: what
``torch.load``, ``numpy.load``, ``pickle`` and ``json`` use); each file under PREFIX opened for reading is
appended to READS.txt the moment it is opened, so the record survives ``os._exit`` and crashes. The
measure job then knows whether an ``--eqcheck`` run really read base's reference.

With ``--coverage``, the whole run is traced by ``tracer.py`` (beside this file) for the changed files TARGETS
names, and the tracer's report is written to OUT when the script ends (returns, raises or calls ``sys.exit``).
"""

import os
import runpy
import sys


def _reading(mode, flags) -> bool:
    if isinstance(mode, str):
        return "r" in mode or "+" in mode
    if isinstance(flags, int):
        return flags & os.O_ACCMODE in (os.O_RDONLY, os.O_RDWR)
    return False


def watch(prefix: str, reads_path: str) -> None:
    prefix = os.path.abspath(prefix)
    seen = set()
    busy = []

    def hook(event, args):
        if event != "open" or busy or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str):
            return
        mode = args[1] if len(args) > 1 else None
        flags = args[2] if len(args) > 2 else None
        full = os.path.abspath(path)
        if not full.startswith(prefix) or full in seen or not _reading(mode, flags):
            return
        seen.add(full)
        busy.append(1)
        try:
            with open(reads_path, "a", encoding="utf-8") as fh:
                fh.write(full + "\n")
        except OSError:
            pass
        finally:
            busy.pop()

    sys.addaudithook(hook)


def traced(targets_path, out_path):
    """Start tracing (tracer.py, beside this file, loaded by its path under a name no target can shadow); the
    function that stops it and writes its report."""
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tracer.py")
    spec = importlib.util.spec_from_file_location("isobench_tracer", path)
    tracer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tracer)
    return tracer.traced_run(targets_path, out_path)


def main(argv):
    if "--" not in argv:
        sys.stderr.write("script_runner: usage: --watch PREFIX --reads FILE -- SCRIPT [ARGS]\n")
        return 2
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1 :]
    values = dict(zip(opts[0::2], opts[1::2]))
    watch(values["--watch"], values["--reads"])
    script = command[0]
    sys.argv = command
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    finish = None
    if "--coverage" in values:
        import atexit

        finish = traced(values["--coverage"], values["--coverage-out"])
        atexit.register(finish)  # also after an exit from a thread or an atexit of the script's own
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        if finish is not None:
            finish()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
