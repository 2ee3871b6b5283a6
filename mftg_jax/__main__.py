"""`python -m mftg_jax ...` runs the `mftg` command line."""

import sys

from .cli import main

sys.exit(main())
