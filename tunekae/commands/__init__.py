"""One module per CLI command (see tunekae/cli.py)."""
