"""What every step shares: the log, the time stamp, and ``run_step`` (one-line errors)."""

from __future__ import annotations

import datetime as dt
import logging
import sys
import traceback
from pathlib import Path

from ..errors import IsobenchError
from ..runs import watch_run

log = logging.getLogger("isobench")


def now_iso() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def run_step(smk, step) -> None:
    """Run ``step(smk)``: log to the rule's log file; an error is one line on stderr and exit 1."""
    log_path = Path(smk.log[0]) if smk.log else None
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=handlers, force=True)
    watch_run()  # the job (and the tests it runs) ends when the run that started it is gone
    try:
        step(smk)
    except IsobenchError as exc:
        log.error("isobench: %s", exc)
        sys.exit(1)
    except Exception as exc:  # a bug of ours: the traceback goes to the log only
        if log_path:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(traceback.format_exc())
        sys.stderr.write(
            f"isobench: internal error in rule {smk.rule}: {type(exc).__name__}: {exc} (traceback in {log_path})\n"
        )
        sys.exit(1)
