"""Logging set-up shared by the services: plain lines or JSON lines on stdout.

JSON lines carry the record's message verbatim, so an audit record (itself a JSON object) stays
machine-readable inside the `message` field.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

from sie_actors.settings import Setting

LOG_LEVEL = Setting(("SIE_LOG_LEVEL",), "info",
                    "`debug`, `info`, `warning` or `error` (`--log-level` wins)")
LOG_JSON = Setting(("SIE_LOG_JSON",), False, "`true` (also `1`, `yes`): JSON log lines "
                   "(`--json-logs` wins)", lambda raw, name: raw.lower() in ("1", "true", "yes"))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure_logging(level: str | None = None, json_lines: bool | None = None) -> None:
    level_name = (level or LOG_LEVEL.read(os.environ)).upper()
    if level_name not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise SystemExit(f"unknown log level {level_name.lower()!r}")
    if json_lines is None:
        json_lines = LOG_JSON.read(os.environ)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(
        "%(asctime)s | %(levelname)-8s | %(name)s - %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level_name)
    logging.getLogger("hypercorn.access").setLevel(logging.WARNING)
    if root.level > logging.DEBUG:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per poll otherwise
