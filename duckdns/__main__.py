"""Allow ``python3 -m duckdns``."""

import sys

from duckdns.cli import main

sys.exit(main())
