import sys

from sie_chaos.cli import main

sys.exit(main())
