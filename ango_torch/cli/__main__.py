"""``python -m ango_torch.cli`` runs the command line (as ``python -m ango_torch`` does)."""

import sys

from . import main

sys.exit(main())
