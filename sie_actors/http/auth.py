"""Bearer-token checks shared by every service's HTTP surface.

Two roles: the read (inference) token and the admin token. The rules are the seed's and the
original's (reference §7), with one fix (CONTRACT §2 item 15): an empty variable counts as unset,
so `SIE_AUTH_TOKEN=""` does not lock every read out. Comparisons are constant-time; tokens are never
logged, only a short digest (`token_id`) for the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from sie_actors.domain.errors import InvalidRequest
from sie_actors.settings import Setting


class AuthError(Exception):
    """401/403 with the string `detail` that the original's clients expect."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


MISSING = "Missing Authorization header"
INVALID = "Invalid token"
WRITE_NEEDS_ADMIN = ("Write operations require SIE_ADMIN_TOKEN "
                     "(inference token is not sufficient).")
ADMIN_REQUIRED = "Admin token required for config mutations"


@dataclass(frozen=True)
class Tokens:
    read: str | None = None
    admin: str | None = None

    @classmethod
    def from_env(cls, environ) -> "Tokens":
        return cls(read=environ.get("SIE_AUTH_TOKEN") or None,
                   admin=environ.get("SIE_ADMIN_TOKEN") or None)

    @property
    def open(self) -> bool:
        return self.read is None and self.admin is None


# The two token variables, read together; each service states what they mean for it.
TOKENS = Setting(("SIE_AUTH_TOKEN", "SIE_ADMIN_TOKEN"), Tokens(), "see [Tokens](#tokens)",
                 from_environ=Tokens.from_env, shown="unset")


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization` header: a leading `Bearer ` scheme (any case, RFC 7235)
    is removed, then the rest is stripped."""
    if not header:
        return ""
    if header[:7].lower() == "bearer ":
        header = header[7:]
    return header.strip()


def single_authorization(values: list[str]) -> str | None:
    """The one `Authorization` header of a request; several are a 400, not "the first wins".

    Proxies and clients disagree on which of several credentials counts, so a request that
    carries more than one is refused rather than judged on a guess.
    """
    if len(values) > 1:
        raise InvalidRequest(
            f"The request carries {len(values)} Authorization headers; send exactly one.")
    return values[0] if values else None


def _equal(given: str, expected: str | None) -> bool:
    return expected is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_read(tokens: Tokens, header: str | None) -> None:
    if tokens.open:
        return
    token = bearer_token(header)
    if not token:
        raise AuthError(401, MISSING)
    if _equal(token, tokens.read) or _equal(token, tokens.admin):
        return
    raise AuthError(403, INVALID)


def check_write(tokens: Tokens, header: str | None) -> None:
    if tokens.admin is None:
        if tokens.read is not None:
            raise AuthError(403, WRITE_NEEDS_ADMIN)
        return
    token = bearer_token(header)
    if not token:
        raise AuthError(401, MISSING)
    if not _equal(token, tokens.admin):
        raise AuthError(403, ADMIN_REQUIRED)


def token_id(header: str | None) -> str | None:
    """First 12 hex digits of sha256(token): identifies a caller in logs without revealing it."""
    token = bearer_token(header)
    return hashlib.sha256(token.encode()).hexdigest()[:12] if token else None


def token_role(tokens: Tokens, header: str | None) -> str:
    """Which token a request carried, by role: ``admin``, ``read``, ``none`` or ``unknown``.

    For audit lines: says who tried a write without revealing (or even hashing) the token.
    """
    token = bearer_token(header)
    if not token:
        return "none"
    if _equal(token, tokens.admin):
        return "admin"
    if _equal(token, tokens.read):
        return "read"
    return "unknown"


def auth_headers(token: str | None) -> dict[str, str]:
    """Headers for outbound calls between our services."""
    return {"Authorization": f"Bearer {token}"} if token else {}
