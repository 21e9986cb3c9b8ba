"""``python -m backover_sandbox.runner``: run the local AWS runner until SIGTERM/SIGINT."""

from __future__ import annotations

import sys

from .server import main

if __name__ == "__main__":
    sys.exit(main())
