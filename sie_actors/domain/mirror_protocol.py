"""The mirror protocol as data: how a gateway or a worker keeps its copy equal to sie-config.

Pure and I/O-free, in the style of h11: :meth:`MirrorProtocol.step` takes one event and the
current time, and returns the actions the caller must perform (fetch a snapshot, publish a view,
count a metric, ask to be woken later, poll the epoch). The MirrorActor performs them; tests
drive the protocol directly with any sequence of events, without sockets or clocks.

Rules (CONTRACT §2 items 1, 2, 4), on top of `domain.sync`'s verdicts:

* deltas apply strictly in epoch order; a gap, another generation, a delta that does not apply
  or a hash that disagrees after applying it makes the mirror fetch a snapshot, once sie-config
  has confirmed the delta (next rule);
* a delta that does not prove itself is held, not applied, while sie-config's epoch is read
  (``Poll("verify")``, one read out at a time, answering every delta held before it). Proof is
  the bundle hash the delta carries, reproduced after applying it: sie-config (ours and the
  original) hashes every delta it publishes, so a delta without a hash, with one we do not
  reproduce, or across a gap or into a generation we do not know, is what a forger or a fault
  produces. The read decides in milliseconds, without a snapshot: sie-config behind the delta's
  epoch or on another generation refutes it (dropped, as a snapshot would), and so does a
  report with hashes for a delta without one; at its epoch, the hashes decide; past it, the
  delta is superseded (sie-config's own delta of that epoch is in flight, and the read is
  judged as a poll, grace included); a gap or a generation it confirms is fetched (see
  ``sync.judge_held``). Why not apply first and check later: a forged ``epoch+1`` then sat on
  replicas until the next poll, and each forged gap cost a paced fetch, so a forged storm pushed
  the pacing to seconds while real writes queued behind it (sie-chaos: 2.8-5 s to converge
  after one). No answer within ``Pacing.verify_timeout`` (sie-config unreachable, no poller) falls
  back to a paced fetch;
* while a snapshot is owed or being fetched, deltas are buffered; once it is installed they are
  replayed in epoch order through the same rules;
* a delta received *before* a fetch was sent, whose epoch the snapshot does not reach (or whose
  generation it does not share), is refuted: sie-config publishes only what it has persisted, so
  such a delta was never written. It is dropped and counted, and causes no further fetch;
* every fetch is paced: the first after a quiet spell goes at once, each further one waits
  longer (``Pacing``), until an epoch poll finds the mirror in agreement with sie-config. A
  storm of bad deltas, forged or from a bug, costs sie-config a few exports a minute at most.
  A fetch the source answers by catching up (the deltas since our epoch from sie-config's log,
  applied with `append_delta` and checked against sie-config's hashes) does not lengthen the
  spacing: it costs sie-config no export (see ``Pacing``);
* the epoch poll treats "sie-config behind an epoch we held when we asked" and a hash that
  disagrees at equal epochs as drift, like being behind. A routine (timer) poll that finds
  sie-config ahead gives the deltas in flight ``Pacing.grace`` seconds to arrive before it
  fetches: under a steady stream of writes most polls race a delta. A poll after a reconnect
  (deltas were lost, not late), and the first to answer after sie-config was unreachable
  (``recovered``: killed mid-write, it may have persisted an epoch it never published), fetch
  at once.

Scope: a gateway mirrors every bundle (``bundle=None``), a worker one. On a worker's subject the
epochs of other bundles' writes look like gaps; a delta whose hash we reproduce after applying it
proves nothing of ours was missed and is taken across the gap without a fetch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Callable, Sequence, Union

from .delta import ConfigDelta, is_trusted_producer
from .errors import DomainError
from .model_config import parse_stored_model_yaml
from .registry import Registry
from .sync import (DeltaVerdict, Drift, EpochReport, HeldVerdict, MirrorPosition, judge_delta,
                   judge_epoch, judge_held, never_written)


# ---- configuration ----------------------------------------------------------------------------

@dataclass(frozen=True)
class MirrorScope:
    """What this mirror holds and whom it believes.

    ``bundle`` None: every bundle (a gateway on ``_all``); else that bundle only (a worker on its
    bundle's subject). ``can_resync`` False: there is no sie-config to ask, so gaps are applied
    as they come (best effort, logged).
    """

    bundle: str | None
    trusted: tuple[str, ...]
    can_resync: bool = True
    buffer_limit: int = 4096


@dataclass(frozen=True)
class Pacing:
    """Minimum spacing between snapshot fetches: 0, then ``initial`` doubling up to ``maximum``.

    The streak of fetches grows with each fetch and falls back to zero when an epoch poll finds
    no drift, or when no fetch was started for ``quiet`` seconds.

    A fetch answered by a catch-up (``MirrorSnapshot.path == CATCHUP``: the deltas since our
    epoch, read from sie-config's in-memory log and applied to our registry) does not count
    toward the streak; one answered by a full snapshot does. Why: the pacing protects sie-config
    from export storms (an export serialises every model; a gateway's rebuild parses each one),
    and a catch-up costs neither: sie-config joins bytes it keeps, the mirror parses only what it
    missed. Nor can catch-ups storm on their own: each one brings the mirror to sie-config's
    current epoch with its hashes checked, so another cause needs a new write or a new fault.
    Whether a fetch will be a catch-up is only known from its answer, so the streak grows when
    the fetch starts and a catch-up gives the step (and the time of the last fetch) back; a
    catch-up that falls back to an export is a full snapshot and keeps it, so exports stay paced
    exactly as before.
    """

    initial: float = 0.2
    maximum: float = 5.0
    grace: float = 0.5
    verify_timeout: float = 1.0  # a held delta's epoch read unanswered: fetch instead

    @property
    def quiet(self) -> float:
        return 2 * self.maximum

    def spacing(self, streak: int) -> float:
        if streak <= 0:
            return 0.0
        return min(self.maximum, self.initial * 2 ** min(streak - 1, 32))


# ---- events -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeltaReceived:
    """A message from the config subject, as received (untrusted bytes)."""

    payload: bytes


CATCHUP = "catchup"  # the deltas since the mirror's epoch, applied to its registry
FULL = "full"        # an export of the scope, built into a new registry


@dataclass(frozen=True)
class MirrorSnapshot:
    """A snapshot from sie-config, already built into a registry by the snapshot source.

    ``expected_hash``: the hash sie-config says the scope has ("" when it says none);
    ``path``: how the source made it (`CATCHUP` or `FULL`), for the pacing, a metric and a log.
    """

    registry: Registry
    epoch: int
    generation: str
    expected_hash: str = ""
    skipped: tuple[tuple[str, str], ...] = ()
    path: str = FULL


@dataclass(frozen=True)
class SnapshotFetched:
    round: int
    snapshot: MirrorSnapshot


@dataclass(frozen=True)
class SnapshotFailed:
    round: int
    reason: str
    message: str = ""


@dataclass(frozen=True)
class EpochObserved:
    """sie-config's epoch report; ``held``: where the mirror stood when the poll was sent;
    ``trigger``: ``timer`` for the routine poll, else why it was asked (``reconnect``,
    ``verify``); ``ask``: the number of the `Poll` it answers (0 for the routine poll)."""

    report: EpochReport
    held: MirrorPosition | None = None
    trigger: str = "timer"
    ask: int = 0


@dataclass(frozen=True)
class Reconnected:
    """The NATS link (re)connected: messages published meanwhile are gone."""


@dataclass(frozen=True)
class ResyncRequested:
    cause: str


@dataclass(frozen=True)
class Tick:
    """Time passed (the actor sends it at a time a ``Wake`` asked for)."""


Event = Union[DeltaReceived, SnapshotFetched, SnapshotFailed, EpochObserved, Reconnected,
              ResyncRequested, Tick]


# ---- actions ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class MirrorView:
    registry: Registry
    position: MirrorPosition
    bootstrapped: bool
    syncing: bool


@dataclass(frozen=True)
class Publish:
    view: MirrorView


@dataclass(frozen=True)
class Fetch:
    """Fetch a snapshot; ``since`` is where the mirror stands (registry and position), which a
    catch-up source applies sie-config's recent deltas to. It does not change while the fetch is
    out: every delta is buffered until the answer."""

    round: int
    cause: str
    since: MirrorView | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Wake:
    at: float


@dataclass(frozen=True)
class Poll:
    """Read sie-config's epoch now; answer with an `EpochObserved` carrying ``trigger`` and
    ``ask`` (a verify read is matched to the hold that asked it by that number)."""

    trigger: str
    ask: int = 0


class Metric(enum.Enum):
    DELTA = "delta"                  # labels: (result, kind)
    RESYNC = "resync"                # labels: (cause,)
    FETCH_FAILURE = "fetch_failure"  # labels: (reason,)
    SNAPSHOT_INSTALLED = "snapshot_installed"  # labels: (path,): CATCHUP or FULL
    SNAPSHOT_HASH_MISMATCH = "snapshot_hash_mismatch"


@dataclass(frozen=True)
class Count:
    metric: Metric
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class Note:
    """Something worth a log line: ``level`` is a `logging` level name."""

    level: str
    message: str


Action = Union[Publish, Fetch, Wake, Poll, Count, Note]


# ---- the machine ------------------------------------------------------------------------------

class Phase(enum.Enum):
    IDLE = "idle"            # in step as far as we know; deltas apply as they come
    VERIFYING = "verifying"  # a delta that did not prove itself is held; its epoch read is out
    OWED = "owed"            # a fetch is wanted, waiting for its pacing slot
    FETCHING = "fetching"    # a fetch is in flight


def delta_kind(delta: ConfigDelta) -> str:
    return "model_added" if delta.model_config.strip() else "epoch_bump"


class DeltaNotApplied(Exception):
    """A delta's model document does not parse or does not append to the registry."""


def append_delta(registry: Registry, delta: ConfigDelta,
                 parse_model: Callable[[str], object] = parse_stored_model_yaml) -> Registry:
    """``registry`` with ``delta``'s model appended (itself for an epoch bump): the one way a
    mirror applies a delta, heard on NATS or read back in a catch-up. Registries are persistent
    (``Registry.append`` returns a new one), so a published view is never touched. Raises
    `DeltaNotApplied` with the reason; untrusted text never raises anything else."""
    if not delta.model_config.strip():
        return registry  # an epoch bump: nothing to add
    try:
        appended, _plan = registry.append(parse_model(delta.model_config))
    except DomainError as exc:
        raise DeltaNotApplied(exc.message) from None
    except Exception as exc:  # noqa: BLE001 - untrusted text must never crash the mirror
        raise DeltaNotApplied(repr(exc)) from None
    return appended


@dataclass
class _Buffered:
    delta: ConfigDelta
    before_fetch: bool  # received before the question now out (a fetch or a verify read) was asked


@dataclass
class MirrorProtocol:
    scope: MirrorScope
    registry: Registry
    position: MirrorPosition = field(default_factory=MirrorPosition)
    bootstrapped: bool = False
    pacing: Pacing = field(default_factory=Pacing)
    parse_model: Callable[[str], object] = parse_stored_model_yaml

    def __post_init__(self) -> None:
        self.phase = Phase.IDLE
        self.round = 0
        self.cause = ""
        self._buffer: list[_Buffered] = []
        self._overflowed = False
        self._observation: EpochObserved | None = None
        self._streak = 0
        self._last_fetch_at: float | None = None
        self._fetch_before: float | None = None  # `_last_fetch_at` before the fetch now out
        self._due = 0.0
        self._expected: tuple[EpochReport, float] | None = None  # (sie-config's, judge at)
        self._verify_deadline = 0.0
        self._verify_ask = 0  # the number of the last verify read: only its answer judges
        self._appended_memo: tuple[ConfigDelta, Registry, Registry | None] | None = None
        self._out: list[Action] = []

    # ---- public -------------------------------------------------------------------------------
    @property
    def syncing(self) -> bool:
        return self.phase is not Phase.IDLE

    @property
    def awaited_verify(self) -> int | None:
        """The ``ask`` of the verify read whose answer would judge the held deltas, if any."""
        return self._verify_ask if self.phase is Phase.VERIFYING else None

    def view(self) -> MirrorView:
        return MirrorView(self.registry, self.position, self.bootstrapped, self.syncing)

    def start(self, now: float) -> list[Action]:
        """The first step: a mirror with a source and no snapshot yet (or a fresh incarnation
        of one that had) asks sie-config at once."""
        if self.scope.can_resync:
            self._want_fetch("restart" if self.bootstrapped else "startup", now)
        return self._flush()

    def step(self, event: Event, now: float) -> list[Action]:
        if isinstance(event, DeltaReceived):
            self._on_payload(event.payload, now)
        elif isinstance(event, SnapshotFetched):
            self._on_snapshot(event, now)
        elif isinstance(event, SnapshotFailed):
            self._on_failure(event, now)
        elif isinstance(event, EpochObserved):
            self._on_observation(event, now)
        elif isinstance(event, Reconnected):
            self._emit(Poll("reconnect"))
        elif isinstance(event, ResyncRequested):
            if self.scope.can_resync:
                self._want_fetch(event.cause, now)
        elif isinstance(event, Tick):
            self._on_tick(now)
        else:
            raise TypeError(f"mirror protocol: unexpected event {event!r}")
        return self._flush()

    # ---- deltas -------------------------------------------------------------------------------
    def _on_payload(self, payload: bytes, now: float) -> None:
        try:
            delta = ConfigDelta.from_json(payload)
        except DomainError as exc:
            self._count_delta("invalid", "unknown")
            self._note("warning", f"dropping malformed delta: {exc.message}")
            return
        if not is_trusted_producer(delta.router_id, self.scope.trusted):
            self._count_delta("untrusted", delta_kind(delta))
            self._note("warning", f"dropping delta epoch {delta.epoch} from untrusted producer "
                                  f"{delta.router_id!r}")
            return
        bundle = self.scope.bundle
        if bundle is not None and delta.bundle_id and delta.bundle_id != bundle:
            self._count_delta("wrong_bundle", delta_kind(delta))
            self._note("warning", f"delta epoch {delta.epoch} for bundle {delta.bundle_id!r} on "
                                  f"our subject; ignored")
            return
        self._on_delta(delta, now)

    def _on_delta(self, delta: ConfigDelta, now: float, *, before_fetch: bool = False,
                  vouched: EpochReport | None = None) -> None:
        kind = delta_kind(delta)
        if self.syncing:
            if len(self._buffer) < self.scope.buffer_limit:
                self._buffer.append(_Buffered(delta, before_fetch or self.phase is Phase.OWED))
                self._count_delta("buffered", kind)
            else:
                self._overflowed = True
                self._count_delta("dropped_buffer_full", kind)
            return
        verdict = judge_delta(self.position, delta.epoch, delta.generation)
        if verdict is DeltaVerdict.STALE:
            self._count_delta("stale", kind)
            return
        if verdict is DeltaVerdict.GAP and self._closes_gap(delta):
            return
        proven = False  # sie-config's own hash vouches for the result: no check against the delta's
        if self._must_verify(delta, verdict):
            if vouched is None:
                self._hold(delta, now)
                return
            held = judge_held(verdict, vouched, epoch=delta.epoch, generation=delta.generation,
                              delta_hash=delta.bundle_config_hash,
                              result_hash=self._result_hash(delta, verdict),
                              bundle=self._delta_bundle(delta))
            if held in (HeldVerdict.REFUTED, HeldVerdict.SUPERSEDED):
                self._count_delta(held.value, kind)
                if held is HeldVerdict.REFUTED:
                    self._note("warning", f"dropping delta epoch {delta.epoch} (generation "
                                          f"{delta.generation or '-'}, hash "
                                          f"{delta.bundle_config_hash[:12] or '-'}): sie-config, "
                                          f"asked after it arrived, is at epoch {vouched.epoch} "
                                          f"(generation {vouched.generation or '-'})")
                return
            proven = held is HeldVerdict.PROVEN
        if verdict is DeltaVerdict.DUPLICATE:
            self._count_delta("duplicate", kind)
            if not proven:
                self._check_hash(delta, now)
            return
        if verdict in (DeltaVerdict.GAP, DeltaVerdict.GENERATION):
            self._count_delta(verdict.value, kind)
            if self.scope.can_resync:
                self._note("info", f"delta epoch {delta.epoch} (generation "
                                   f"{delta.generation or '-'}) at local {self._where()}: "
                                   f"{verdict.value}, resyncing")
                self._want_fetch(verdict.value, now)
                self._buffer.append(_Buffered(delta, True))
                return
            self._note("warning", f"delta epoch {delta.epoch} at local {self._where()} "
                                  f"({verdict.value}) and no sie-config to resync from: "
                                  f"applying it as is")
        self._apply(delta, now, check=not proven)

    def _apply(self, delta: ConfigDelta, now: float, *, check: bool = True) -> None:
        kind = delta_kind(delta)
        registry = self._appended(delta)
        if registry is None:
            self._count_delta("apply_failed", kind)
            if self.scope.can_resync:
                self._want_fetch("apply_failed", now)
                return
            registry = self.registry  # later deltas must not all look like gaps
        self._advance(registry, delta)
        self._count_delta("applied", kind)
        if check:
            self._check_hash(delta, now)

    def _closes_gap(self, delta: ConfigDelta) -> bool:
        """Take a worker's delta across an epoch gap when its hash proves nothing was missed.

        A worker's subject carries only its bundle's writes, so the epochs of other bundles'
        writes are gaps there (sie-chaos saw a snapshot fetched for most deltas). The delta's
        `bundle_config_hash` covers the whole bundle: reproducing it proves we hold exactly
        sie-config's bundle at that epoch.
        """
        bundle = self.scope.bundle
        if not (bundle is not None and self.bootstrapped and self.scope.can_resync
                and delta.bundle_config_hash and delta.generation
                and delta.generation == self.position.generation and delta.bundle_id == bundle
                and delta.model_config.strip()):
            return False
        registry = self._appended(delta)
        if registry is None or registry.bundle_config_hash(bundle) != delta.bundle_config_hash:
            return False
        self._advance(registry, delta)
        self._count_delta("applied_over_gap", delta_kind(delta))
        return True

    def _delta_bundle(self, delta: ConfigDelta) -> str:
        return self.scope.bundle if self.scope.bundle is not None else delta.bundle_id

    def _result_hash(self, delta: ConfigDelta, verdict: DeltaVerdict) -> str:
        """Our hash of the delta's bundle once it is applied (a duplicate: as we stand)."""
        bundle = self._delta_bundle(delta)
        if not bundle:
            return ""
        registry = self._appended(delta) if verdict is DeltaVerdict.APPLY else self.registry
        return registry.bundle_config_hash(bundle) if registry is not None else ""

    def _must_verify(self, delta: ConfigDelta, verdict: DeltaVerdict) -> bool:
        """Does the delta fail to prove itself (so that sie-config's epoch must be read before it
        counts)? A hashless duplicate claims nothing and is not held."""
        if not (self.scope.can_resync and self.bootstrapped):
            return False
        if verdict in (DeltaVerdict.GAP, DeltaVerdict.GENERATION):
            return True
        if verdict is DeltaVerdict.DUPLICATE and not delta.bundle_config_hash:
            return False
        return not delta.bundle_config_hash or (self._result_hash(delta, verdict)
                                                != delta.bundle_config_hash)

    # ---- verification: a held delta against sie-config's epoch ---------------------------------
    def _hold(self, delta: ConfigDelta, now: float) -> None:
        """Keep a delta that did not prove itself aside and ask sie-config's epoch (one read
        answers every delta held until it is sent; later ones wait for the next)."""
        self.phase = Phase.VERIFYING
        for item in self._buffer:
            item.before_fetch = True
        self._buffer.append(_Buffered(delta, True))
        self._count_delta("held", delta_kind(delta))
        self._verify_deadline = now + self.pacing.verify_timeout
        self._verify_ask += 1
        self._emit(Poll("verify", self._verify_ask))
        self._emit(Wake(self._verify_deadline))

    def _on_verify_answer(self, event: EpochObserved, now: float) -> None:
        report = event.report
        self.phase = Phase.IDLE
        buffered, self._buffer = self._buffer, []
        # a delta that proves itself goes before an unproven copy of its epoch
        for item in sorted(buffered, key=lambda b: (b.delta.epoch,
                                                    not b.delta.bundle_config_hash)):
            if item.before_fetch and not self.syncing:
                self._on_delta(item.delta, now, before_fetch=True, vouched=report)
            else:  # heard after the read was asked, or buffered behind a fetch this started
                self._on_delta(item.delta, now, before_fetch=True)
        self._after_question(now, EpochObserved(report, event.held, "verify"))

    def _appended(self, delta: ConfigDelta) -> Registry | None:
        """Our registry with the delta applied; None if it does not apply. The last result is
        kept: proving a delta and applying it are one parse and one append, not two."""
        memo = self._appended_memo
        if memo is not None and memo[0] is delta and memo[1] is self.registry:
            return memo[2]
        registry = self._append(delta)
        self._appended_memo = (delta, self.registry, registry)
        return registry

    def _append(self, delta: ConfigDelta) -> Registry | None:
        try:
            return append_delta(self.registry, delta, self.parse_model)
        except DeltaNotApplied as exc:
            self._note("warning", f"delta epoch {delta.epoch} for {delta.model_id} did not "
                                  f"apply: {exc}")
            return None

    def _advance(self, registry: Registry, delta: ConfigDelta) -> None:
        self.registry = registry
        self.position = MirrorPosition(delta.epoch,
                                       delta.generation or self.position.generation)
        self._publish()

    def _check_hash(self, delta: ConfigDelta, now: float) -> None:
        """After applying (or re-hearing) a write: does our hash match the producer's?"""
        bundle = self.scope.bundle if self.scope.bundle is not None else delta.bundle_id
        if not bundle or not delta.bundle_config_hash:
            return
        if delta.bundle_id and delta.bundle_id != bundle:
            return
        own = self.registry.bundle_config_hash(bundle)
        if own == delta.bundle_config_hash:
            return
        self._count_delta("hash_mismatch", delta_kind(delta))
        self._note("warning", f"bundle {bundle} hash after epoch {delta.epoch} is {own[:12]}, "
                              f"sie-config says {delta.bundle_config_hash[:12]}")
        if self.scope.can_resync:
            self._want_fetch("hash_mismatch", now)

    # ---- epoch poll ---------------------------------------------------------------------------
    def _on_observation(self, event: EpochObserved, now: float) -> None:
        if self.phase is Phase.VERIFYING:
            if event.trigger == "verify" and event.ask == self._verify_ask:
                self._on_verify_answer(event, now)
            else:
                # an older read may predate the held deltas; any report waits until they settle
                self._observation = event
            return
        if self.phase is Phase.OWED and self.cause == "retry":
            # sie-config answers again: a retry waiting out its backoff may go now (a fetch
            # paced for any other cause keeps its slot); judge drift afterwards
            self._observation = event
            self._start_fetch(now)
            return
        if self.phase is Phase.OWED:
            self._observation = event
            return
        if self.phase is Phase.FETCHING or not self.bootstrapped:
            self._observation = event
            return
        registry = self.registry
        bundle = self.scope.bundle
        if bundle is not None and self._catches_up(event.report):
            return
        if bundle is None:
            drift = judge_epoch(self.position, event.report,
                                own_bundles_hash=registry.bundles_hash,
                                own_bundle_hashes=registry.bundle_config_hashes(),
                                held=event.held)
        else:
            drift = judge_epoch(self.position, event.report,
                                own_bundle_hashes={bundle: registry.bundle_config_hash(bundle)},
                                held=event.held)
        if drift is Drift.NONE:
            self._streak = 0  # sie-config confirms us: the next fault may resync at once
            return
        if (drift is Drift.EPOCH_AHEAD and event.trigger in ("timer", "verify")
                and self.pacing.grace > 0):
            # most likely deltas in flight: judge again once they had time to arrive (polls
            # more frequent than the grace do not push that moment back)
            if self._expected is None:
                at = now + self.pacing.grace
                self._expected = (event.report, at)
                self._emit(Wake(at))
            return
        self._note("info", f"epoch poll found drift ({drift.value}): local {self._where()}, "
                           f"sie-config epoch {event.report.epoch} (generation "
                           f"{event.report.generation or '-'})")
        if self.scope.can_resync:
            self._want_fetch(drift.value, now)

    def _catches_up(self, report: EpochReport) -> bool:
        """A worker behind sie-config's epoch whose bundle hash equals sie-config's holds exactly
        its bundle at that epoch: the writes it did not hear were other bundles'. It takes the
        epoch instead of fetching a snapshot it already has (the poll's twin of `_closes_gap`)."""
        bundle = self.scope.bundle
        assert bundle is not None
        remote = report.bundle_config_hashes.get(bundle)
        if not (remote and report.generation and report.generation == self.position.generation
                and report.epoch > self.position.epoch
                and remote == self.registry.bundle_config_hash(bundle)):
            return False
        self.position = MirrorPosition(report.epoch, report.generation)
        self._streak = 0
        self._publish()
        return True

    # ---- fetching -----------------------------------------------------------------------------
    def _want_fetch(self, cause: str, now: float) -> None:
        if self.phase is Phase.VERIFYING:
            self.phase = Phase.IDLE  # the snapshot answers the held deltas too (refuted or not)
        if self.syncing:
            return  # the fetch owed or in flight answers this cause too
        self._count(Metric.RESYNC, cause)
        self.cause = cause
        self.phase = Phase.OWED
        if self._last_fetch_at is not None and now - self._last_fetch_at >= self.pacing.quiet:
            self._streak = 0
        last = self._last_fetch_at if self._last_fetch_at is not None else now
        self._due = last + self.pacing.spacing(self._streak)
        if now >= self._due:
            self._start_fetch(now)
        else:
            self._emit(Wake(self._due))
            self._publish()

    def _on_tick(self, now: float) -> None:
        if self.phase is Phase.VERIFYING and now >= self._verify_deadline:
            self._note("info", "sie-config's epoch did not come in time to judge the held "
                               "deltas: resyncing")
            self._want_fetch("unverified", now)
        if self.phase is Phase.OWED and now >= self._due:
            self._start_fetch(now)
        if self._expected is not None and now >= self._expected[1]:
            expected, _at = self._expected
            self._expected = None
            if (not self.syncing and (self.position.generation != expected.generation
                                      or self.position.epoch < expected.epoch)
                    and not (self.scope.bundle is not None and self._catches_up(expected))):
                # (a worker whose own deltas arrived meanwhile may now hold sie-config's hash
                # for its bundle: the rest of the way was other bundles' writes)
                self._note("info", f"sie-config was at epoch {expected.epoch}; still at local "
                                   f"{self._where()}: resyncing")
                if self.scope.can_resync:
                    self._want_fetch(Drift.EPOCH_AHEAD.value, now)

    def _start_fetch(self, now: float) -> None:
        for item in self._buffer:
            item.before_fetch = True  # everything heard so far predates this request
        self.phase = Phase.FETCHING
        self.round += 1
        self._streak += 1
        self._fetch_before, self._last_fetch_at = self._last_fetch_at, now
        self._emit(Fetch(self.round, self.cause, self.view()))
        self._publish()

    def _on_failure(self, event: SnapshotFailed, now: float) -> None:
        if self.phase is not Phase.FETCHING or event.round != self.round:
            return
        self._count(Metric.FETCH_FAILURE, event.reason)
        self._note("warning", f"snapshot fetch ({self.cause}) failed: {event.message}")
        self.phase = Phase.IDLE
        self._want_fetch("retry", now)

    def _on_snapshot(self, event: SnapshotFetched, now: float) -> None:
        if self.phase is not Phase.FETCHING or event.round != self.round:
            return  # an answer to a round we gave up on
        snapshot = event.snapshot
        first = not self.bootstrapped
        self.registry = snapshot.registry
        self.position = MirrorPosition(snapshot.epoch, snapshot.generation)
        self.bootstrapped = True
        self.phase = Phase.IDLE
        if snapshot.path == CATCHUP:  # cheap for sie-config: paced as if never sent (`Pacing`)
            self._streak = max(0, self._streak - 1)
            self._last_fetch_at = self._fetch_before
        self._count(Metric.SNAPSHOT_INSTALLED, snapshot.path)
        for model_id, reason in snapshot.skipped:
            self._note("warning", f"snapshot entry {model_id} not applied: {reason}")
        bundle = self.scope.bundle
        own = (self.registry.bundle_config_hash(bundle) if bundle is not None
               else self.registry.bundles_hash)
        if snapshot.expected_hash and own != snapshot.expected_hash:
            self._count(Metric.SNAPSHOT_HASH_MISMATCH)
            self._note("error", f"snapshot epoch {snapshot.epoch}: computed hash {own[:12]} "
                                f"but sie-config says {snapshot.expected_hash[:12]}")
        self._note("info", f"{'bootstrapped' if first else 'resynced'} ({self.cause}) from "
                           f"sie-config by {snapshot.path}: epoch {snapshot.epoch}, generation "
                           f"{snapshot.generation or '-'}, hash {own[:12]}")
        self._publish()
        self._replay(snapshot, now)
        self._after_question(now)

    def _after_question(self, now: float, answer: EpochObserved | None = None) -> None:
        """A snapshot or a verify read was dealt with: judge the epoch report that waited, then
        the read's own (the newest), then a buffer that overflowed meanwhile. A report that
        waits for a snapshot is judged after it; the read's own is not: a snapshot asked after
        it answers everything it could (and its agreement must not reset the pacing)."""
        observation, self._observation = self._observation, None
        if observation is not None:
            if self.syncing:
                self._observation = observation
            else:
                self._on_observation(observation, now)
        if answer is not None and self.phase is Phase.IDLE:
            self._on_observation(answer, now)
        if self._overflowed and not self.syncing:
            self._overflowed = False
            self._want_fetch("buffer_overflow", now)

    def _replay(self, snapshot: MirrorSnapshot, now: float) -> None:
        buffered, self._buffer = self._buffer, []
        seen: set[tuple[str, int]] = set()
        # a delta that carries a hash goes before an unproven copy of its epoch
        for item in sorted(buffered, key=lambda b: (b.delta.epoch,
                                                    not b.delta.bundle_config_hash)):
            delta = item.delta
            key = (delta.generation, delta.epoch)
            if key in seen:
                # a copy of an epoch this replay already handled: every delta ends in one result
                self._count_delta("duplicate", delta_kind(delta))
                continue
            seen.add(key)
            if item.before_fetch and refuted(delta, snapshot):
                self._count_delta("refuted", delta_kind(delta))
                self._note("warning", f"dropping delta epoch {delta.epoch} (generation "
                                      f"{delta.generation or '-'}): sie-config, asked after it "
                                      f"arrived, is at epoch {snapshot.epoch} (generation "
                                      f"{snapshot.generation or '-'})")
                continue
            if item.before_fetch and delta.epoch <= snapshot.epoch:
                # the snapshot, asked after it arrived, already holds its epoch: nothing in it
                # is left to check (else a copy with a bad hash would be held after every fetch)
                self._count_delta("duplicate" if delta.epoch == snapshot.epoch else "stale",
                                  delta_kind(delta))
                continue
            # a fetch started by an earlier item of this replay was sent after all of them
            self._on_delta(delta, now, before_fetch=True)

    # ---- output -------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"epoch {self.position.epoch} (generation {self.position.generation or '-'})"

    def _publish(self) -> None:
        self._emit(Publish(self.view()))

    def _count(self, metric: Metric, *labels: str) -> None:
        self._emit(Count(metric, labels))

    def _count_delta(self, result: str, kind: str) -> None:
        self._emit(Count(Metric.DELTA, (result, kind)))

    def _note(self, level: str, message: str) -> None:
        self._emit(Note(level, message))

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        # Only the last view of a step matters to readers: publish it once, at the end.
        views = [a for a in out if isinstance(a, Publish)]
        if len(views) > 1:
            last = views[-1]
            out = [a for a in out if not isinstance(a, Publish) or a is last]
        return out


def refuted(delta: ConfigDelta, snapshot: MirrorSnapshot) -> bool:
    """Does a snapshot taken after `delta` arrived prove it was never written?"""
    return never_written(delta.epoch, delta.generation, snapshot.epoch, snapshot.generation)


def last_view(actions: Sequence[Action]) -> MirrorView | None:
    views = [a.view for a in actions if isinstance(a, Publish)]
    return views[-1] if views else None
