"""``python -m mldl``: the same as the ``mldl`` command."""

from .cli import main

raise SystemExit(main())
