"""Runs every tests/torch/ref_*.py with the output directory argv[1]; each writes raw float32
reference values computed by PyTorch 1.13 for the C tests (tests/test_torch_*.c)."""
import glob
import os
import runpy
import sys

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
for path in sorted(glob.glob(os.path.join(here, "ref_*.py"))):
    sys.argv = [path, out]
    runpy.run_path(path, run_name="__main__")
    print("ok", os.path.basename(path))
