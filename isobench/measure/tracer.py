"""Which of a commit's changed files a test really executed, and where it imported them from.

Standalone on purpose, standard library only, and written for any Python 3 a revision may use: the harness and
the script runner load it by its path in the revision's own Python, in an untimed call of their own (the timed
calls are never traced). ``TARGETS`` (JSON) names the changed Python files, each as ``{"rel": path in the
repository, "path": its file in the revision's worktree, "module": its path as imported (``pkg/mod.py`` for
``src/pkg/mod.py``; null for a file outside any package)}``.

Only function bodies are counted (code objects with fresh locals), and only the lines after a function's first
(its ``def`` or first decorator, where a call starts in some Pythons and not in others): a module or class body
runs when it is imported, which says nothing of what the test's calls executed. A running file is a target when it
is the worktree's file, or, for a revision whose environment installed the package, a file whose path ends with
the target's whole import path (``site-packages/pkg/mod.py`` for ``src/pkg/mod.py``); which files ran is
reported, so the measure job can tell the worktree from anywhere else.

What the tracer cannot see is reported too: processes the test started (an audit hook on fork, spawn, exec and
subprocess; and the children alive at the end) and, with ``sys.settrace``, threads already running when tracing
began.

On Python 3.12 and later ``sys.monitoring`` (PEP 669) reports each line once and is then switched off for it;
before, ``sys.settrace`` (with ``threading.settrace``) traces only the frames of target files.
"""

import json
import os
import sys
import threading

CO_NEWLOCALS = 0x0002  # set for function bodies, never for a module's or a class's body
TOOL_NAME = "isobench-coverage"
# audit events of code starting another process, whose lines no tracer here can see
SPAWNS = ("os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen")


def load_targets(path):
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _parts(path):
    return [p for p in os.path.abspath(path).replace(os.sep, "/").split("/") if p]


class Tracer:
    def __init__(self, targets):
        self.targets = list(targets)
        self.exact = {}  # the worktree's path of each target -> its index
        self.by_name = {}  # basename -> [(index, trailing parts that must match)]
        for i, target in enumerate(self.targets):
            self.exact[os.path.abspath(target["path"])] = i
            tail = [p for p in (target.get("module") or "").split("/") if p]
            if len(tail) >= 2:  # a module of a package: found wherever the package is installed
                self.by_name.setdefault(tail[-1], []).append((i, tail))
        self.known = {}  # co_filename -> target index or None
        self.executed = [dict() for _ in self.targets]  # per target: {filename: set of lines}
        self.method = None
        self.spawned = []  # what started other processes (audit events), in order, at most 20
        self.threads_before = 0  # other threads alive when tracing began
        self.method_done = None  # the method that traced, once stopped
        self.children = []

    def match(self, filename):
        """The target a running file is (its index), or None."""
        try:
            return self.known[filename]
        except KeyError:
            pass
        full = (
            os.path.abspath(filename) if isinstance(filename, str) and filename[:1] not in ("", "<") else ""
        )
        found = self.exact.get(full)
        parts = _parts(full) if found is None and full else []
        if parts:
            for i, tail in self.by_name.get(parts[-1], ()):
                if parts[-len(tail) :] == tail:
                    found = i
                    break
        self.known[filename] = found
        return found

    def _watched(self, code):
        """The target a function body belongs to (its index), or None."""
        if not code.co_flags & CO_NEWLOCALS:
            return None
        return self.match(code.co_filename)

    def _hit(self, code, line):
        i = self._watched(code)
        if i is not None and line != code.co_firstlineno:
            self.executed[i].setdefault(code.co_filename, set()).add(line)

    # sys.settrace: the global function decides per frame; a local one per frame records its lines (the cost of
    # a line event is the one comparison and set insertion here)
    def _global(self, frame, event, arg):
        code = frame.f_code
        i = self._watched(code) if event == "call" else None
        if i is None:
            return None
        add, first = self.executed[i].setdefault(code.co_filename, set()).add, code.co_firstlineno

        def local(frame, event, arg):
            if event == "line" and frame.f_lineno != first:
                add(frame.f_lineno)
            return local

        return local

    def _audit(self, event, args):
        if self.method is not None and event in SPAWNS and len(self.spawned) < 20:
            self.spawned.append(event)

    def start(self):
        self.threads_before = threading.active_count() - 1
        sys.addaudithook(self._audit)
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is not None and self._start_monitoring(monitoring):
            return
        self.method = "settrace"
        threading.settrace(self._global)
        sys.settrace(self._global)

    def _start_monitoring(self, monitoring):
        tool = next((t for t in range(1, 6) if monitoring.get_tool(t) is None), None)
        if tool is None:  # every slot taken (a profiler of the test's own): the slower tracer
            return False
        monitoring.use_tool_id(tool, TOOL_NAME)
        disable = monitoring.DISABLE

        def on_start(code, offset):
            if self._watched(code) is not None:
                return None
            return disable  # never again for this code object

        def on_line(code, line):
            self._hit(code, line)
            return disable  # this line is known now

        events = monitoring.events
        monitoring.register_callback(tool, events.PY_START, on_start)
        monitoring.register_callback(tool, events.LINE, on_line)
        monitoring.set_events(tool, events.PY_START | events.LINE)
        self.tool, self.method = tool, "sys.monitoring"
        return True

    def stop(self):
        self.children = children()
        if self.method == "sys.monitoring":
            monitoring = sys.monitoring
            monitoring.set_events(self.tool, 0)
            monitoring.register_callback(self.tool, monitoring.events.PY_START, None)
            monitoring.register_callback(self.tool, monitoring.events.LINE, None)
            monitoring.free_tool_id(self.tool)
        elif self.method == "settrace":
            sys.settrace(None)
            threading.settrace(None)
        self.method_done, self.method = self.method, None  # the audit hook stays (it cannot be removed): idle

    def report(self):
        """Per target: the lines its function bodies can execute (compiled from the worktree's file by this
        Python), the lines executed, and the module file it was imported from (None: never imported)."""
        modules = self.loaded()
        files = []
        for i, target in enumerate(self.targets):
            executed = self.executed[i]
            files.append(
                {
                    "rel": target["rel"],
                    "executable": executable_lines(target["path"]),
                    "executed": sorted(set().union(*executed.values())) if executed else [],
                    "executed_in": sorted(executed),
                    "loaded_from": modules.get(i),
                }
            )
        unseen = {
            "spawned": self.spawned,
            "children": self.children,
            # sys.settrace never sees threads that were running before it began
            "threads_untraced": self.threads_before if self.method_done == "settrace" else 0,
        }
        return {
            "method": self.method_done,
            "python": sys.version.split()[0],
            "files": files,
            "unseen": unseen,
        }

    def loaded(self):
        """{target index: the file of the module imported for it}, the worktree's own file first."""
        found = {}
        for module in list(sys.modules.values()):
            try:
                filename = getattr(module, "__file__", None)
            except Exception:  # a lazy module's __getattr__ may raise anything
                continue
            if not isinstance(filename, str):
                continue
            i = self.match(filename)
            if i is None:
                continue
            full = os.path.abspath(filename)
            if found.get(i) != os.path.abspath(self.targets[i]["path"]):
                found[i] = full
        return found


