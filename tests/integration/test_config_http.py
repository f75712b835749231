"""sie-config's HTTP contract, over real HTTP against the real service (in-process, port 0)."""

from __future__ import annotations

import pytest
import yaml

from tests.integration.inproc import start_config

SEED_EXAMPLE = b"""
sie_id: intfloat/multilingual-e5-base
hf_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
    adapter_options:
      loadtime: {}
      runtime:
        pooling: mean
        normalize: true
"""

APPEND = b"""
sie_id: intfloat/multilingual-e5-base
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_tokens: 8192
    adapter_options:
      loadtime: {}
      runtime:
        pooling: mean
        normalize: true
  medical:
    extends: default
    adapter_options:
      runtime:
        instruction: "Retrieve medical literature"
"""


def model(model_id: str, profile: str = "default", tokens: int = 512,
          adapter: str = "sie_server.adapters.sentence_transformer:SentenceTransformerAdapter",
          **top) -> bytes:
    doc = {"sie_id": model_id, **top,
           "profiles": {profile: {"adapter_path": adapter, "max_batch_tokens": tokens}}}
    return yaml.safe_dump(doc).encode()


@pytest.fixture
async def svc(nursery, tmp_path):
    return await start_config(nursery, SIE_CONFIG_STORE_DIR=str(tmp_path / "store"))


async def test_health_ready_metrics(svc):
    async with svc.client() as c:
        assert (await c.get("/healthz")).json() == {"status": "ok"}
        assert (await c.get("/readyz")).json() == {"status": "ready"}
        metrics = await c.get("/metrics")
        assert metrics.status_code == 200
        assert "sie_config_epoch" in metrics.text
        assert 'sie_config_http_requests_total{method="GET",path="/readyz",status="200"}' \
            in metrics.text


async def test_seed_example_verbatim(svc):
    async with svc.client() as c:
        r = await c.post("/v1/configs/models", content=SEED_EXAMPLE,
                         headers={"Content-Type": "application/x-yaml",
                                  "Idempotency-Key": "add-e5-base-001"})
        assert r.status_code == 201, r.text
        assert r.json() == {
            "model_id": "intfloat/multilingual-e5-base", "created_profiles": ["default"],
            "existing_profiles_skipped": [], "warnings": [],
            "routable_bundles_by_profile": {"default": ["default"]}, "router_id": "standalone"}
        # idempotent replay: same status, same bytes, no new epoch
        epoch = (await c.get("/v1/configs/epoch")).json()["epoch"]
        again = await c.post("/v1/configs/models", content=SEED_EXAMPLE,
                             headers={"Idempotency-Key": "add-e5-base-001"})
        assert (again.status_code, again.content) == (201, r.content)
        assert (await c.get("/v1/configs/epoch")).json()["epoch"] == epoch
        mismatch = await c.post("/v1/configs/models", content=SEED_EXAMPLE + b"\n",
                                headers={"Idempotency-Key": "add-e5-base-001"})
        assert mismatch.status_code == 422
        assert mismatch.json()["detail"]["error"] == "idempotency_mismatch"
        # same body without a key: nothing new, 200
        replay = await c.post("/v1/configs/models", content=SEED_EXAMPLE)
        assert replay.status_code == 200
        assert replay.json()["created_profiles"] == []
        assert replay.json()["existing_profiles_skipped"] == ["default"]
        # profile append
        appended = await c.post("/v1/configs/models", content=APPEND)
        assert appended.status_code == 201
        assert appended.json()["created_profiles"] == ["medical"]
        assert appended.json()["existing_profiles_skipped"] == ["default"]
        listed = (await c.get("/v1/configs/models")).json()["models"]
        e5 = [m for m in listed if m["model_id"] == "intfloat/multilingual-e5-base"]
        assert e5 == [{"model_id": "intfloat/multilingual-e5-base",
                       "profiles": ["default", "medical"], "source": "api"}]
        assert (await c.get("/v1/configs/epoch")).json()["epoch"] == epoch + 1


