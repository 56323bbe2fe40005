"""Measurement harness: one fresh process times one revision of one generated test.

Standard library only (torch is used when the test itself imports it), so that it runs with the Python of any
revision's environment. It is copied next to a copy of the test module and run as a script:

    python harness.py --module perf_test.py --mode reference --reference ref.out --warmup 2 --repeat 10 --out r.json

The test module defines ``setup()``, ``experiment(data)``, ``store_result(result, path)``, ``load_result(path)``
and ``check_equivalence(reference, current)``. Modes: ``reference`` stores the first result; ``eqcheck`` checks
it against the stored reference (a missing reference is a failure); ``time`` only times; ``coverage`` makes one
untraced call, then one call traced by ``tracer.py`` (beside this file) for the changed files ``--coverage
TARGETS`` names, and times nothing. The report (JSON) is always written to ``--out`` unless the process dies.
"""

import argparse
import importlib.util
import json
import os
import platform
import socket
import subprocess
import sys
import time
import traceback

# 5: GPU samples between device-wide synchronizations; 6: the coverage mode; 7: the first call's time, clocks bound
HARNESS_VERSION = "7"
# The clocks, bound before the test (and the code it imports) is loaded: code that replaces time.perf_counter_ns
# later does not change what the harness reads.
_CLOCK_NS = time.perf_counter_ns
_CLOCK = time.perf_counter
REQUIRED = ("setup", "experiment", "store_result", "load_result", "check_equivalence")


class Failure(Exception):
    def __init__(self, category, error, tb=""):
        Exception.__init__(self, error)
        self.category = category
        self.error = error
        self.tb = tb


def _text_of(exc):
    return "%s: %s" % (type(exc).__name__, exc)


def _tb_tail(limit=4000):
    return traceback.format_exc()[-limit:]


