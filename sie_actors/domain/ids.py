"""Model-id rules, and the mapping between model ids and store file names.

The id rules are the original's (§2.2) tightened where it crashed or was ambiguous: a
non-string id and ``__`` are refused up front (CONTRACT §2 item 5 and its details), because
``__`` is how ``/`` is spelled in store file names and would make two ids share a file.
"""

from __future__ import annotations

import re

from .errors import InvalidModelId

# fullmatch, not match + "$": "$" would also accept a trailing newline.
_ID_PATTERN = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9._/-]*")

MSG_INVALID_CHARS = "Model ID contains invalid characters."
MSG_STATUS_SUFFIX = (
    "Model ID must not end with '/status' (reserved for the gateway status endpoint)."
)
MSG_NOT_STRING = "Model ID (sie_id) must be a string."
MSG_DOUBLE_UNDERSCORE = (
    "Model ID must not contain '__' (reserved: '/' is stored as '__' in file names)."
)

MSG_UNDERSCORE_SLASH = (
    "Model ID must not have '_' right before '/' (its store file name would be ambiguous)."
)

STORE_SEPARATOR = "__"

# Longest id, measured as its store file stem (each "/" written "__"), in bytes of UTF-8 (ids
# are ASCII). The file is ``{stem}.yaml``, written through a hidden ``.{stem}.yaml.<hex>.tmp``
# (23 bytes more), and file names stop at 255 bytes on common filesystems: 200 leaves margin.
MAX_MODEL_ID_BYTES = 200
MSG_TOO_LONG = (
    f"Model ID is too long: at most {MAX_MODEL_ID_BYTES} characters, counting each '/' as two "
    "(its store file name must fit the filesystem's limit)."
)


def validate_model_id(value: object) -> str:
    """Return ``value`` if it is an acceptable model id, else raise ``InvalidModelId``.

    Used for a POSTed ``sie_id`` and for the id in a GET path alike, so both refuse the same
    ids with the same message.
    """
    if not isinstance(value, str):
        raise InvalidModelId(MSG_NOT_STRING)
    if len(store_file_stem(value).encode("utf-8", "surrogatepass")) > MAX_MODEL_ID_BYTES:
        raise InvalidModelId(MSG_TOO_LONG)
    if not value or ".." in value or "\\" in value or not _ID_PATTERN.fullmatch(value):
        raise InvalidModelId(MSG_INVALID_CHARS)
    if STORE_SEPARATOR in value:
        raise InvalidModelId(MSG_DOUBLE_UNDERSCORE)
    if "_/" in value:  # "a_/b" would be stored as "a___b", which reads back as "a/_b"
        raise InvalidModelId(MSG_UNDERSCORE_SLASH)
    if value == "status" or value.endswith("/status"):
        raise InvalidModelId(MSG_STATUS_SUFFIX)
    return value


def store_file_stem(model_id: str) -> str:
    """File stem of a model in the store (``{base}/models/{stem}.yaml``), as the original."""
    return model_id.replace("/", STORE_SEPARATOR)


def model_id_from_stem(stem: str) -> str:
    """Inverse of ``store_file_stem``; exact because valid ids never contain ``__``."""
    return stem.replace(STORE_SEPARATOR, "/")


def canonical_lower(model_id: str) -> str:
    """Key of the case-insensitive model index (CONTRACT §2 item 14: one rule for case)."""
    return model_id.lower()