async def test_epoch_generation_and_export(svc):
    async with svc.client() as c:
        first = (await c.get("/v1/configs/epoch")).json()
        assert first["epoch"] == 0 and len(first["bundles_hash"]) == 64 and first["generation"]
        for i in range(3):
            r = await c.post("/v1/configs/models", content=model(f"test/epoch-{i}"))
            assert r.status_code == 201
        after = (await c.get("/v1/configs/epoch")).json()
        assert after["epoch"] == 3 and after["generation"] == first["generation"]
        export = (await c.get("/v1/configs/export")).json()
        assert export["snapshot_version"] == 1 and export["epoch"] == 3
        ids = [m["model_id"] for m in export["models"]]
        assert ids == sorted(ids) and "test/epoch-2" in ids
        entry = next(m for m in export["models"] if m["model_id"] == "test/epoch-1")
        assert entry["affected_bundles"] == ["default"]
        assert entry["model_config"]["profiles"]["default"]["max_batch_tokens"] == 512
        assert yaml.safe_load(entry["raw_yaml"]) == entry["model_config"]
        scoped = (await c.get("/v1/configs/bundles/default/export")).json()
        assert scoped["bundle"]["name"] == "default"
        assert scoped["bundle_config_hash"] == after["bundle_config_hashes"]["default"]
        assert "test/epoch-1" in [m["model_id"] for m in scoped["models"]]


async def test_dry_run_changes_nothing(svc):
    async with svc.client() as c:
        r = await c.post("/v1/configs/models?dry_run=true", content=model("test/dry"))
        assert r.status_code == 201 and r.json()["dry_run"] is True
        assert r.json()["created_profiles"] == ["default"]
        assert (await c.get("/v1/configs/models/test/dry")).status_code == 404
        assert (await c.get("/v1/configs/epoch")).json()["epoch"] == 0
        bad = await c.post("/v1/configs/models?dry_run=true",
                           content=model("test/dry", adapter="nowhere.module:X"))
        assert bad.status_code == 422


@pytest.mark.parametrize("body, status, code", [
    (b"sie_id: [unclosed", 400, "parse_error"),
    (b"- a list", 400, "parse_error"),
    (b"", 400, "parse_error"),
    (b"\xff\xfe not utf-8", 400, "parse_error"),
    (b"sie_id: 123\nprofiles: {default: {adapter_path: a:b}}", 400, "invalid_model_id"),
    (b"sie_id: [a, b]\nprofiles: {}", 400, "invalid_model_id"),
    (b"sie_id: org__model\nprofiles: {default: {adapter_path: sie_server.adapters.sentence_transformer:X}}",
     400, "invalid_model_id"),
    (b"sie_id: bad id\nprofiles: {}", 400, "invalid_model_id"),
    (b"sie_id: a/status\nprofiles: {}", 400, "invalid_model_id"),
    (b"sie_id: x/y\nprofiles: {default: {adapter_path: 5}}", 422, "validation_error"),
    (b"sie_id: x/y\nprofiles: {default: {adapter_path: nowhere:X}}", 422, "validation_error"),
    (b"sie_id: x/y", 422, "validation_error"),
    (b"sie_id: x/y\nprofiles: [1, 2]", 422, "validation_error"),
    (b"profiles: {default: {adapter_path: sie_server.adapters.sentence_transformer:X}}", 422,
     "validation_error"),
])
async def test_bad_writes_get_4xx(svc, body, status, code):
    async with svc.client() as c:
        r = await c.post("/v1/configs/models", content=body)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert detail["error"] == code
        assert detail.get("message") or detail.get("details")
        assert (await c.get("/v1/configs/epoch")).json()["epoch"] == 0


async def test_payload_too_large(svc):
    async with svc.client() as c:
        r = await c.post("/v1/configs/models", content=b"#" * (1_048_576 + 1))
        assert r.status_code == 413
        assert r.json()["detail"]["error"] == "payload_too_large"
        exactly = await c.post("/v1/configs/models", content=b"#" * 1_048_576)
        assert exactly.status_code == 400  # allowed through the size check; a comment is no mapping


async def test_conflicts_and_case_insensitive_append(svc):
    async with svc.client() as c:
        assert (await c.post("/v1/configs/models",
                             content=model("Org/Model", description="one"))).status_code == 201
        # same canonical fields, other max_batch_tokens -> 422 append-only
        r = await c.post("/v1/configs/models", content=model("Org/Model", tokens=1))
        assert r.status_code == 422
        assert "append-only" in r.json()["detail"]["details"][0]["message"]
        # creating a profile while changing a top-level field -> 409 conflicting_fields
        r = await c.post("/v1/configs/models",
                         content=model("Org/Model", profile="p2", description="two"))
        assert r.status_code == 409
        assert r.json()["detail"]["conflicting_fields"] == ["description"]
        # the append path is case-insensitive: no twin is created
        r = await c.post("/v1/configs/models", content=model("ORG/model", profile="p3"))
        assert r.status_code == 201 and r.json()["model_id"] == "Org/Model"
        ids = [m["model_id"] for m in (await c.get("/v1/configs/models")).json()["models"]]
        assert ids.count("Org/Model") == 1 and "ORG/model" not in ids
        got = await c.get("/v1/configs/models/org/model")
        assert got.status_code == 200
        assert set(yaml.safe_load(got.text)["profiles"]) == {"default", "p3"}


