"""The benchmark scripts are run by hand (they print figures, CI runs none of them), so nothing
else would notice one that no longer even compiles under the project's Python."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.parametrize("script", sorted(p.name for p in BENCHMARKS.glob("*.py")))
def test_every_benchmark_script_compiles(script):
    path = BENCHMARKS / script
    compile(path.read_text(), str(path), "exec")      # raises SyntaxError; writes nothing


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the check would run")
def test_cuda_check_without_a_gpu_says_so_and_exits_2():
    p = subprocess.run([sys.executable, str(BENCHMARKS / "cuda_check.py")], capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 2 and "sees no CUDA device" in p.stderr and "Traceback" not in p.stderr, p.stderr
