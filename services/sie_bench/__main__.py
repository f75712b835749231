import sys

from sie_bench.cli import main

sys.exit(main())
