"""``python -m gossipcert.harness``: the ``gossipcert`` command."""

import sys

from gossipcert.harness.commands.cli import main

sys.exit(main())
