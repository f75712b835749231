"""`sie encode` and `sie models add --wait --loaded`: the CLI's two looks at the data plane.

`sie encode` posts one text to the first gateway and prints the vector's dims and first values
(or the whole JSON answer). The two "come back later" answers are retried by itself within
`--timeout`: 503 `MODEL_LOADING` (the worker is loading the model) and 202 `provisioning` (no
worker of the bundle yet), each after its `Retry-After`, capped at a few seconds so a fresh
cluster answers as soon as it can.

`--loaded` waits, after every replica acked, until every replica reports at least one worker per
bundle with the model loaded (`loaded_workers` in the model's status, an addition of ours).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sie_tools.admin import exits
from sie_tools.admin.errors import CliError, http_error
from sie_tools.admin.poller import fetch_status

RETRY_CAP_S = 2.0


def _retry_after(headers: Any) -> float:
    try:
        return min(RETRY_CAP_S, max(0.1, float(headers.get("Retry-After", "1"))))
    except ValueError:
        return 1.0


def encode(args: Any, ctx) -> int:
    ctx.targets.require_gateways()
    body = {"items": [{"text": text} for text in args.texts]}
    if args.query:
        body["params"] = {"is_query": True}
    deadline = time.monotonic() + args.timeout
    with ctx.targets.gateway(ctx.targets.gateway_urls[0]) as gateway:
        while True:
            response = gateway.send("POST", f"/v1/encode/{args.model}", json=body)
            waiting = response.status_code == 202 or (
                response.status_code == 503
                and response.headers.get("X-SIE-Error-Code") == "MODEL_LOADING")
            if not waiting:
                break
            if time.monotonic() + _retry_after(response.headers) > deadline:
                raise CliError(exits.TIMEOUT, f"{args.model} is not served yet after "
                                              f"{args.timeout:g}s (last answer: HTTP "
                                              f"{response.status_code})")
            time.sleep(_retry_after(response.headers))  # a CLI waiting for a server, not a test
        if not response.is_success:
            raise http_error("gateway", response.status_code, response.content,
                             response.reason_phrase)
        doc = gateway.json(response)
    if ctx.json_mode:
        ctx.print(json.dumps(doc))
        return exits.OK
    for text, item in zip(args.texts, doc.get("items") or []):
        dense = item.get("dense") or {}
        values = dense.get("values") or []
        head = ", ".join(f"{v:.4f}" for v in values[:args.show])
        ctx.print(f"{doc.get('model')}: {text!r} -> dense {dense.get('dims')} dims "
                  f"[{head}{', ...' if len(values) > args.show else ''}]")
    return exits.OK


def wait_loaded(ctx, model_id: str, timeout: float, interval: float) -> int:
    deadline = time.monotonic() + timeout
    endpoints = ctx.targets.gateways()
    try:
        while True:
            missing = [e.url for e in endpoints
                       if not fetch_status(e, model_id, ctx.targets.request_timeout).loaded]
            if not missing:
                if not ctx.json_mode:
                    ctx.print(f"loaded: every replica reports a worker with {model_id} loaded")
                return exits.OK
            if time.monotonic() >= deadline:
                ctx.print(f"timed out waiting for {model_id} to be loaded; no loaded worker "
                          f"reported by: {', '.join(missing)}")
                return exits.TIMEOUT
            time.sleep(interval)
    finally:
        for endpoint in endpoints:
            endpoint.close()
