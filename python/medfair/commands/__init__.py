"""Subcommands of the ``medfair`` command line, one module each."""
