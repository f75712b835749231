"""The commands themselves: build the request, send it, print the human view or the JSON.

Every failure is raised as a `CliError` (from `http`, `targets` or here) and rendered by `cli.main`;
a command returns its exit code only on the paths where the service answered.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import yaml

from sie_tools.admin import exits, views
from sie_tools.admin.errors import CliError
from sie_tools.admin.http import model_path
from sie_tools.admin.keys import derive_idempotency_key
from sie_tools.admin import inference
from sie_tools.admin.poller import Fleet
from sie_tools.admin.progress import progress_for, table_lines
from sie_tools.admin.readiness import (NOT_FOUND, UNREACHABLE, ReplicaReport, all_of_kind,
                                      fleet_json, outcome_lines)
from sie_tools.admin.targets import Targets

YAML_TYPE = "application/x-yaml"


@dataclass
class Context:
    targets: Targets
    json_mode: bool
    out: TextIO
    err: TextIO
    stdin: Any = None  # binary stream for `models add -`

    def print(self, *lines: str) -> None:
        for line in lines:
            self.out.write(line + "\n")

    def print_json(self, doc: Any) -> None:
        self.out.write(json.dumps(doc, indent=2) + "\n")

    def print_raw(self, text: str) -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")


def read_model_file(name: str, stdin: Any) -> bytes:
    """The exact bytes to POST: the key is derived from them, so nothing may be re-encoded."""
    if name == "-":
        return (stdin or sys.stdin.buffer).read()
    try:
        return Path(name).read_bytes()
    except OSError as exc:
        raise CliError(exits.USAGE, f"cannot read {name}: {exc.strerror or exc}") from None


# ---- models --------------------------------------------------------------------------------------

def check_yaml(body: bytes, name: str) -> None:
    """Refuse a file that is not YAML here, with its own name and the parser's lines intact.

    The service would refuse it too (400), but its message is one flattened line that names the
    source `<unicode string>`; the operator needs the file, line and column.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CliError(exits.REFUSED, f"{name} is not valid UTF-8 (invalid byte at position "
                                      f"{exc.start})") from None
    loader = yaml.SafeLoader(text)
    loader.name = "<stdin>" if name == "-" else name
    try:
        loader.get_single_data()
    except yaml.YAMLError as exc:
        raise CliError(exits.REFUSED, f"{loader.name} is not valid YAML:\n{exc}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise CliError(exits.REFUSED, f"{loader.name} is not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def models_add(args: Any, ctx: Context) -> int:
    body = read_model_file(args.file, ctx.stdin)
    if not body.strip():
        raise CliError(exits.USAGE, f"{args.file} is empty")
    check_yaml(body, args.file)
    if args.wait and not args.dry_run and not ctx.targets.gateway_urls:
        ctx.targets.require_gateways()  # fail before writing: --wait could never succeed
    key = args.idempotency_key or derive_idempotency_key(body)
    if args.strict and not args.dry_run:
        _refuse_warnings(ctx, body, args.file)  # a dry run first: nothing is written if refused
    headers = {"Content-Type": YAML_TYPE}
    if not args.dry_run:
        headers["Idempotency-Key"] = key  # a dry run is never remembered by sie-config
    params = {"dry_run": "true"} if args.dry_run else None
    with ctx.targets.config(write=True) as config:
        response = config.request("POST", "/v1/configs/models", content=body, headers=headers,
                                  params=params)
        result = config.json(response)
    if args.strict and args.dry_run and result.get("warnings"):
        _strict_refusal(ctx, result, args.file)
    model_id = result.get("model_id")
    if not args.wait or args.dry_run or not model_id:
        if ctx.json_mode:
            ctx.print_raw(response.text)
        else:
            ctx.print(*views.add_summary(response.status_code, result,
                                         None if args.dry_run else key))
            if args.wait and args.dry_run:
                ctx.print("  (--wait ignored: a dry run changes nothing to wait for)")
        return exits.OK
    if not ctx.json_mode:
        ctx.print(*views.add_summary(response.status_code, result, key))
    started = time.monotonic()
    code = _status(ctx, model_id, wait=True, timeout=args.timeout, interval=args.interval,
                   extra={"add": result})
    if code != exits.OK or not args.loaded:
        return code
    left = max(0.0, args.timeout - (time.monotonic() - started))
    return inference.wait_loaded(ctx, model_id, left, args.interval)


def _refuse_warnings(ctx: Context, body: bytes, name: str) -> None:
    """`--strict`: validate with a dry run; any warning refuses the write before it happens."""
    with ctx.targets.config(write=True) as config:
        response = config.request("POST", "/v1/configs/models", content=body,
                                  headers={"Content-Type": YAML_TYPE},
                                  params={"dry_run": "true"})
        result = config.json(response)
    if result.get("warnings"):
        _strict_refusal(ctx, result, name)


def _strict_refusal(ctx: Context, result: dict[str, Any], name: str) -> None:
    warnings = [str(w) for w in result["warnings"]]
    if ctx.json_mode:
        ctx.print_json({"refused": "strict", "warnings": warnings})
    raise CliError(exits.REFUSED, f"--strict: {name} was not written, because of "
                                  f"{len(warnings)} warning(s):\n"
                   + "\n".join(f"  {w}" for w in warnings))


def _show_read(ctx: Context, source: str, method: str, path: str, view, **request) -> int:
    """Read one JSON document: raw with --json, else through `view` for people."""
    with ctx.targets.reader(source) as endpoint:
        response = endpoint.request(method, path, **request)
        data = endpoint.json(response)
    if ctx.json_mode:
        ctx.print_raw(response.text)
    else:
        ctx.print(*view(data))
    return exits.OK


def models_list(args: Any, ctx: Context) -> int:
    return _show_read(ctx, args.source, "GET", "/v1/configs/models", views.models_table)


def models_get(args: Any, ctx: Context) -> int:
    with ctx.targets.reader(args.source) as endpoint:
        response = endpoint.request("GET", model_path(args.model_id))
    if ctx.json_mode:  # the endpoint serves YAML; scripts get the same document as JSON
        ctx.print_json(yaml.safe_load(response.text))
    else:
        ctx.print_raw(response.text)
    return exits.OK


def models_status(args: Any, ctx: Context) -> int:
    return _status(ctx, args.model_id, wait=args.wait, timeout=args.timeout,
                   interval=args.interval, check_exists=True)


def _config_has(ctx: Context, model_id: str) -> bool | None:
    """Whether sie-config knows the model; ``None`` when it cannot tell us."""
    try:
        with ctx.targets.config() as config:
            response = config.send("GET", model_path(model_id))
    except CliError:
        return None
    if response.status_code == 404:
        return False
    return True if response.is_success else None


def _status(ctx: Context, model_id: str, *, wait: bool, timeout: float, interval: float,
            extra: dict[str, Any] | None = None, check_exists: bool = False) -> int:
    """One round (exit 0/1) or a wait (exit 0/2) over every gateway replica.

    A model that no replica knows is looked up once on sie-config: if it has not got it either,
    the model does not exist, which is said once and exits 5 instead of polling a 404 until the
    timeout. If sie-config has it, the replicas are still catching up: keep waiting. When every
    replica is unreachable, exit 3.
    """
    endpoints = ctx.targets.gateways()
    display = progress_for(ctx.out, model_id, timeout if wait else None,
                           json_mode=ctx.json_mode or not wait)
    verdict: dict[str, bool | None] = {}

    def missing_everywhere(reports: list[ReplicaReport]) -> bool:
        if not check_exists or not all_of_kind(reports, NOT_FOUND):
            return False
        if "config" not in verdict:
            verdict["config"] = _config_has(ctx, model_id)
        return verdict["config"] is not True

    try:
        with Fleet(endpoints) as fleet:
            result = fleet.wait(model_id, timeout=timeout if wait else None, interval=interval,
                                request_timeout=ctx.targets.request_timeout, show=display.show,
                                give_up=missing_everywhere)
    finally:
        display.close()
    if result.gave_up:
        raise CliError(exits.NOT_FOUND, f"model '{model_id}' does not exist: "
                                        f"{len(result.reports)} of {len(result.reports)} gateway "
                                        "replica(s) and sie-config answered 404 (see "
                                        "`sie models list`)")
    unreachable = all_of_kind(result.reports, UNREACHABLE) and not result.acked
    if ctx.json_mode:
        doc = fleet_json(model_id, result.reports, timed_out=result.timed_out,
                         elapsed=result.elapsed if wait else None)
        ctx.print_json({**extra, "status": doc} if extra else doc)
    else:
        if not wait:  # a single round: show the table once, then the verdict
            ctx.print(*table_lines(model_id, result.reports, result.elapsed)[1:])
        ctx.print(*outcome_lines(model_id, result.reports, result.elapsed if wait else None,
                                 timed_out=result.timed_out))
    if result.acked:
        return exits.OK
    if unreachable:
        ctx.err.write(f"sie: no gateway replica could be reached ({', '.join(ctx.targets.gateway_urls)})\n")
        return exits.UNREACHABLE
    return exits.TIMEOUT if result.timed_out else exits.NOT_ACKED


# ---- resolve, bundles, export, epoch ---------------------------------------------------------

def resolve(args: Any, ctx: Context) -> int:
    payload: dict[str, Any] = {"model": args.spec}
    if args.bundle:
        payload["bundle"] = args.bundle
    return _show_read(ctx, args.source, "POST", "/v1/configs/resolve", views.resolve_lines,
                      json=payload)


def bundles_list(args: Any, ctx: Context) -> int:
    return _show_read(ctx, args.source, "GET", "/v1/configs/bundles", views.bundles_table)


def write_atomically(path: Path, data: bytes) -> None:
    """A half-written export would look like a valid backup until someone restores it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def export(args: Any, ctx: Context) -> int:
    with ctx.targets.config(write=True) as config:
        response = config.request("GET", "/v1/configs/export")
        body = config.json(response)  # never save a non-JSON page as a "backup"
    if not args.output or args.output == "-":
        ctx.print_raw(response.text)
        return exits.OK
    try:
        write_atomically(Path(args.output), response.content)
    except OSError as exc:
        raise CliError(exits.USAGE, f"cannot write {args.output}: {exc.strerror or exc}") from None
    if ctx.json_mode:
        ctx.print_json({"output": args.output, "epoch": body.get("epoch"),
                        "models": len(body.get("models") or [])})
    else:
        ctx.print(views.export_summary(body, args.output))
    return exits.OK


def epoch(args: Any, ctx: Context) -> int:
    with ctx.targets.config() as config:
        response = config.request("GET", "/v1/configs/epoch")
        data = config.json(response)
    if ctx.json_mode:
        ctx.print_raw(response.text)
    else:
        ctx.print(*views.epoch_lines(data))
    return exits.OK
