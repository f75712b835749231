"""`sie`, the admin CLI, end to end: a real sie-config in-process on port 0 for writes and reads,
and small scripted fake gateways (the real one is not written yet) for `status --wait`.

The CLI is sync, so it runs in a worker thread (`trio.to_thread`) while the services keep
serving in the test's nursery. Fake gateways advance their script per poll, so the CLI's own
polling drives every test; nothing here sleeps to synchronise.
"""

from __future__ import annotations

import io
import json
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio
import yaml
from quart import Response, request
from quart_trio import QuartTrio

from sie_actors.http.app import serve_app
from sie_tools.admin.cli import main
from sie_tools.admin.keys import derive_idempotency_key
from tests.conftest import REPO
from tests.integration.inproc import start_config

MODEL_ID = "intfloat/multilingual-e5-base"
E5 = b"""sie_id: intfloat/multilingual-e5-base
hf_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
"""
UNROUTABLE = b"""sie_id: test/unroutable
profiles:
  default:
    adapter_path: sie_server.adapters.nope:NoSuchAdapter
    max_batch_tokens: 512
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


async def sie(*argv: str, env: dict[str, str] | None = None, stdin: bytes | None = None,
              tty: bool = False) -> Result:
    out, err = (TtyBuffer() if tty else io.StringIO()), io.StringIO()
    data = io.BytesIO(stdin) if stdin is not None else None
    code = await trio.to_thread.run_sync(
        lambda: main(list(argv), environ=env or {}, stdin=data, stdout=out, stderr=err))
    return Result(code, out.getvalue(), err.getvalue())


class TtyBuffer(io.StringIO):
    def isatty(self) -> bool:
        return True


# ---- fake gateway ------------------------------------------------------------------------------

def status_body(acked: list[str], pending: list[str], epoch: int = 1,
                model_id: str = MODEL_ID) -> dict:
    done = bool(acked) and not pending
    return {"model_id": model_id, "config_epoch": epoch, "all_bundles_acked": done,
            "no_bundles": False, "source": "gateway-registry",
            "bundles": [{"bundle_id": "default", "expected_bundle_config_hash": "ab" * 32,
                         "total_eligible_workers": len(acked) + len(pending),
                         "acked_workers": acked, "pending_workers": pending, "acked": done}]}


NOT_FOUND = (404, {"detail": {"error": "model_not_found", "message": "Model not found"}})


@dataclass
class FakeGateway:
    """Serves `/status` answers from a script, one per poll, repeating the last one."""

    script: list[tuple[int, dict]]
    models: tuple[int, dict] = (200, {"models": []})
    url: str = ""
    polls: list[str] = field(default_factory=list)
    auth: list[str | None] = field(default_factory=list)

    def app(self) -> QuartTrio:
        app = QuartTrio("fake-gateway")

        def answer(status: int, doc: dict) -> Response:
            return Response(json.dumps(doc), status=status, content_type="application/json")

        @app.get("/v1/configs/models")
        async def models() -> Response:
            return answer(*self.models)

        @app.get("/v1/configs/models/<path:rest>")
        async def model(rest: str) -> Response:
            if not rest.endswith("/status"):
                return answer(*NOT_FOUND)
            self.auth.append(request.headers.get("Authorization"))
            self.polls.append(rest[: -len("/status")])
            return answer(*self.script[min(len(self.polls), len(self.script)) - 1])

        return app


async def start_gateway(nursery: trio.Nursery, gateway: FakeGateway) -> FakeGateway:
    shutdown = trio.Event()
    urls = await nursery.start(serve_app, gateway.app(), "127.0.0.1", 0, shutdown)
    gateway.url = urls[0]
    return gateway


@pytest.fixture
def dead_url():
    """A bound but not listening port: connecting is refused, and nobody else can take it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.fixture
async def svc(nursery, tmp_path):
    return await start_config(nursery, SIE_CONFIG_STORE_DIR=str(tmp_path / "store"))


@pytest.fixture
def e5_file(tmp_path) -> Path:
    path = tmp_path / "e5.yaml"
    path.write_bytes(E5)
    return path


