"""Readiness summaries and live progress rendering of `sie models status --wait`."""

from __future__ import annotations

import io

from sie_tools.admin.progress import (LineProgress, TtyProgress, compact, progress_for,
                                      replica_line, replica_state, table_lines)
from sie_tools.admin.readiness import ReplicaReport, all_acked, fleet_json, outcome_lines

MODEL = "org/model"


def status(acked: list[str], pending: list[str], epoch: int = 7,
           bundle: str = "default") -> dict:
    done = not pending and bool(acked)
    return {"model_id": MODEL, "config_epoch": epoch, "all_bundles_acked": done,
            "no_bundles": False, "source": "gateway-registry",
            "bundles": [{"bundle_id": bundle, "expected_bundle_config_hash": "h",
                         "total_eligible_workers": len(acked) + len(pending),
                         "acked_workers": acked, "pending_workers": pending, "acked": done}]}


ACKED = ReplicaReport("http://gw1", status=status(["w-a", "w-b"], []))
PENDING = ReplicaReport("http://gw2", status=status(["w-a"], ["w-b", "w-c"]))
DOWN = ReplicaReport("http://gw3", error="unreachable: ConnectError: refused")
NOT_SEEN = ReplicaReport("http://gw4", error="HTTP 404: model_not_found: Model 'org/model' not found")


def test_acked_only_when_every_replica_says_so() -> None:
    assert ACKED.acked and not PENDING.acked and not DOWN.acked and not NOT_SEEN.acked
    assert all_acked([ACKED]) and not all_acked([ACKED, PENDING]) and not all_acked([])
    no_bundles = ReplicaReport("g", status={**status([], []), "no_bundles": True, "bundles": []})
    assert not no_bundles.acked
    assert no_bundles.reasons() == ["model resolves to no bundle on this replica"]


def test_compact_worker_lists() -> None:
    assert compact([]) == "-"
    assert compact(["a", "b"]) == "a, b"
    assert compact(["a", "b", "c", "d", "e"]) == "a, b, c +2"


def test_table_lists_replica_epoch_and_workers() -> None:
    lines = table_lines(MODEL, [ACKED, PENDING, DOWN], 1.25, timeout=60)
    assert lines[0] == "org/model: 1/3 gateway replica(s) acked  [1.2s / 60s]"
    assert lines[1].split() == ["GATEWAY", "EPOCH", "BUNDLE", "STATE", "ACKED", "PENDING"]
    assert lines[2].split() == ["http://gw1", "7", "default", "acked", "2/2", "w-a,", "w-b", "-"]
    assert lines[3].split() == ["http://gw2", "7", "default", "pending", "1/3", "w-a", "w-b,", "w-c"]
    assert "ERROR" in lines[4] and "unreachable: ConnectError: refused" in lines[4]
    # columns are aligned: every row's BUNDLE cell starts at the same offset
    col = lines[1].index("BUNDLE")
    assert all(line[col:].startswith(("default", "-")) for line in lines[2:])


def test_replica_line() -> None:
    assert replica_line(PENDING) == ("http://gw2: epoch 7: not acked: default pending 1/3 "
                                     "acked [w-a] pending [w-b, w-c]")
    assert replica_line(DOWN) == "http://gw3: not acked: unreachable: ConnectError: refused"
    assert replica_line(ACKED).startswith("http://gw1: epoch 7: ACKED")


def test_line_progress_prints_only_changes() -> None:
    out = io.StringIO()
    progress = LineProgress(out)
    progress.show([PENDING, DOWN], 0.0)
    progress.show([PENDING, DOWN], 1.0)          # nothing changed: nothing printed
    now_acked = ReplicaReport("http://gw2", status=status(["w-a", "w-b", "w-c"], []))
    progress.show([now_acked, DOWN], 2.0)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("[   0.0s] http://gw2") and lines[1].startswith("[   0.0s] http://gw3")
    assert lines[2].startswith("[   2.0s] http://gw2: epoch 7: ACKED")


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_tty_progress_is_one_live_line_rewritten_in_place_and_clipped() -> None:
    out = FakeTty()
    progress = TtyProgress(out, MODEL, 60, width=lambda: 200)
    progress.show([PENDING, DOWN], 0.5)
    first = out.getvalue()
    assert "\n" not in first and "\x1b[" not in first   # one line, nothing to erase yet
    assert first == f"[0.5s/60s] {MODEL}: 0/2 acked: gw2 pending 1/3 | gw3 silent"
    progress.show([ACKED, DOWN], 1.0)
    second = out.getvalue()[len(first):]
    assert second.startswith("\r\x1b[K") and "\n" not in second
    assert second.endswith(f"[1.0s/60s] {MODEL}: 1/2 acked: gw1 acked | gw3 silent")
    progress.close()
    assert out.getvalue().endswith("\n")                 # the summary starts on its own line
    narrow = TtyProgress(FakeTty(), MODEL, 60, width=lambda: 30)
    narrow.show([PENDING, DOWN], 0.5)
    assert len(narrow.stream.getvalue()) == 29


def test_not_found_replica_is_named_so_on_the_live_line() -> None:
    missing = ReplicaReport("http://gw9", error="HTTP 404: model_not_found", kind="not_found")
    assert replica_state(missing) == "not found"


def test_progress_choice() -> None:
    assert isinstance(progress_for(FakeTty(), MODEL, 5, json_mode=False), TtyProgress)
    assert isinstance(progress_for(io.StringIO(), MODEL, 5, json_mode=False), LineProgress)
    assert not isinstance(progress_for(FakeTty(), MODEL, 5, json_mode=True),
                          (TtyProgress, LineProgress))


def test_timeout_summary_names_replicas_bundles_and_workers() -> None:
    lines = outcome_lines(MODEL, [ACKED, PENDING, NOT_SEEN], 60.04, timed_out=True)
    assert lines[0] == ("timed out after 60.0s waiting for org/model: "
                        "2 of 3 gateway replica(s) not acked")
    assert lines[1] == "  http://gw2 (epoch 7): bundle default: pending workers w-b, w-c (1/3 acked)"
    assert lines[2] == "  http://gw4: HTTP 404: model_not_found: Model 'org/model' not found"
    assert len(lines) == 3                     # the acked replica is not listed
    idle = ReplicaReport("g", status=status([], []))
    assert idle.reasons() == ["bundle default: no eligible worker has acked (0 eligible)"]


def test_success_summary_and_json() -> None:
    assert outcome_lines(MODEL, [ACKED], 2.0, timed_out=False) == [
        "all 1 gateway replica(s) acked org/model (epoch 7) after 2.0s"]
    assert outcome_lines(MODEL, [ACKED], None, timed_out=False) == [  # a single look: no time
        "all 1 gateway replica(s) acked org/model (epoch 7)"]
    doc = fleet_json(MODEL, [ACKED, DOWN], timed_out=True, elapsed=1.23456)
    assert doc["all_replicas_acked"] is False and doc["timed_out"] is True
    assert doc["elapsed_s"] == 1.235
    assert [r["acked"] for r in doc["replicas"]] == [True, False]
    assert doc["replicas"][0]["status"] == ACKED.status
    assert doc["replicas"][1]["error"] == DOWN.error
