"""Each service setting declared once: environment variable, parser, default and doc line.

A service's settings class lists its settings as dataclass fields made by :func:`setting`; the
same declaration gives the field's default, :func:`read_settings` reads the environment with it,
and ``python -m sie_actors.settings_doc`` writes the tables of ``docs/configuration.md`` from it
(a test fails when they differ). So a default cannot drift between the code and the docs.

Rules shared by every setting: an empty (or blank) variable counts as unset; the first set name
wins when a setting has several; a bad value stops the service at start with a message naming
the variable, instead of surfacing later as a confusing runtime error.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from sie_actors.domain.delta import DEFAULT_TRUSTED_PRODUCERS, parse_trusted_producers

_KEY = "sie_setting"


# Parsers: (raw value, variable name) -> value. Only called for a set, non-blank variable.

def text(raw: str, name: str) -> str:
    return raw


def url(raw: str, name: str) -> str | None:
    """A base URL without its trailing slash (``http://c:8080/`` is ``http://c:8080``)."""
    return raw.strip().rstrip("/") or None


def flag(raw: str, name: str) -> bool:
    return env_flag(raw)


def positive_float(raw: str, name: str) -> float:
    try:
        value = float(raw)
    except ValueError as exc:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise SystemExit(f"{name} must be positive, got {raw!r}")
    return value


def count(raw: str, name: str) -> int:
    """A whole number, zero allowed."""
    try:
        value = int(raw.strip())
    except ValueError as exc:
        raise SystemExit(f"{name} must be a whole number, got {raw!r}") from exc
    if value < 0:
        raise SystemExit(f"{name} must not be negative, got {raw!r}")
    return value


def port_number(raw: str, name: str) -> int:
    """A TCP port to listen on, 1-65535."""
    value = count(raw, name)
    if not 1 <= value <= 65535:
        raise SystemExit(f"{name} must be a port number (1-65535), got {raw!r}")
    return value


def path(raw: str, name: str):
    from pathlib import Path
    return Path(raw)


def url_list(raw: str, name: str) -> tuple[str, ...]:
    """Comma-separated base URLs, trimmed, trailing slashes and duplicates dropped."""
    return tuple(dict.fromkeys(item.rstrip("/") for item in env_list(raw)))


def env_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in ("true", "1", "yes", "on")


def env_list(value: str | None) -> tuple[str, ...]:
    """Comma-separated, trimmed, empties dropped."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


@dataclass(frozen=True)
class Setting:
    """One setting. ``unset`` computes the value when no variable is set (default: ``default``);
    ``from_environ`` replaces the one-variable rule for settings read from several variables
    together (the two tokens); ``shown`` is the default as the docs state it, when the value
    alone would not say it (a computed fallback)."""

    env: tuple[str, ...]
    default: Any
    doc: str
    parse: Callable[[str, str], Any] = text
    unset: Callable[[Mapping[str, str]], Any] | None = None
    from_environ: Callable[[Mapping[str, str]], Any] | None = None
    shown: str | None = None

    def read(self, environ: Mapping[str, str]) -> Any:
        if self.from_environ is not None:
            return self.from_environ(environ)
        for name in self.env:
            raw = environ.get(name)
            if raw is not None and raw.strip():
                return self.parse(raw, name)
        return self.unset(environ) if self.unset is not None else self.default

    def field(self, **changes: Any) -> Any:
        """This setting as a dataclass field (``changes`` adapt a shared declaration's doc)."""
        spec = dataclasses.replace(self, **changes) if changes else self
        return dataclasses.field(default=spec.default, metadata={_KEY: spec})


def setting(env: str | tuple[str, ...], default: Any, doc: str, parse: Callable = text,
            **options: Any) -> Any:
    """A settings-class field declared with its variable(s), default, parser and doc line."""
    names = (env,) if isinstance(env, str) else tuple(env)
    return Setting(names, default, doc, parse, **options).field()


def declared(cls: type) -> list[tuple[str, Setting]]:
    """(field name, setting) of every environment-backed field of a settings class, in order."""
    return [(f.name, f.metadata[_KEY]) for f in dataclasses.fields(cls) if _KEY in f.metadata]


def read_settings(cls: type, environ: Mapping[str, str]) -> dict[str, Any]:
    """The values of ``cls``'s declared settings in ``environ``, by field name."""
    return {name: spec.read(environ) for name, spec in declared(cls)}


# Declarations shared by every service (the same variable means the same thing everywhere).

NATS_PING_INTERVAL = Setting(
    ("SIE_NATS_PING_INTERVAL_S",), 2.0,
    "NATS ping interval; a silent (paused) server is noticed after 2-3 intervals",
    positive_float)
SUPERVISOR_MAX_RESTARTS = Setting(
    ("SIE_SUPERVISOR_MAX_RESTARTS",), 20,
    "failures of one actor within `SIE_SUPERVISOR_WINDOW_S` after which restarting it is "
    "deemed not to help: the service stops with an error", count)
SUPERVISOR_WINDOW = Setting(
    ("SIE_SUPERVISOR_WINDOW_S",), 60.0,
    "the window of `SIE_SUPERVISOR_MAX_RESTARTS`", positive_float)
TRUSTED_PRODUCERS = Setting(
    ("SIE_NATS_CONFIG_TRUSTED_PRODUCERS",), DEFAULT_TRUSTED_PRODUCERS,
    "comma-separated producer ids whose deltas are applied (`x` and `x-*`)",
    lambda raw, name: parse_trusted_producers(raw))