async def current_epoch(svc) -> int:
    async with svc.client() as c:
        return (await c.get("/v1/configs/epoch")).json()["epoch"]


# ---- models add --------------------------------------------------------------------------------

async def test_add_creates_then_replays_with_the_derived_key(svc, e5_file):
    key = derive_idempotency_key(E5)
    first = await sie("--config-url", svc.url, "models", "add", str(e5_file))
    assert first.code == 0, first.err
    assert first.out.splitlines()[0] == f"created {MODEL_ID}: profile(s) default  [HTTP 201]"
    assert "routable bundles for default: default" in first.out
    assert f"idempotency key: {key}" in first.out
    assert await current_epoch(svc) == 1
    # same file, same derived key: sie-config replays the first answer and writes nothing
    again = await sie("--config-url", svc.url, "models", "add", str(e5_file))
    assert (again.code, again.out) == (0, first.out)
    assert await current_epoch(svc) == 1
    # a different key reaches the registry, which finds nothing new: 200
    other = await sie("--config-url", svc.url, "models", "add", str(e5_file),
                      "--idempotency-key", "manual-1")
    assert other.code == 0
    assert other.out.splitlines()[0] == f"no change to {MODEL_ID}: all profiles already exist  [HTTP 200]"
    assert "skipped (already present): default" in other.out
    # the derived key really was sent: reusing it for other bytes is refused by sie-config
    mismatch = await sie("--config-url", svc.url, "models", "add", "-",
                         "--idempotency-key", key, stdin=E5 + b"\n")
    assert mismatch.code == 1
    assert mismatch.err == ("sie: sie-config answered 422: idempotency_mismatch: "
                            "Idempotency-Key reused with different payload.\n")


async def test_add_from_stdin_json(svc):
    result = await sie("--config-url", svc.url, "--json", "models", "add", "-", stdin=E5)
    assert result.code == 0
    assert json.loads(result.out) == {
        "model_id": MODEL_ID, "created_profiles": ["default"], "existing_profiles_skipped": [],
        "warnings": [], "routable_bundles_by_profile": {"default": ["default"]},
        "router_id": "standalone"}


