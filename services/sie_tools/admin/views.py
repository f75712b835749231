"""Human renderings of service responses (the default; `--json` prints the responses instead).

Pure functions from a decoded body to lines, so their wording is unit-testable and commands stay
about requests, not formatting.
"""

from __future__ import annotations

from typing import Any


def _names(items: list[Any]) -> str:
    return ", ".join(str(i) for i in items) if items else "-"


def add_summary(status: int, body: dict[str, Any], key: str | None) -> list[str]:
    """What a `POST /v1/configs/models` did (or, on a dry run, would do)."""
    model_id = body.get("model_id", "?")
    created = body.get("created_profiles") or []
    skipped = body.get("existing_profiles_skipped") or []
    if body.get("dry_run"):
        head = (f"dry run: {model_id} is valid; would create profile(s) {_names(created)} "
                f"(nothing was written)" if created
                else f"dry run: {model_id} is valid; all profiles already exist (nothing to do)")
    elif status == 201:
        head = f"created {model_id}: profile(s) {_names(created)}"
    else:
        head = f"no change to {model_id}: all profiles already exist"
    lines = [f"{head}  [HTTP {status}]"]
    if skipped:
        lines.append(f"  skipped (already present): {_names(skipped)}")
    for profile, bundles in (body.get("routable_bundles_by_profile") or {}).items():
        lines.append(f"  routable bundles for {profile}: {_names(bundles)}")
    for warning in body.get("warnings") or []:
        lines.append(f"  warning: {warning}")
    if key:
        lines.append(f"  idempotency key: {key}")
    return lines


def table(headers: tuple[str, ...], rows: list[tuple[Any, ...]]) -> list[str]:
    cells = [tuple(str(c) for c in headers)] + [tuple("-" if c is None else str(c) for c in r)
                                                for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return ["  ".join(c.ljust(widths[i]) for i, c in enumerate(row)).rstrip() for row in cells]


def models_table(body: dict[str, Any]) -> list[str]:
    models = body.get("models") or []
    return table(("MODEL", "PROFILES", "SOURCE"),
                 [(m.get("model_id"), _names(m.get("profiles") or []), m.get("source"))
                  for m in models])


def bundles_table(body: dict[str, Any]) -> list[str]:
    bundles = body.get("bundles") or []
    with_workers = any("connected_workers" in b for b in bundles)
    headers = ("BUNDLE", "PRIORITY", "ADAPTERS", "SOURCE") + (("WORKERS",) if with_workers else ())
    rows = [(b.get("bundle_id"), b.get("priority"), b.get("adapter_count"), b.get("source"))
            + ((b.get("connected_workers"),) if with_workers else ()) for b in bundles]
    return table(headers, rows)


def resolve_lines(body: dict[str, Any]) -> list[str]:
    return [f"{body.get('model')} -> bundle {body.get('resolved_bundle')}",
            f"  compatible bundles: {_names(body.get('compatible_bundles') or [])}",
            f"  profiles: {_names(body.get('profiles') or [])}"]


def epoch_lines(body: dict[str, Any]) -> list[str]:
    lines = [f"epoch {body.get('epoch')}  generation {body.get('generation')}",
             f"  bundles_hash: {body.get('bundles_hash')}"]
    for bundle, digest in sorted((body.get("bundle_config_hashes") or {}).items()):
        lines.append(f"  {bundle}: {digest or '(none)'}")
    return lines


def export_summary(body: dict[str, Any], where: str) -> str:
    models = body.get("models") or []
    return f"exported {len(models)} model(s) at epoch {body.get('epoch')} to {where}"
