"""`sie models add` derives its Idempotency-Key from the file's bytes (CONTRACT §3)."""

from __future__ import annotations

import hashlib

from sie_tools.admin.keys import derive_idempotency_key


def test_known_vector() -> None:
    # sha256(b"") = e3b0c442 98fc1c14 9afbf4c8 996fb924 27ae41e4 ...
    assert derive_idempotency_key(b"") == "sie-add-e3b0c44298fc1c149afbf4c8996fb924"


def test_prefix_and_length_and_content_addressing() -> None:
    body = b"sie_id: a/b\nprofiles: {}\n"
    key = derive_idempotency_key(body)
    assert key == "sie-add-" + hashlib.sha256(body).hexdigest()[:32]
    assert len(key) == len("sie-add-") + 32
    assert derive_idempotency_key(body) == key                  # stable across calls
    assert derive_idempotency_key(body + b"\n") != key          # any byte change, new key