async def test_append_to_filesystem_model_keeps_its_profiles(svc):
    async with svc.client() as c:
        before = yaml.safe_load((await c.get("/v1/configs/models/BAAI/bge-m3")).text)
        extra = {"sie_id": "BAAI/bge-m3", "profiles": {"api-extra": {
            "adapter_path": before["profiles"]["default"]["adapter_path"],
            "max_batch_tokens": 1024}}}
        r = await c.post("/v1/configs/models", content=yaml.safe_dump(extra).encode())
        assert r.status_code == 201, r.text
        after = yaml.safe_load((await c.get("/v1/configs/models/BAAI/bge-m3")).text)
        assert set(after["profiles"]) == set(before["profiles"]) | {"api-extra"}
        export = (await c.get("/v1/configs/export")).json()
        exported = next(m for m in export["models"] if m["model_id"] == "BAAI/bge-m3")
        assert set(exported["model_config"]["profiles"]) == set(after["profiles"])


async def test_reads_models_bundles_resolve(svc):
    async with svc.client() as c:
        models = (await c.get("/v1/configs/models")).json()["models"]
        ids = [m["model_id"] for m in models]
        assert ids == sorted(ids) and "BAAI/bge-m3" in ids
        assert all(m["source"] == "filesystem" for m in models)
        r = await c.get("/v1/configs/models/BAAI/bge-m3")
        assert r.headers["content-type"].startswith("application/x-yaml")
        assert yaml.safe_load(r.text)["sie_id"] == "BAAI/bge-m3"
        missing = await c.get("/v1/configs/models/nope/nothing")
        assert missing.status_code == 404
        assert missing.json()["detail"]["error"] == "model_not_found"
        assert missing.json()["detail"]["message"]
        assert (await c.get("/v1/configs/models/x/status")).status_code == 400
        bundles = (await c.get("/v1/configs/bundles")).json()["bundles"]
        priorities = [b["priority"] for b in bundles]
        assert priorities == sorted(priorities) and len(bundles) >= 2
        b = await c.get("/v1/configs/bundles/default")
        assert yaml.safe_load(b.text)["name"] == "default"
        nob = await c.get("/v1/configs/bundles/DEFAULT")
        assert nob.status_code == 404 and nob.json()["detail"]["error"] == "bundle_not_found"
        res = await c.post("/v1/configs/resolve", json={"model": "BAAI/bge-m3"})
        assert res.status_code == 200
        assert res.json()["resolved_bundle"] == "default"
        assert res.json()["profiles"] == sorted(res.json()["profiles"])
        spec = await c.post("/v1/configs/resolve", json={"model": "DEFAULT:/baai/bge-m3"})
        assert spec.status_code == 200 and spec.json()["resolved_bundle"] == "default"
        assert spec.json()["profiles"] == res.json()["profiles"]
        conflict = await c.post("/v1/configs/resolve",
                                json={"model": "BAAI/bge-m3", "bundle": "sglang"})
        assert conflict.status_code == 409
        assert conflict.json()["detail"]["error"] == "bundle_conflict"


@pytest.mark.parametrize("content, status, code", [
    (b"[1]", 400, None),
    (b'{"model": 5}', 400, None),
    (b"not json", 400, "parse_error"),
    (b"\xff", 400, "parse_error"),
    (b"", 400, "missing_field"),
    (b'{"model": "   "}', 400, "invalid_model_spec"),
    (b'{"model": ":/x"}', 400, "invalid_model_spec"),
    (b'{"model": "default:/"}', 400, "invalid_model_spec"),
    (b'{"model": "no/such-model"}', 404, "model_not_found"),
])
async def test_resolve_bad_input(svc, content, status, code):
    async with svc.client() as c:
        r = await c.post("/v1/configs/resolve", content=content)
        assert r.status_code == status, r.text
        detail = r.json()["detail"]
        assert detail["message"]
        if code:
            assert detail["error"] == code


