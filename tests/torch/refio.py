"""Writes reference tensors as raw little-endian float32 (<name>.f32) for the C tests."""
import os

import numpy as np


def save(outdir, name, t):
    a = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
    a.astype("<f4").tofile(os.path.join(outdir, name + ".f32"))
