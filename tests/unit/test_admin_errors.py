"""Service errors become one readable line and the documented exit code."""

from __future__ import annotations

import json

import pytest

from sie_tools.admin import exits
from sie_tools.admin.errors import format_error_body, http_error, unreachable


def body(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_domain_detail_with_validation_details() -> None:
    doc = {"detail": {"error": "validation_error", "message": "Adapter 'x:Y' is not routable",
                      "details": [{"message": "Adapter 'x:Y' is not routable"},
                                  {"message": "profile 'p' lacks max_batch_tokens"}]}}
    # the duplicate of `message` is dropped; the other detail is kept
    assert format_error_body(422, body(doc)) == (
        "validation_error: Adapter 'x:Y' is not routable; profile 'p' lacks max_batch_tokens")


def test_string_detail_and_list_detail() -> None:
    assert format_error_body(401, body({"detail": "Missing Authorization header"})) == \
        "Missing Authorization header"
    assert format_error_body(422, body({"detail": [{"msg": "field required"},
                                                    {"message": "bad type"}]})) == \
        "field required; bad type"


def test_detail_with_only_error_or_extra_fields() -> None:
    assert format_error_body(404, body({"detail": {"error": "model_not_found"}})) == \
        "model_not_found"


def test_non_json_bodies_are_one_line() -> None:
    assert format_error_body(502, b"<html>\n<h1>Bad Gateway</h1>\n</html>") == \
        "<html> <h1>Bad Gateway</h1> </html>"
    assert format_error_body(503, b"", "Service Unavailable") == "Service Unavailable"
    assert format_error_body(503, b"") == "HTTP 503"
    long = format_error_body(500, b"x" * 1000)
    assert len(long) == 300 and long.endswith("…")


@pytest.mark.parametrize("status,code", [(400, exits.REFUSED), (404, exits.REFUSED),
                                         (422, exits.REFUSED), (500, exits.SERVER_ERROR),
                                         (503, exits.SERVER_ERROR)])
def test_http_error_exit_codes(status: int, code: int) -> None:
    err = http_error("sie-config", status, body({"detail": {"error": "e", "message": "m"}}))
    assert err.code == code
    assert err.message == f"sie-config answered {status}: e: m"


def test_unreachable_names_service_and_url() -> None:
    err = unreachable("sie-config", "http://127.0.0.1:1", "ConnectError: refused")
    assert err.code == exits.UNREACHABLE == 3
    assert err.message == "cannot reach sie-config at http://127.0.0.1:1: ConnectError: refused"
    assert err.reason == "ConnectError: refused"


def test_our_own_long_messages_are_kept_whole() -> None:
    """The 422 for a changed profile ends with what to do; cutting it at 300 lost that."""
    message = "Profile 'default' ... " + "x" * 400 + " `sie-cluster up --fresh` starts again."
    body = json.dumps({"detail": {"error": "validation_error", "message": message}}).encode()
    assert format_error_body(422, body).endswith("`sie-cluster up --fresh` starts again.")
