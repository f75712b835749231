"""A snapshot source that first asks sie-config what changed since the mirror's epoch.

Wraps a gateway's or a worker's full source (`FullExportSource`, `BundleExportSource`). A mirror
that stands somewhere (bootstrapped, with a generation) reads ``GET /v1/configs/deltas`` since
its epoch and applies the answer to the registry it holds (`domain.catchup.catch_up`: the
protocol's own delta apply, then sie-config's hashes checked). That costs sie-config a join of
bytes it keeps and the mirror a parse of what it missed, where a full snapshot costs an export
and a parse of every model (0.5-0.8 s per resync with ~6,000 models).

Anything unexpected falls back to the full source in the same fetch, with a log line: 410
`deltas_gone` (the mirror is older than sie-config's log, sie-config restarted or runs another
generation), 404 (an older sie-config without the endpoint: a mixed fleet during a rolling
upgrade; asked again on every fetch, so an upgraded sie-config is used at once), any other
answer, a malformed body, a delta that does not apply, a hash that does not match. Only
"sie-config unreachable" (timeout, connection refused) is raised as is: the full read would
fail the same way, after as long again. The snapshot says which path made it
(`MirrorSnapshot.path`): the protocol counts it and paces only full ones.
"""

from __future__ import annotations

import logging
from urllib.parse import urlencode

import trio

from sie_actors.domain.catchup import DELTAS_PATH, CatchUpRefused, catch_up, parse_answer
from sie_actors.domain.mirror_protocol import MirrorSnapshot, MirrorView

from .config_client import ConfigClient, ConfigReadError, SnapshotSource, endpoint_missing

log = logging.getLogger("sie_actors.catchup")

UNREACHABLE = ("timeout", "unreachable")


class CatchUpSource:
    def __init__(self, client: ConfigClient, full: SnapshotSource, bundle: str | None, *,
                 logger: logging.Logger = log) -> None:
        self.client = client
        self.full = full
        self.bundle = bundle  # None: every bundle (a gateway)
        self.log = logger
        self._older_warned = False

    async def fetch(self, current: MirrorView | None = None) -> MirrorSnapshot:
        if current is None or not current.bootstrapped or not current.position.generation:
            return await self.full.fetch(current)  # nothing to catch up from
        try:
            return await self._catch_up(current)
        except CatchUpRefused as exc:
            self._fallback(current, exc)
        return await self.full.fetch(current)

    async def _catch_up(self, current: MirrorView) -> MirrorSnapshot:
        query = {"since": current.position.epoch, "generation": current.position.generation}
        if self.bundle is not None:
            query["bundle"] = self.bundle
        try:
            body = await self.client.get(f"{DELTAS_PATH}?{urlencode(query)}")
        except ConfigReadError as exc:
            if exc.reason in UNREACHABLE:
                raise
            raise CatchUpRefused(exc.reason, exc.message) from None
        return await trio.to_thread.run_sync(self._apply, current, body)

    def _apply(self, current: MirrorView, body: bytes) -> MirrorSnapshot:
        return catch_up(current, parse_answer(body), self.bundle)

    def _fallback(self, current: MirrorView, exc: CatchUpRefused) -> None:
        where = f"epoch {current.position.epoch}"
        if endpoint_missing(exc.reason, exc.message):
            level = logging.DEBUG if self._older_warned else logging.WARNING
            self._older_warned = True
            self.log.log(level, "sie-config has no %s (an older sie-config): taking a full "
                                "snapshot instead of catching up from %s", DELTAS_PATH, where)
            return
        level = logging.WARNING if exc.reason in ("hash_mismatch", "apply_failed",
                                                  "malformed") else logging.INFO
        self.log.log(level, "catch-up from %s not possible (%s): taking a full snapshot; %s",
                     where, exc.reason, exc.message)
