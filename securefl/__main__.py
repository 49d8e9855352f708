"""``python -m securefl``: the same command line as the ``securefl`` script."""

from securefl.cli.main import main

raise SystemExit(main())