def _read(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def cpu_model():
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    return platform.processor() or None


def environment(torch_mod=None):
    env = {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "host": socket.gethostname(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "torch": None,
        "cuda": None,
        "gpu": None,
        "gpu_driver": None,
    }
    if torch_mod is not None:
        env["torch"] = getattr(torch_mod, "__version__", None)
        try:
            env["cuda"] = torch_mod.version.cuda
            if cuda_in_use(torch_mod):  # the test's own device; CUDA is never initialized just to name it
                device = torch_mod.cuda.current_device()
                env["gpu"] = torch_mod.cuda.get_device_name(device)
                env["gpu_visible_as"] = physical_device(device)
                env["gpu_driver"] = gpu_driver()
        except Exception:
            pass
    else:
        try:
            from importlib import metadata

            env["torch"] = metadata.version("torch")
        except Exception:
            pass
    return env


def load_module(path):
    spec = importlib.util.spec_from_file_location("isobench_perf_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["isobench_perf_test"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # SyntaxError, ImportError, SystemExit, anything the test raises
        raise Failure("import_error", _text_of(exc), _tb_tail())
    missing = [name for name in REQUIRED if not callable(getattr(module, name, None))]
    if missing:
        raise Failure("invalid_script", "the test does not define %s" % ", ".join(missing))
    return module


def gpu_driver():
    """The NVIDIA driver version, read outside any timed region."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.SubprocessError):
        return None


def cuda_in_use(torch_mod):
    """Whether the test initialized CUDA in this process (imported torch and put work on a GPU)."""
    try:
        return torch_mod is not None and bool(torch_mod.cuda.is_initialized())
    except Exception:
        return False


def used_devices(torch_mod):
    """The devices (this process's numbering) the test used: the current one and every one holding its memory."""
    cuda = torch_mod.cuda
    devices = {cuda.current_device()}
    for index in range(cuda.device_count()):
        try:
            if cuda.memory_reserved(index) > 0:
                devices.add(index)
        except Exception:
            pass
    return sorted(devices)


def physical_device(index):
    """The device a process-local index stands for, as CUDA_VISIBLE_DEVICES names it (the index itself without)."""
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d.strip()]
    return visible[index] if index < len(visible) else str(index)


class Timer:
    """Times one call of a function; returns (result, milliseconds).

    When the test used the GPU (CUDA initialized): every device it used is synchronized (all streams,
    NCCL included) before and after the call, and the sample is the wall-clock time between the two
    synchronizations, so work on any stream is counted. CUDA events on the current stream are kept
    beside it (``events_ms``): they miss work on other streams and serve only as a cross-check. With
    ``flush_l2`` a buffer twice the L2 cache's size is overwritten (untimed) before each call, on the
    test's own device. Otherwise: ``time.perf_counter_ns`` around the call."""

    def __init__(self, torch_mod=None, flush_l2=False):
        self.cuda, self.devices, self.scrub, self.events_ms = None, [], None, []
        self.name = "perf_counter_ns"
        if not cuda_in_use(torch_mod):
            return
        self.torch, self.cuda = torch_mod, torch_mod.cuda
        self.devices = used_devices(torch_mod)
        self.name = "cuda_sync_wall"
        if flush_l2:
            device = self.cuda.current_device()
            l2 = getattr(self.cuda.get_device_properties(device), "L2_cache_size", 0) or (64 << 20)
            self.scrub = torch_mod.empty(2 * l2, dtype=torch_mod.uint8, device="cuda:%d" % device)

    def sync(self):
        for device in self.devices:
            self.cuda.synchronize(device)

    def __call__(self, fn):
        if self.cuda is None:
            t0 = _CLOCK_NS()
            result = fn()
            return result, (_CLOCK_NS() - t0) / 1e6
        if self.scrub is not None:
            self.scrub.zero_()
        start, end = self.cuda.Event(enable_timing=True), self.cuda.Event(enable_timing=True)
        self.sync()
        t0 = _CLOCK_NS()
        start.record()
        result = fn()
        end.record()
        self.sync()
        t1 = _CLOCK_NS()
        self.events_ms.append(float(start.elapsed_time(end)))
        return result, (t1 - t0) / 1e6

    def describe(self):
        """The devices the samples synchronized (process index, and the device CUDA_VISIBLE_DEVICES names)."""
        if self.cuda is None:
            return None
        return [
            {"index": d, "visible_as": physical_device(d), "name": self.cuda.get_device_name(d)}
            for d in self.devices
        ]


def make_timer(torch_mod, flush_l2=False):
    """A timer (see Timer) for what the test has done so far, and its name."""
    timer = Timer(torch_mod, flush_l2)
    return timer, timer.name


def check_reference(module, result, mode, reference_path):
    if mode == "reference":
        try:
            module.store_result(result, reference_path)
        except Exception as exc:
            raise Failure("store_error", "store_result failed: " + _text_of(exc), _tb_tail())
        if not os.path.exists(reference_path):
            raise Failure("store_error", "store_result wrote nothing at %s" % reference_path)
        return None
    if mode != "eqcheck":
        return None
    if not reference_path or not os.path.exists(reference_path):
        raise Failure("no_reference", "no reference result was stored at the base revision")
    try:
        reference = module.load_result(reference_path)
    except Exception as exc:
        raise Failure("eqcheck_error", "load_result failed: " + _text_of(exc), _tb_tail())
    try:
        verdict = module.check_equivalence(reference, result)
    except AssertionError as exc:
        raise Failure("not_equivalent", "check_equivalence: %s" % (exc or "assertion failed"), _tb_tail())
    except Exception as exc:
        raise Failure("not_equivalent", "check_equivalence raised " + _text_of(exc), _tb_tail())
    if verdict is False:
        raise Failure("not_equivalent", "check_equivalence returned False")
    return True


def _torch():
    return sys.modules.get("torch")


def run(args):
    report = {
        "harness_version": HARNESS_VERSION,
        "mode": args.mode,
        "status": "failed",
        "category": None,
        "error": None,
        "traceback": None,
        "samples_ms": [],
        "timer": None,
        "equivalent": None,
        "events_ms": [],
        "gpu_devices": None,
    }
    try:
        module = load_module(args.module)
        try:
            data = module.setup()
        except BaseException as exc:
            raise Failure("setup_error", _text_of(exc), _tb_tail())
        try:
            t0 = _CLOCK_NS()
            result = module.experiment(data)  # the check call: its result is stored or checked, never timed
            report["first_call_ms"] = (
                _CLOCK_NS() - t0
            ) / 1e6  # the process's first call (results kept across
        except BaseException as exc:  # calls show as a first call far slower than the timed ones)
            raise Failure("experiment_error", _text_of(exc), _tb_tail())
        report["equivalent"] = check_reference(module, result, args.mode, args.reference)
        del result
        if args.mode == "coverage":  # the call after the first, as the timed calls are: traced, never timed
            report["coverage"] = traced_call(module, data, args.coverage)
            report["status"] = "ok"
            return finish(report)
        # also a torch the test imported late, inside experiment()
        torch_mod = None if args.no_cuda else _torch()
        timer, report["timer"] = make_timer(torch_mod, args.flush_l2)
        samples = []
        try:
            # Warm up for `warmup` calls and at least `warmup_ms` of wall time (clocks, caches, autotuners).
            deadline = _CLOCK() + args.warmup_ms / 1e3
            calls = 1
            while calls < args.warmup or _CLOCK() < deadline:
                timer(lambda: module.experiment(data))
                calls += 1
            report["warmup_calls"] = calls
            # CUDA first used in warm-up
            if timer.cuda is None and not args.no_cuda and cuda_in_use(_torch()):
                timer, report["timer"] = make_timer(_torch(), args.flush_l2)
            timer.events_ms = []
            if args.control is None:
                for _ in range(args.repeat):
                    samples.append(timer(lambda: module.experiment(data))[1])
            else:  # lockstep: the driver says when to make each timed call, alternating revisions
                args.control.write("ready\n")
                for line in sys.stdin:
                    if line.strip() != "go":
                        break
                    samples.append(timer(lambda: module.experiment(data))[1])
                    args.control.write("%r\n" % samples[-1])
        except BaseException as exc:
            raise Failure("experiment_error", _text_of(exc), _tb_tail())
        if timer.cuda is None and not args.no_cuda and cuda_in_use(_torch()):
            report["warnings"] = [
                "the test first used CUDA during the timed calls: its samples were taken "
                "without synchronizing the GPU (warm up longer: warmup, warmup_ms)"
            ]
        report["samples_ms"], report["events_ms"] = samples, timer.events_ms
        report["gpu_devices"] = timer.describe()
        report["status"] = "ok"
    except Failure as failure:
        report.update(category=failure.category, error=failure.error[:2000], traceback=failure.tb or None)
    except BaseException as exc:
        report.update(category="harness_error", error=_text_of(exc)[:2000], traceback=_tb_tail())
    return finish(report)


def finish(report):
    report["env"] = environment(_torch())
    report["memory"] = peak_memory(_torch())
    return report


def traced_call(module, data, targets_path):
    """One call of experiment() traced for the changed files by tracer.py (beside this file, loaded by its path
    under a name no target can shadow): the tracer's report."""
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("isobench_tracer", os.path.join(here, "tracer.py"))
    tracer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tracer)
    try:
        return tracer.traced_call(lambda: module.experiment(data), targets_path)
    except BaseException as exc:
        raise Failure("experiment_error", _text_of(exc), _tb_tail())


def peak_memory(torch_mod=None):
    """This process's peak resident memory, and the GPU memory it used at most where CUDA was initialized:
    what ``interleave: auto`` needs to know whether three such processes fit side by side."""
    out = {"peak_rss_mb": None, "gpu_peak_mb": None, "gpu_device": None}
    try:
        import resource

        # ru_maxrss is in KiB on Linux
        out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)
    except (ImportError, OSError):
        pass
    try:
        if torch_mod is not None and torch_mod.cuda.is_initialized():
            device = torch_mod.cuda.current_device()
            out["gpu_device"] = device
            out["gpu_peak_mb"] = round(torch_mod.cuda.max_memory_reserved(device) / 2**20, 1)
    except Exception:
        pass
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--module", required=True)
    parser.add_argument("--mode", choices=("reference", "eqcheck", "time", "coverage"), required=True)
    parser.add_argument("--coverage", help="coverage mode: the changed files to trace (JSON, see tracer.py)")
    parser.add_argument("--reference")
    # the measure settings (isobench.measure.job.Settings) always say these: no default of the harness's own
    parser.add_argument("--warmup", type=int, required=True)
    parser.add_argument("--repeat", type=int, required=True)
    parser.add_argument(
        "--warmup-ms", type=float, required=True, help="keep warming up until this much time has passed"
    )
    parser.add_argument(
        "--flush-l2", action="store_true", help="overwrite the GPU's L2 cache before each timed call"
    )
    parser.add_argument(
        "--no-cuda", action="store_true", help="time with perf_counter even when CUDA is available"
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="after warm-up say 'ready' and time one call per 'go' line read from stdin",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    args.control = None
    if args.lockstep:
        # Replies go to the original stdout; whatever the test prints goes to stderr.
        args.control = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
    # The harness's own folder must not shadow the target's modules.
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.argv = [args.module]
    report = run(args)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(report, fh, allow_nan=False)
    os.replace(tmp, args.out)
    if args.control is not None:
        args.control.write("done\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
