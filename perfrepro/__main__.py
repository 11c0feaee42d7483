"""`python -m perfrepro`: the `perfrepro` console script."""

import sys

from perfrepro.cli import main

sys.exit(main())
