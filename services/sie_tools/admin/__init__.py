"""`sie`, the admin CLI (CONTRACT §3): add models, read the catalog, and watch fleet-wide readiness.

Each module has one job: `cli` parses arguments and dispatches, `commands` runs a command,
`http` talks to one service, `errors`/`exits` turn failures into one line and an exit code,
`keys` derives idempotency keys, `readiness`/`progress`/`poller` implement `status --wait`,
`views` renders responses for humans.
"""