async def test_add_bad_file_is_a_readable_refusal(svc, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(UNROUTABLE)
    result = await sie("--config-url", svc.url, "models", "add", str(bad))
    assert result.code == 1 and result.out == ""
    assert result.err.startswith("sie: sie-config answered 422: validation_error: ")
    assert "sie_server.adapters.nope" in result.err and len(result.err.splitlines()) == 1
    assert "Traceback" not in result.err
    assert "Known adapters, closest first: " in result.err and "`sie bundles list`" in result.err
    bad.write_bytes(b"sie_id: x\nprofiles:\n  default: [unclosed\n")
    parse = await sie("--config-url", svc.url, "models", "add", str(bad))
    assert parse.code == 1
    lines = parse.err.splitlines()
    assert lines[0] == f"sie: {bad} is not valid YAML:"  # the parser's lines, with the file name
    assert len(lines) > 2 and any(f'in "{bad}", line 3' in line for line in lines)
    assert "<unicode string>" not in parse.err
    assert await current_epoch(svc) == 0


async def test_add_prints_unknown_field_warnings_and_strict_refuses_them(svc, tmp_path):
    typo = tmp_path / "typo.yaml"
    typo.write_bytes(E5.replace(b"max_batch_tokens", b"max_batch_token"))
    strict = await sie("--config-url", svc.url, "models", "add", str(typo), "--strict")
    assert strict.code == 1
    assert strict.err.splitlines() == [
        f"sie: --strict: {typo} was not written, because of 1 warning(s):",
        "  unknown field 'max_batch_token' in profiles.default; did you mean 'max_batch_tokens'?"]
    assert await current_epoch(svc) == 0                       # nothing written
    clean = tmp_path / "clean.yaml"
    clean.write_bytes(E5)
    assert (await sie("--config-url", svc.url, "models", "add", str(clean), "--strict")).code == 0
    assert await current_epoch(svc) == 1
    other = tmp_path / "other.yaml"
    other.write_bytes(E5.replace(b"max_batch_tokens", b"max_batch_token")
                      .replace(MODEL_ID.encode(), b"org/typo"))
    loose = await sie("--config-url", svc.url, "models", "add", str(other))
    assert loose.code == 0                                     # accepted, but said out loud
    assert ("  warning: unknown field 'max_batch_token' in profiles.default; did you mean "
            "'max_batch_tokens'?") in loose.out.splitlines()


async def test_dry_run_writes_nothing(svc, e5_file):
    result = await sie("--config-url", svc.url, "models", "add", str(e5_file), "--dry-run")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == (
        f"dry run: {MODEL_ID} is valid; would create profile(s) default "
        "(nothing was written)  [HTTP 201]")
    assert "idempotency key" not in result.out
    assert await current_epoch(svc) == 0
    listed = await sie("--config-url", svc.url, "--json", "models", "list")
    assert MODEL_ID not in [m["model_id"] for m in json.loads(listed.out)["models"]]


async def test_admin_token_for_writes_and_export_read_token_for_reads(nursery, tmp_path, e5_file):
    svc = await start_config(nursery, SIE_ADMIN_TOKEN="adm", SIE_AUTH_TOKEN="rd")
    missing = await sie("--config-url", svc.url, "models", "add", str(e5_file))
    assert (missing.code, missing.err) == (1, "sie: sie-config answered 401: Missing "
                                           "Authorization header (pass --token or set "
                                           "SIE_ADMIN_TOKEN)\n")
    # the read token is never sent where the admin token is required
    only_read = await sie("--config-url", svc.url, "export", env={"SIE_AUTH_TOKEN": "rd"})
    assert only_read.code == 1 and "answered 401: Missing Authorization header" in only_read.err
    wrong = await sie("--config-url", svc.url, "--token", "rd", "export")
    assert wrong.code == 1 and "answered 403: Admin token required" in wrong.err
    unauth_read = await sie("--config-url", svc.url, "epoch")
    assert unauth_read.code == 1 and "(set SIE_AUTH_TOKEN" in unauth_read.err
    added = await sie("--config-url", svc.url, "models", "add", str(e5_file),
                      env={"SIE_ADMIN_TOKEN": "adm"})
    assert added.code == 0, added.err
    read = await sie("--config-url", svc.url, "epoch", env={"SIE_AUTH_TOKEN": "rd"})
    assert read.code == 0 and read.out.startswith("epoch 1 ")
    exported = await sie("--config-url", svc.url, "--token", "adm", "export")
    assert exported.code == 0 and json.loads(exported.out)["epoch"] == 1


# ---- reads ---------------------------------------------------------------------------------------

async def test_list_get_resolve_bundles_epoch_export(svc, e5_file, tmp_path):
    base = ("--config-url", svc.url)
    assert (await sie(*base, "models", "add", str(e5_file))).code == 0

    listed = await sie(*base, "models", "list")
    assert listed.code == 0 and listed.out.split()[:3] == ["MODEL", "PROFILES", "SOURCE"]
    row = next(line for line in listed.out.splitlines() if line.startswith(MODEL_ID))
    assert row.split() == [MODEL_ID, "default", "api"]
    assert "BAAI/bge-m3" in listed.out

    got = await sie(*base, "models", "get", MODEL_ID)
    assert got.code == 0 and yaml.safe_load(got.out)["sie_id"] == MODEL_ID
    got_json = await sie(*base, "--json", "models", "get", MODEL_ID)
    assert json.loads(got_json.out)["profiles"]["default"]["max_batch_tokens"] == 8192
    missing = await sie(*base, "models", "get", "test/absent")
    assert missing.code == 1 and missing.err.startswith("sie: sie-config answered 404: model_not_found")

    resolved = await sie(*base, "resolve", MODEL_ID)
    assert resolved.code == 0
    assert resolved.out.splitlines()[0] == f"{MODEL_ID} -> bundle default"
    explicit = await sie(*base, "--json", "resolve", f"default:/{MODEL_ID}")
    assert json.loads(explicit.out)["resolved_bundle"] == "default"
    conflict = await sie(*base, "resolve", MODEL_ID, "--bundle", "sglang")
    assert conflict.code == 1 and "answered 4" in conflict.err

    bundles = await sie(*base, "bundles", "list")
    assert bundles.code == 0 and bundles.out.split()[:4] == ["BUNDLE", "PRIORITY", "ADAPTERS", "SOURCE"]
    assert {line.split()[0] for line in bundles.out.splitlines()[1:]} == \
        {p.stem for p in (REPO / "bundles").glob("*.yaml")}

    epoch = await sie(*base, "--json", "epoch")
    doc = json.loads(epoch.out)
    assert doc["epoch"] == 1 and set(doc) == {"epoch", "bundles_hash", "generation",
                                              "bundle_config_hashes"}
    human = await sie(*base, "epoch")
    assert human.out.splitlines()[1] == f"  bundles_hash: {doc['bundles_hash']}"

    target = tmp_path / "backup" / "export.json"
    exported = await sie(*base, "export", "--output", str(target))
    assert exported.code == 0
    snapshot = json.loads(target.read_bytes())
    assert MODEL_ID in [m["model_id"] for m in snapshot["models"]]
    assert exported.out == (f"exported {len(snapshot['models'])} model(s) at epoch 1 "
                            f"to {target}\n")


async def test_list_prefers_the_first_gateway_and_shows_its_errors(nursery, svc, dead_url):
    gw = await start_gateway(nursery, FakeGateway(
        script=[(200, {})], models=(200, {"models": [{"model_id": "gw/only", "profiles": ["p"],
                                                      "source": "gateway-registry"}]})))
    listed = await sie("--config-url", dead_url, "--gateway-url", gw.url, "models", "list")
    assert listed.code == 0 and listed.out.splitlines()[1].split() == ["gw/only", "p",
                                                                        "gateway-registry"]
    from_config = await sie("--config-url", svc.url, "--gateway-url", gw.url,
                            "models", "list", "--from", "config")
    assert "gw/only" not in from_config.out and "BAAI/bge-m3" in from_config.out
    gw.models = (500, {"detail": {"error": "internal_error", "message": "Unexpected KeyError"}})
    failed = await sie("--gateway-url", gw.url, "models", "list")
    assert failed.code == 4
    assert failed.err == "sie: gateway answered 500: internal_error: Unexpected KeyError\n"


# ---- status --------------------------------------------------------------------------------------

async def test_status_wait_succeeds_after_pending_polls(nursery):
    slow = await start_gateway(nursery, FakeGateway(script=[
        NOT_FOUND,                                          # has not mirrored the model yet
        (200, status_body(["w-a"], ["w-b"])),
        (200, status_body(["w-a", "w-b"], [], epoch=2))]))
    fast = await start_gateway(nursery, FakeGateway(script=[(200, status_body(["w-c"], []))]))
    result = await sie("--gateway-url", slow.url, "--gateway-url", fast.url,
                       "models", "status", MODEL_ID, "--wait", "--interval", "0.05",
                       env={"SIE_AUTH_TOKEN": "rd"})
    assert result.code == 0, result.out + result.err
    assert len(slow.polls) == 3 and len(fast.polls) == 3      # stops as soon as all are acked
    assert slow.polls[0] == MODEL_ID and slow.auth[0] == "Bearer rd"
    lines = result.out.splitlines()
    assert f"{slow.url}: not acked: HTTP 404: model_not_found: Model not found" in lines[0]
    assert any(f"{slow.url}: epoch 1: not acked: default pending 1/2 acked [w-a] pending [w-b]"
               in line for line in lines)
    assert lines[-1].startswith(f"all 2 gateway replica(s) acked {MODEL_ID} (epoch 1, 2) after ")


async def test_status_wait_timeout_names_the_pending_worker(nursery):
    stuck = await start_gateway(nursery, FakeGateway(
        script=[(200, status_body(["w-a"], ["w-stuck"], epoch=5))]))
    result = await sie("--gateway-url", stuck.url, "models", "status", MODEL_ID, "--wait",
                       "--timeout", "0.4", "--interval", "0.05")
    assert result.code == 2
    assert len(stuck.polls) >= 2
    summary = result.out.splitlines()[-2:]
    assert summary[0].startswith("timed out after 0.")
    assert summary[0].endswith(f"waiting for {MODEL_ID}: 1 of 1 gateway replica(s) not acked")
    assert summary[1] == (f"  {stuck.url} (epoch 5): bundle default: pending workers "
                          "w-stuck (1/2 acked)")


async def test_down_gateway_is_shown_as_not_acked(nursery, dead_url):
    ok = await start_gateway(nursery, FakeGateway(script=[(200, status_body(["w-a"], []))]))
    once = await sie("--gateway-url", ok.url, "--gateway-url", dead_url,
                     "models", "status", MODEL_ID)
    assert once.code == 1
    row = next(line for line in once.out.splitlines() if line.startswith(dead_url))
    assert "ERROR" in row and "unreachable: ConnectError" in row
    assert f"{MODEL_ID} is not ready: 1 of 2 gateway replica(s) not acked" in once.out
    waited = await sie("--gateway-url", ok.url, "--gateway-url", dead_url, "--json",
                       "models", "status", MODEL_ID, "--wait", "--timeout", "0.3",
                       "--interval", "0.05")
    assert waited.code == 2
    doc = json.loads(waited.out)                 # --json: one document, no progress lines
    assert doc["timed_out"] is True and doc["all_replicas_acked"] is False
    assert [r["acked"] for r in doc["replicas"]] == [True, False]
    assert doc["replicas"][1]["error"].startswith("unreachable: ConnectError")


async def test_status_single_round_all_acked(nursery):
    gw = await start_gateway(nursery, FakeGateway(script=[(200, status_body(["w-a"], []))]))
    result = await sie("--gateway-url", gw.url, "models", "status", MODEL_ID)
    assert result.code == 0 and len(gw.polls) == 1
    assert result.out.splitlines()[-1].startswith(f"all 1 gateway replica(s) acked {MODEL_ID}")


async def test_status_wait_shows_one_live_line_on_a_tty(nursery, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough not to clip the line
    gw = await start_gateway(nursery, FakeGateway(script=[
        (200, status_body([], ["w-a"])), (200, status_body(["w-a"], []))]))
    result = await sie("--gateway-url", gw.url, "models", "status", MODEL_ID, "--wait",
                       "--interval", "0.05", tty=True)
    assert result.code == 0
    live, summary = result.out.rsplit("\n", 2)[:2]
    host = gw.url.split("://")[1]
    first, second = live.split("\r\x1b[K")
    assert first.startswith("[0.") and first.endswith(f"] {MODEL_ID}: 0/1 acked: {host} pending 0/1")
    assert second.endswith(f"] {MODEL_ID}: 1/1 acked: {host} acked")
    assert summary.startswith(f"all 1 gateway replica(s) acked {MODEL_ID} (epoch 1) after ")


async def test_status_of_a_missing_model_is_reported_once_with_exit_5(nursery, svc):
    gws = [await start_gateway(nursery, FakeGateway(script=[NOT_FOUND])) for _ in range(2)]
    argv = ["--config-url", svc.url, "--gateway-url", gws[0].url, "--gateway-url", gws[1].url,
            "models", "status", "no/such-model"]
    once = await sie(*argv)
    assert once.code == 5
    assert once.err == ("sie: model 'no/such-model' does not exist: 2 of 2 gateway replica(s) "
                        "and sie-config answered 404 (see `sie models list`)\n")
    waited = await sie(*argv, "--wait", "--timeout", "30", "--interval", "0.05")
    assert waited.code == 5 and waited.err == once.err
    assert once.out == "" and waited.out == ""                 # said once, on stderr only
    assert [len(g.polls) for g in gws] == [2, 2]               # one round each: no 404 polling
    assert gws[0].polls == ["no/such-model", "no/such-model"]


async def test_status_keeps_waiting_while_sie_config_has_the_model(nursery, svc, e5_file):
    assert (await sie("--config-url", svc.url, "models", "add", str(e5_file))).code == 0
    gw = await start_gateway(nursery, FakeGateway(script=[
        NOT_FOUND, NOT_FOUND, (200, status_body(["w-a"], []))]))
    result = await sie("--config-url", svc.url, "--gateway-url", gw.url, "models", "status",
                       MODEL_ID, "--wait", "--interval", "0.05")
    assert result.code == 0, result.err
    assert len(gw.polls) == 3


async def test_status_with_every_gateway_unreachable_exits_3(dead_url):
    once = await sie("--gateway-url", dead_url, "models", "status", "x/y")
    assert once.code == 3
    assert once.err.splitlines()[-1] == f"sie: no gateway replica could be reached ({dead_url})"
    waited = await sie("--gateway-url", dead_url, "models", "status", "x/y", "--wait",
                       "--timeout", "0.3", "--interval", "0.05")
    assert waited.code == 3


async def test_single_status_round_prints_no_elapsed_time(nursery):
    gw = await start_gateway(nursery, FakeGateway(script=[(200, status_body(["w-a"], []))]))
    result = await sie("--gateway-url", gw.url, "models", "status", MODEL_ID)
    assert result.code == 0
    assert result.out.splitlines()[-1] == f"all 1 gateway replica(s) acked {MODEL_ID} (epoch 1)"
    assert "0.0s" not in result.out


def test_subcommand_help_does_not_repeat_the_global_block(capsys):
    assert main(["--help"]) == 0
    top = capsys.readouterr().out
    assert "SIE_GATEWAY_URLS" in top and "--request-timeout" in top
    for argv in (["models", "add"], ["models", "status"], ["models", "list"], ["resolve"],
                 ["bundles", "list"], ["export"], ["epoch"]):
        assert main([*argv, "--help"]) == 0
        text = capsys.readouterr().out
        assert "SIE_GATEWAY_URLS" not in text and "environment:" not in text, argv
        assert "--request-timeout S" not in text, argv
        assert "described in `sie --help`" in text, argv
    assert main(["models", "status", "--help"]) == 0
    assert "5  no such model" in capsys.readouterr().out


async def test_add_wait_follows_the_write_to_every_replica(nursery, svc, e5_file):
    gw = await start_gateway(nursery, FakeGateway(script=[
        NOT_FOUND, (200, status_body(["w-a"], [], epoch=1))]))
    result = await sie("--config-url", svc.url, "--gateway-url", gw.url, "--json",
                       "models", "add", str(e5_file), "--wait", "--interval", "0.05")
    assert result.code == 0, result.err
    doc = json.loads(result.out)
    assert doc["add"]["created_profiles"] == ["default"]
    assert doc["status"]["all_replicas_acked"] is True and gw.polls == [MODEL_ID, MODEL_ID]


# ---- unreachable, and the real entry point -----------------------------------------------------

async def test_unreachable_config_exits_3(dead_url, e5_file):
    for argv in (("epoch",), ("models", "add", str(e5_file)), ("models", "list")):
        result = await sie("--config-url", dead_url, *argv)
        assert result.code == 3, argv
        assert result.err.startswith(f"sie: cannot reach sie-config at {dead_url}: ConnectError")
        assert len(result.err.splitlines()) == 1


async def test_subprocess_entry_point(svc, dead_url, e5_file):
    env = {"PATH": "/usr/bin:/bin", "SIE_CONFIG_URL": svc.url}
    added = await trio.run_process(
        [sys.executable, "-m", "sie_tools.admin", "models", "add", str(e5_file)],
        capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert added.returncode == 0, added.stderr
    assert added.stdout.decode().startswith(f"created {MODEL_ID}")
    epoch = await trio.run_process([sys.executable, "-m", "sie_tools.admin", "epoch", "--json"],
                                   capture_stdout=True, check=False, env=env)
    assert epoch.returncode == 0 and json.loads(epoch.stdout)["epoch"] == 1
    down = await trio.run_process(
        [sys.executable, "-m", "sie_tools.admin", "--config-url", dead_url, "epoch"],
        capture_stdout=True, capture_stderr=True, check=False, env=env)
    assert down.returncode == 3 and b"Traceback" not in down.stderr
    assert down.stderr.decode().startswith(f"sie: cannot reach sie-config at {dead_url}")
