"""The ``securefl`` command line."""

from securefl.cli.main import main

__all__ = ["main"]
