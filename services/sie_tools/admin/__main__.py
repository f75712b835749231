"""`python -m sie_tools.admin ...`: the same CLI without relying on the installed `sie` script."""

from __future__ import annotations

import sys

from sie_tools.admin.cli import main

sys.exit(main())
