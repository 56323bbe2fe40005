"""What every step shares: the log, the time stamp, and ``run_step`` (one-line errors)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import traceback
from pathlib import Path

from ..console import console_handler
from ..errors import IsobenchError
from ..runs import watch_run

log = logging.getLogger("isobench")


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def run_step(smk, step) -> None:
    """Run ``step(smk)``: everything to the rule's log file, the console only what matters (isobench.console); an
    error is one line on stderr and exit 1."""
    log_path = Path(smk.log[0]) if smk.log else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    handlers: list[logging.Handler] = [console_handler(log_path)]
    if log_path:
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=handlers, force=True)
    log.setLevel(logging.DEBUG)  # a step's details (log.debug) reach its log file; the console filters them
    watch_run()  # the job (and the tests it runs) ends when the run that started it is gone
    try:
        step(smk)
    except IsobenchError as exc:
        log.error("isobench: %s", exc)
        sys.exit(1)
    except Exception as exc:  # a bug of ours: the traceback goes to the log only
        log.error(
            "isobench: internal error in rule %s: %s: %s (traceback in %s)",
            smk.rule,
            type(exc).__name__,
            exc,
            log_path,
        )
        if log_path:  # after the line (the log's handler writes from where it stands)
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        sys.exit(1)
