"""The audit trail of `POST /v1/configs/models`: one JSON line per write and per refusal.

Operators need both: who changed the catalog, and who tried and was refused (a 401 storm, a
client sending 422s in a loop). A line never carries the body or the token: the caller is named by
the token's role and a short digest of it.
"""

from __future__ import annotations

import json
import logging

audit = logging.getLogger("sie.audit")

REFUSED_EVENT = "config.add_model.refused"
WRITTEN_EVENT = "config.add_model"


def audit_write(*, status: int, token_role: str, token_id: str | None, latency_ms: float,
                body_bytes: int | None, model_id: str | None = None, error: str | None = None,
                dry_run: bool = False) -> None:
    """Log one write attempt; a refusal (any status but 200/201) carries its error code."""
    refused = status not in (200, 201)
    record = {"event": REFUSED_EVENT if refused else WRITTEN_EVENT, "method": "POST",
              "endpoint": "/v1/configs/models", "status": status, "error": error,
              "token": token_role, "token_id": token_id, "model": model_id,
              "dry_run": True if dry_run else None, "latency_ms": round(latency_ms, 2),
              "body_bytes": body_bytes}
    line = json.dumps({k: v for k, v in record.items() if v is not None}, separators=(",", ":"))
    if refused:
        audit.warning(line)
    else:
        audit.info(line)
