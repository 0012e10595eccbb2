"""``python -m cern_spawner``: the ``cern-spawner`` command."""

import sys

from .cli import main

sys.exit(main())
