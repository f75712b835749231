"""The 409 rules (reference §2.5, §2.6): appends that would silently change stored content.

They compare a write against a stored model document. Since we always store the whole model
(CONTRACT §2 item 10), the registry's own document (``plan.previous_config``) is a valid
stored document, so these checks work with or without a store file; the writer chooses
which document to pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from .errors import ContentConflict
from .ids import canonical_lower

if TYPE_CHECKING:
    from .append import AppendPlan


def _same_value(key: Any, incoming: Any, stored: Any) -> bool:
    if incoming == stored:
        return True
    # A case-variant sie_id appends to the existing model (CONTRACT §2 item 14): not a change.
    return (
        key == "sie_id"
        and isinstance(incoming, str)
        and isinstance(stored, str)
        and canonical_lower(incoming) == canonical_lower(stored)
    )


def content_conflicts(
    plan: AppendPlan, stored_doc: Mapping[str, Any] | None = None
) -> ContentConflict | None:
    """The 409 a write must get, or ``None``.

    * Pure replay (nothing created, something skipped): each skipped profile's full raw
      mapping must equal the stored one (a missing stored profile counts as ``{}``), else
      ``conflicting_profiles`` in request order.
    * Creating write: every top-level key of the request other than ``profiles`` that the
      stored document also has must be equal, else ``conflicting_fields`` (sorted).

    ``stored_doc`` defaults to the model's document in the registry before the write; an
    empty or non-mapping document means "nothing stored" and never conflicts.
    """
    doc = plan.previous_config if stored_doc is None else stored_doc
    if not isinstance(doc, Mapping) or not doc:
        return None
    request = plan.request
    if not plan.created_profiles:
        if not plan.skipped_profiles:
            return None
        stored_profiles = doc.get("profiles")
        if not isinstance(stored_profiles, Mapping):
            stored_profiles = {}
        incoming = request.get("profiles") or {}
        names = [
            name
            for name in plan.skipped_profiles
            if incoming.get(name) != stored_profiles.get(name, {})
        ]
        return ContentConflict.profiles(plan.model_id, names) if names else None
    fields = [
        key
        for key, value in request.items()
        if key != "profiles" and key in doc and not _same_value(key, value, doc[key])
    ]
    return ContentConflict.fields(plan.model_id, fields) if fields else None


def check_content_conflicts(plan: AppendPlan, stored_doc: Mapping[str, Any] | None = None) -> None:
    """Raise the ``ContentConflict`` of ``content_conflicts``, if any."""
    conflict = content_conflicts(plan, stored_doc)
    if conflict is not None:
        raise conflict
