"""Argument handling of `sie` that needs no service: usage errors, help, target resolution."""

from __future__ import annotations

import io

import pytest

from sie_tools.admin.cli import build_parser, main
from sie_tools.admin.targets import DEFAULT_CONFIG_URL, Targets


def run(argv: list[str], environ: dict[str, str] | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, environ=environ or {}, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_help_documents_exit_codes(capsys) -> None:
    assert main(["--help"], environ={}) == 0
    text = capsys.readouterr().out
    for line in ("0  success", "1  not acked", "2  --wait timed out", "3  a service could not",
                 "4  a service failed"):
        assert line in text


def test_status_without_gateway_is_a_usage_error() -> None:
    code, out, err = run(["models", "status", "org/m"])
    assert code == 2 and out == ""
    assert err == ("sie: no gateway configured: pass --gateway-url URL (repeatable) "
                   "or set SIE_GATEWAY_URLS=url1,url2\n")


def test_add_wait_without_gateway_fails_before_writing(tmp_path) -> None:
    model = tmp_path / "m.yaml"
    model.write_text("sie_id: a\n")
    # the config URL is unreachable: had the CLI tried to POST first, the exit would be 3
    code, _, err = run(["--config-url", "http://127.0.0.1:9", "models", "add", str(model),
                        "--wait"])
    assert code == 2 and "no gateway configured" in err


def test_unreadable_file_is_a_usage_error(tmp_path) -> None:
    code, _, err = run(["models", "add", str(tmp_path / "missing.yaml")])
    assert code == 2 and err.startswith("sie: cannot read ") and "No such file" in err


def test_bad_arguments_exit_2(capsys) -> None:
    assert main(["models", "status", "m", "--timeout", "-1"], environ={}) == 2
    assert "must be > 0" in capsys.readouterr().err
    assert main(["frobnicate"], environ={}) == 2


def test_global_options_before_or_after_the_subcommand() -> None:
    parser = build_parser()
    before = parser.parse_args(["--json", "--config-url", "http://a", "models", "list"])
    after = parser.parse_args(["models", "list", "--json", "--config-url", "http://a"])
    for args in (before, after):
        assert args.json is True and args.config_url == "http://a"
    plain = parser.parse_args(["models", "list"])
    assert plain.json is False and plain.config_url is None and plain.gateway_url is None


def test_targets_flags_win_over_environment_and_tokens_follow_roles() -> None:
    env = {"SIE_CONFIG_URL": "http://env-config", "SIE_GATEWAY_URLS": " http://g1 ,,http://g2",
           "SIE_ADMIN_TOKEN": "adm"}
    t = Targets.resolve(config_url=None, gateway_urls=None, token=None, request_timeout=3,
                        environ=env)
    assert t.config_url == "http://env-config" and t.gateway_urls == ["http://g1", "http://g2"]
    assert t.admin_token == "adm" and t.read_token == "adm"   # reads fall back to the admin token
    t = Targets.resolve(config_url="http://flag", gateway_urls=["http://g3"], token="flagadm",
                        request_timeout=3, environ={**env, "SIE_AUTH_TOKEN": "rd"})
    assert t.config_url == "http://flag" and t.gateway_urls == ["http://g3"]
    assert t.admin_token == "flagadm" and t.read_token == "rd"
    t = Targets.resolve(config_url=None, gateway_urls=None, token=None, request_timeout=3,
                        environ={"SIE_ADMIN_TOKEN": "", "SIE_AUTH_TOKEN": ""})
    assert t.config_url == DEFAULT_CONFIG_URL and t.admin_token is None and t.read_token is None


@pytest.mark.parametrize("source,expected", [("auto", "gateway"), ("config", "sie-config"),
                                             ("gateway", "gateway")])
def test_reader_source(source: str, expected: str) -> None:
    t = Targets(config_url="http://c", gateway_urls=["http://g1", "http://g2"])
    with t.reader(source) as endpoint:
        assert endpoint.label == expected
        assert endpoint.url == ("http://g1" if expected == "gateway" else "http://c")
    with Targets(config_url="http://c").reader("auto") as endpoint:
        assert endpoint.label == "sie-config"


def test_model_path_keeps_slashes_and_encodes_the_rest() -> None:
    from sie_tools.admin.http import model_path
    # a proxy that does not decode %2F would route an encoded id to the wrong place
    assert model_path("BAAI/bge-m3", "/status") == "/v1/configs/models/BAAI/bge-m3/status"
    assert model_path("a b?#") == "/v1/configs/models/a%20b%3F%23"
