"""``python -m clipasso_engine …`` is the ``clipasso`` command."""

import sys

from .cli import main

sys.exit(main())
