"""``python -m hiere`` (also what ``torchrun -m hiere train ...`` runs)."""

import sys

from hiere.cli import main

sys.exit(main())
