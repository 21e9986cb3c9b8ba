"""``python -m backover`` is the ``backover`` command."""

import sys

from .cli import main

sys.exit(main())