AUTH_CASES = [
    # env, header token, read status, write status
    ({}, None, 200, 201),
    ({"SIE_AUTH_TOKEN": "rd"}, None, 401, 403),
    ({"SIE_AUTH_TOKEN": "rd"}, "rd", 200, 403),
    ({"SIE_ADMIN_TOKEN": "adm"}, None, 401, 401),
    ({"SIE_ADMIN_TOKEN": "adm"}, "adm", 200, 201),
    ({"SIE_ADMIN_TOKEN": "adm"}, "rd", 403, 403),
    ({"SIE_AUTH_TOKEN": "rd", "SIE_ADMIN_TOKEN": "adm"}, "rd", 200, 403),
    ({"SIE_AUTH_TOKEN": "rd", "SIE_ADMIN_TOKEN": "adm"}, "adm", 200, 201),
    ({"SIE_AUTH_TOKEN": "rd", "SIE_ADMIN_TOKEN": "adm"}, "wrong", 403, 403),
    ({"SIE_AUTH_TOKEN": ""}, None, 200, 201),  # empty counts as unset (CONTRACT §2 item 15)
]


@pytest.mark.parametrize("env, token, read_status, write_status", AUTH_CASES)
async def test_auth_matrix(nursery, env, token, read_status, write_status):
    svc = await start_config(nursery, **env)
    async with svc.client(token) as c:
        assert (await c.get("/v1/configs/models")).status_code == read_status
        assert (await c.get("/v1/configs/epoch")).status_code == read_status
        w = await c.post("/v1/configs/models", content=model("auth/model"))
        assert w.status_code == write_status, w.text
        if write_status in (401, 403):
            assert isinstance(w.json()["detail"], str)
        ex = await c.get("/v1/configs/export")
        assert ex.status_code == (200 if write_status == 201 else write_status)
        assert (await c.get("/healthz")).status_code == 200
    await svc.stop()


async def test_unknown_route_and_method(svc):
    async with svc.client() as c:
        assert (await c.get("/nope")).status_code == 404
        r = await c.delete("/v1/configs/models/BAAI/bge-m3")
        assert r.status_code == 405 and r.json() == {"detail": "Method Not Allowed"}


async def test_idempotency_survives_restart(nursery, tmp_path):
    store = str(tmp_path / "store")
    svc = await start_config(nursery, SIE_CONFIG_STORE_DIR=store, SIE_CONFIG_RESTORE="true")
    async with svc.client() as c:
        first = await c.post("/v1/configs/models", content=model("keep/key"),
                             headers={"Idempotency-Key": "k-1"})
        assert first.status_code == 201
    await svc.stop()
    again = await start_config(nursery, SIE_CONFIG_STORE_DIR=store, SIE_CONFIG_RESTORE="true")
    async with again.client() as c:
        replay = await c.post("/v1/configs/models", content=model("keep/key"),
                              headers={"Idempotency-Key": "k-1"})
        assert (replay.status_code, replay.content) == (201, first.content)
        assert (await c.get("/v1/configs/epoch")).json()["epoch"] == 1
        listed = (await c.get("/v1/configs/models")).json()["models"]
        assert {"model_id": "keep/key", "profiles": ["default"], "source": "api"} in listed


async def test_store_failure_is_503_and_changes_nothing(nursery, tmp_path):
    store = tmp_path / "store"
    svc = await start_config(nursery, SIE_CONFIG_STORE_DIR=str(store))
    async with svc.client() as c:
        assert (await c.post("/v1/configs/models", content=model("ok/one"))).status_code == 201
        models_dir = store / "models"
        # Make the models directory unusable in a way that also stops root: replace it by a file.
        moved = store / "models.away"
        models_dir.rename(moved)
        models_dir.write_text("not a directory")
        r = await c.post("/v1/configs/models", content=model("fails/two"))
        assert r.status_code == 503, r.text
        assert r.json()["detail"]["error"] == "store_unavailable"
        assert (await c.get("/v1/configs/models/fails/two")).status_code == 404
        assert (await c.get("/v1/configs/models")).status_code == 200
        epoch_during = (await c.get("/v1/configs/epoch")).json()["epoch"]
        assert epoch_during == 1
        models_dir.unlink()
        moved.rename(models_dir)
        r = await c.post("/v1/configs/models", content=model("fails/two"))
        assert r.status_code == 201
        # The failed commit may have left epoch 2 in the store: it is never reused.
        assert (await c.get("/v1/configs/epoch")).json()["epoch"] == 3


