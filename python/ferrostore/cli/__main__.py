"""``python -m ferrostore.cli``."""

import sys

from ferrostore.cli import main

sys.exit(main())
