"""What a job puts on the console: isobench's own lines (a commit's outcome, a warning, an error), its details
(which worktree, how many prompt characters, each revision's median) only when the run was asked for them with
``snakemake --verbose``; everything goes to the rule's log file either way. Other libraries speak on the console
only to warn (their requests and progress lines stay in the log file).

A job does not write its console lines to the terminal itself: a job's process writing there would tear the
progress view the main process draws (and a cluster job's terminal is a file on the node). It writes them beside
its log (``<log>.console``); the main process prints them through Snakemake's logger when the job ends
(``JobConsoleRelay``), so they stand above the progress view, in Snakemake's own log file too, whatever the
executor."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

VERBOSE_ENV = "ISOBENCH_VERBOSE"  # set by the main process (rules/common.smk); local jobs inherit it
RELAY_ENV = "ISOBENCH_CONSOLE_RELAY"  # the main process prints the jobs' console files
SUFFIX = ".console"


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


class ConsoleFilter(logging.Filter):
    """isobench's lines from INFO (its details, logged at DEBUG, with --verbose); other loggers' from WARNING."""

    def __init__(self, detailed: bool):
        super().__init__()
        self.detailed = detailed

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "isobench" or record.name.startswith("isobench.")
        if ours:
            return record.levelno >= (logging.DEBUG if self.detailed else logging.INFO)
        return record.levelno >= (logging.INFO if self.detailed else logging.WARNING)


class _ConsoleFile(logging.Handler):
    """A job's console lines, one JSON object each ({"level", "message"}), for the main process to print."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path
        path.write_text("", encoding="utf-8")

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = json.dumps({"level": record.levelno, "message": self.format(record)}) + "\n"
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line)
        except Exception:  # noqa: BLE001  logging never fails the step
            self.handleError(record)


def console_handler(log_path: Path | None) -> logging.Handler:
    """Where a job's console lines go: its console file when the run's main process prints them, else stderr."""
    if log_path is not None and os.environ.get(RELAY_ENV) == "1":
        handler: logging.Handler = _ConsoleFile(console_file(log_path))
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(ConsoleFilter(verbose()))
    return handler


def log_file(log: str | Path) -> Path:
    return Path(str(log).split(" (", 1)[0])  # Snakemake may annotate a file: "x.log (...)"


def console_file(log_path: str | Path) -> Path:
    path = log_file(log_path)
    return path.with_name(path.name + SUFFIX)


class JobConsoleRelay(logging.Handler):
    """In the main process, on Snakemake's logger: when a job ends (or fails), its console lines are logged
    through that logger, whatever draws the console (the rich progress view or Snakemake's own lines). With the
    progress view, which shows neither a failed job's message (a refused ``sbatch``, a missing output) nor
    copes with a log the job never wrote, the relay says the message and gives such a log one line."""

    def __init__(self, logger: logging.Logger, progress_view: bool = False):
        super().__init__(level=logging.DEBUG)
        self.logger = logger
        self.progress_view = progress_view
        self.logs: dict = {}

    def emit(self, record: logging.LogRecord) -> None:
        from snakemake_interface_logger_plugins.common import LogEvent

        event = getattr(record, "event", None)
        if event == LogEvent.JOB_INFO:
            self.logs[getattr(record, "jobid", None)] = list(getattr(record, "log", None) or [])
        elif event == LogEvent.JOB_FINISHED:
            self.relay(self.logs.pop(getattr(record, "job_id", None), []))
        elif event == LogEvent.JOB_ERROR:
            logs = list(getattr(record, "log", None) or [])
            self.relay(logs)
            if self.progress_view:
                for log in logs:
                    _no_log_yet(log)
                said = str(getattr(record, "rule_msg", None) or "").strip()
                if said:
                    self.logger.error(f"isobench: job {getattr(record, 'rule_name', '?')} failed: {said}")

    def relay(self, logs: list) -> None:
        for log in logs:
            path = console_file(log)
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
                path.unlink()
            except OSError:
                continue
            for line in lines:
                try:
                    said = json.loads(line)
                    # the message itself (no args): Snakemake's formatter prints msg as it is
                    self.logger.log(int(said["level"]), str(said["message"]))
                except (ValueError, KeyError, TypeError):
                    continue


def _no_log_yet(log: str) -> None:
    """A failed job's log that was never written (the job was refused or died first) gets a line saying so."""
    path = log_file(log)
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(
                "isobench: no log: the job ended before it wrote one (its error is on the console)\n"
            )
    except OSError:
        pass


def start(verbose_run: bool, logger_manager=None) -> None:
    """The main process, once: tell the jobs whether ``--verbose`` was given (they cannot ask Snakemake), print
    their console lines as they end, and count each step's jobs in the progress view."""
    if verbose_run:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)
    handlers = logger_manager.get_log_handlers() if logger_manager is not None else []
    progress_view = any(type(h).__module__.startswith("snakemake_logger_plugin_rich") for h in handlers)
    logger = logging.getLogger("snakemake.logging")
    if not any(isinstance(h, JobConsoleRelay) for h in logger.handlers):
        # first: the progress view reads a failed job's log in its own thread, after the relay has run
        logger.handlers.insert(0, JobConsoleRelay(logger, progress_view))
    os.environ[RELAY_ENV] = "1"
    count_jobs(handlers)


def count_jobs(handlers) -> None:
    """The rich view shows each step's share done in per cent; a count beside it (``3/7``) says how many of how
    many. Its panel is redrawn twice a second in a terminal (the plugin's 8 a second cost a core's time on a
    small box that is measuring) and not at all where nothing shows it (a pipe, a file). (Its progress is built
    before the workflow is read, started after: both can still change.)"""
    try:
        from rich.live import Live
        from rich.progress import MofNCompleteColumn, Progress
    except ImportError:
        return
    for handler in handlers:
        progress = getattr(handler, "progress", None)
        if not isinstance(progress, Progress):
            continue
        columns = list(progress.columns)
        if not any(isinstance(c, MofNCompleteColumn) for c in columns):
            columns.insert(max(len(columns) - 2, 0), MofNCompleteColumn())
            progress.columns = tuple(columns)
        live = getattr(
            getattr(getattr(handler, "event_handler", None), "progress_display", None), "live_display", None
        )
        if isinstance(live, Live):
            live.refresh_per_second = 2
            live.auto_refresh = live.console.is_terminal