async def test_idempotent_waiter_gets_the_real_failure(nursery, tmp_path):
    """Two requests with one key, the first fails: the queued one must not report success."""
    import trio
    store = tmp_path / "store"
    svc = await start_config(nursery, SIE_CONFIG_STORE_DIR=str(store))
    models_dir = store / "models"
    models_dir.rename(store / "away")
    models_dir.write_text("blocked")
    results = []
    async with svc.client() as c:
        async def send():
            results.append(await c.post("/v1/configs/models", content=model("wait/one"),
                                        headers={"Idempotency-Key": "same"}))
        async with trio.open_nursery() as n:
            for _ in range(4):
                n.start_soon(send)
        assert [r.status_code for r in results] == [503] * 4
        assert all(r.json()["detail"]["error"] == "store_unavailable" for r in results)
        models_dir.unlink()
        (store / "away").rename(models_dir)
        retry = await c.post("/v1/configs/models", content=model("wait/one"),
                             headers={"Idempotency-Key": "same"})
        assert retry.status_code == 201


# ---- issue 14: warnings, audit of refusals, metric names, server logger -----------------------

async def test_unknown_fields_are_accepted_and_named_in_warnings(svc):
    body = b"""
sie_id: typo/model
hf_idd: typo/model
profiles:
  default:
    adapter_path: sie_server.adapters.sentence_transformer:SentenceTransformerAdapter
    max_batch_token: 8192
"""
    async with svc.client() as c:
        dry = await c.post("/v1/configs/models", params={"dry_run": "true"}, content=body)
        assert dry.status_code == 201
        r = await c.post("/v1/configs/models", content=body)
        assert r.status_code == 201, r.text
        expected = [
            "unknown field 'hf_idd' at the top level; did you mean 'hf_id'?",
            "unknown field 'max_batch_token' in profiles.default; did you mean 'max_batch_tokens'?",
        ]
        assert dry.json()["warnings"] == expected
        assert r.json()["warnings"] == expected
        stored = yaml.safe_load((await c.get("/v1/configs/models/typo/model")).text)
        assert stored["profiles"]["default"]["max_batch_token"] == 8192  # kept, not dropped


def audit_lines(caplog) -> list[dict]:
    import json
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "sie.audit"]


async def test_refused_writes_are_audited_without_body_or_token(nursery, caplog):
    caplog.set_level("INFO", logger="sie.audit")
    svc = await start_config(nursery, SIE_ADMIN_TOKEN="adm-secret", SIE_AUTH_TOKEN="rd-secret")
    async with svc.client() as anonymous:
        assert (await anonymous.post("/v1/configs/models", content=model("a/b"))).status_code == 401
    async with svc.client("rd-secret") as reader:
        assert (await reader.post("/v1/configs/models", content=model("a/b"))).status_code == 403
    async with svc.client("adm-secret") as admin:
        assert (await admin.post("/v1/configs/models", content=b"sie_id: [")).status_code == 400
        bad = model("refused/model", adapter="my_pkg.adapters:X")
        assert (await admin.post("/v1/configs/models", content=bad)).status_code == 422
        big = await admin.post("/v1/configs/models", content=b"#" * (1_048_576 + 1))
        assert big.status_code == 413
        assert (await admin.post("/v1/configs/models", content=model("ok/model"))).status_code == 201
    lines = audit_lines(caplog)
    summary = [(l["status"], l.get("error"), l["token"], l.get("model")) for l in lines]
    assert summary == [
        (401, "unauthorized", "none", None),
        (403, "forbidden", "read", None),
        (400, "parse_error", "admin", None),
        (422, "validation_error", "admin", "refused/model"),
        (413, "payload_too_large", "admin", None),
        (201, None, "admin", "ok/model"),
    ]
    assert [l["event"] for l in lines] == ["config.add_model.refused"] * 5 + ["config.add_model"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "adm-secret" not in text and "rd-secret" not in text
    assert "my_pkg" not in text  # the body is never logged
    await svc.stop()


async def test_models_gauge_is_named_without_total_and_old_name_is_deprecated(svc):
    async with svc.client() as c:
        assert (await c.post("/v1/configs/models", content=model("gauge/model"))).status_code == 201
        text = (await c.get("/metrics")).text
    assert "# TYPE sie_config_models gauge" in text
    assert 'sie_config_models{source="api"} 1.0' in text
    assert 'sie_config_models_total{source="api"} 1.0' in text
    assert "# HELP sie_config_models_total DEPRECATED, use sie_config_models" in text


async def test_server_start_up_is_logged_under_our_name_not_hypercorn_error(nursery, caplog):
    caplog.set_level("INFO")
    svc = await start_config(nursery)
    names = {r.name for r in caplog.records if "Running on" in r.getMessage()}
    assert names == {"sie_actors.http.server"}
    assert not [r for r in caplog.records if r.name == "hypercorn.error"]
    await svc.stop()
