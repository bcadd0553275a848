"""`python -m iptnet_jax.parity`: the parity report (see the package docstring)."""

import sys

from iptnet_jax.parity import main

sys.exit(main())
