import sys

from sie_cluster.cli import main

sys.exit(main())
