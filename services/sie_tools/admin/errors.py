"""Failures as one readable line plus an exit code, never a stack trace.

Services answer errors as `{"detail": {"error", "message", "details": [...]}}` (domain errors) or
`{"detail": "..."}` (auth, 404/405); `format_error_body` turns any of these (or a non-JSON body
from a proxy in between) into the line an operator needs.
"""

from __future__ import annotations

import json
from typing import Any

from sie_tools.admin import exits

MAX_TEXT = 300          # a body that is not ours (a proxy's HTML page): the start is enough
MAX_DETAIL = 2000       # our own error messages say what to do at the end: keep them whole


class CliError(Exception):
    """Raised anywhere in a command; `cli.main` prints `message` to stderr and exits `code`."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _one_line(text: str, limit: int = MAX_TEXT) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _detail_object(detail: dict[str, Any]) -> str:
    error, message = detail.get("error"), detail.get("message")
    head = ": ".join(str(part) for part in (error, message) if part not in (None, ""))
    extras = []
    for item in detail.get("details") or []:
        text = item.get("message") or item.get("msg") if isinstance(item, dict) else item
        if text and str(text) != str(message) and str(text) not in extras:
            extras.append(str(text))
    parts = [head] if head else []
    parts.extend(extras)
    return "; ".join(parts) if parts else json.dumps(detail, sort_keys=True)


def format_detail(detail: Any) -> str:
    """The human line for a `detail` value of any of the shapes services use."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, dict):
        return _detail_object(detail)
    if isinstance(detail, list):  # FastAPI-style validation lists
        texts = [str(i.get("msg") or i.get("message") or i) if isinstance(i, dict) else str(i)
                 for i in detail]
        return "; ".join(texts)
    return json.dumps(detail)


def format_error_body(status: int, body: bytes, reason: str = "") -> str:
    """One line describing an error response; falls back to the text or the reason phrase."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if isinstance(data, dict) and "detail" in data:
        return _one_line(format_detail(data["detail"]), MAX_DETAIL)
    if text.strip():
        return _one_line(text)
    return reason or f"HTTP {status}"


def http_error(label: str, status: int, body: bytes, reason: str = "") -> CliError:
    """4xx → exit 1 (the service refused), 5xx → exit 4 (the service failed)."""
    code = exits.SERVER_ERROR if status >= 500 else exits.REFUSED
    return CliError(code, f"{label} answered {status}: {format_error_body(status, body, reason)}")


class Unreachable(CliError):
    """No HTTP answer at all; keeps the bare `reason` for callers that name the URL themselves."""

    def __init__(self, label: str, url: str, reason: str) -> None:
        super().__init__(exits.UNREACHABLE, f"cannot reach {label} at {url}: {reason}")
        self.reason = reason


def unreachable(label: str, url: str, reason: str) -> Unreachable:
    return Unreachable(label, url, reason)
