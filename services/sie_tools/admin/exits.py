"""The CLI's exit codes, in one place so the `--help` epilog and the code cannot disagree.

Scripts branch on these, so each means one thing: the service said no (1), we gave up waiting or
were called wrongly (2), we never got an answer (3), the service broke (4), there is no such
model (5).
"""

from __future__ import annotations

OK = 0
NOT_ACKED = 1        # `status` without --wait: some replica is not acked yet
REFUSED = 1          # the service answered 4xx
TIMEOUT = 2          # `--wait` gave up
USAGE = 2            # bad arguments, unreadable file, no gateway configured (argparse uses 2 too)
UNREACHABLE = 3      # connection refused, DNS failure, request timeout
SERVER_ERROR = 4     # the service answered 5xx
NOT_FOUND = 5        # `status`: no gateway replica and not sie-config knows the model
INTERRUPTED = 130    # Ctrl-C

EPILOG = """\
exit codes:
  0  success (status: every gateway replica acked)
  1  not acked yet (status without --wait), or the service refused the request (4xx)
  2  --wait timed out, or usage error (bad arguments, unreadable file, no gateway configured)
  3  a service could not be reached (connection refused, DNS, request timeout)
  4  a service failed (5xx)
  5  models status: the model does not exist (every gateway replica and sie-config say 404)

environment:
  SIE_CONFIG_URL     sie-config base URL (default http://127.0.0.1:8080)
  SIE_GATEWAY_URLS   comma-separated gateway replica URLs
  SIE_ADMIN_TOKEN    admin token: writes and export (also used for reads if no read token)
  SIE_AUTH_TOKEN     read token for GETs, resolve and status
"""

SUBCOMMAND_EPILOG = """\
Global options (--config-url, --gateway-url, --token, --request-timeout, --json) are accepted
here too; they, the environment variables and the exit codes are described in `sie --help`.
"""
