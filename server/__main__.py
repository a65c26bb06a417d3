"""``python -m server`` is the ``cairn`` command."""

from server.cli import main

raise SystemExit(main())
