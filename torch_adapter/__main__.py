"""``python -m torch_adapter``: the ksom-vqvae command (see :mod:`torch_adapter.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
