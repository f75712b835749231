"""docs/configuration.md's token table is what sie_actors.http.auth does, row by row."""

from __future__ import annotations

from pathlib import Path

import pytest

from sie_actors.http.auth import AuthError, Tokens, check_read, check_write

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
READ, ADMIN = "read-token", "admin-token"
SENT = {"none": None, "the read token": READ, "the admin token": ADMIN, "another": "nope"}


def token_rows() -> list[list[str]]:
    section = DOC.read_text(encoding="utf-8").split("## Tokens", 1)[1].split("\n## ", 1)[0]
    lines = [l for l in section.splitlines() if l.startswith("|")][2:]
    return [[c.strip() for c in l.strip("|").split("|")] for l in lines]


def outcome(check, tokens: Tokens, token: str | None) -> str:
    try:
        check(tokens, f"Bearer {token}" if token else None)
    except AuthError as exc:
        return str(exc.status)
    return "ok"


def test_every_combination_is_documented_once():
    combos = {(r[0], r[1], r[2]) for r in token_rows()}
    assert len(combos) == len(token_rows()) == 11


@pytest.mark.parametrize("row", token_rows(), ids=lambda r: "/".join(r[:3]))
def test_documented_outcome_is_the_code(row):
    read_env, admin_env, sent, reads, writes = row
    tokens = Tokens(read=READ if read_env == "set" else None,
                    admin=ADMIN if admin_env == "set" else None)
    assert outcome(check_read, tokens, SENT[sent]) == reads
    assert outcome(check_write, tokens, SENT[sent]) == writes
