"""`python -m etcdx` runs the server, as the `etcdx` command does."""

import sys

from etcdx.cli.main import main

sys.exit(main())