def executable_lines(path):
    """The lines of ``path`` that a function body can execute (None: unreadable or not valid Python here)."""
    try:
        with open(path, "rb") as fh:
            code = compile(fh.read(), path, "exec", dont_inherit=True)
    except (OSError, SyntaxError, ValueError):
        return None
    lines, todo = set(), [code]
    while todo:
        co = todo.pop()
        todo.extend(c for c in co.co_consts if hasattr(c, "co_code"))
        if not co.co_flags & CO_NEWLOCALS:
            continue
        if hasattr(co, "co_lines"):
            found = set(line for _, _, line in co.co_lines() if line is not None)
        else:  # before 3.10
            import dis

            found = set(line for _, line in dis.findlinestarts(co))
        lines.update(found - {co.co_firstlineno})
    return sorted(lines)


def children():
    """The processes this one started that are still alive (Linux: /proc/self/task/*/children)."""
    out = []
    try:
        for task in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % task) as fh:
                out.extend(int(pid) for pid in fh.read().split())
    except (OSError, ValueError):
        pass
    return sorted(set(out))[:20]


def traced_run(targets_path, out_path):
    """Start tracing for the changed files of ``targets_path`` (a whole script's run); the function that stops
    it and writes the report to ``out_path``, once however often it is called (atexit and finally both do)."""
    tracer, done = Tracer(load_targets(targets_path)), []

    def finish():
        if not done:
            done.append(1)
            tracer.stop()
            write(out_path, tracer.report())

    tracer.start()
    return finish


def traced_call(fn, targets_path):
    """``fn()`` traced for the changed files of ``targets_path``: the tracer's report (fn's exception, if any,
    propagates once tracing has stopped)."""
    tracer = Tracer(load_targets(targets_path))
    tracer.start()
    try:
        fn()
    finally:
        tracer.stop()
    return tracer.report()


def write(path, report):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh)
    os.replace(tmp, path)
