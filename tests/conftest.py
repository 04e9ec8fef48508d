import os

import pytest
import torch

# Two cores shared by everything: keep each test process single-threaded for torch.
torch.set_num_threads(1)
os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture
def run_cli(capsys):
    """Run `python -m tunekae ...` in-process; returns (exit code, stdout, stderr)."""
    from tunekae.cli import main

    def _run(*argv):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # argparse errors
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err
    return _run
