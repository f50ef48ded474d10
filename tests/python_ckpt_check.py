"""The PyTorch side of tests/cli/python_ckpt.sh: loads a lowbit checkpoint with python/lowbit_ckpt.py,
compares its logits and accuracy with `lowbit eval --dump-logits`, and writes files back.
Not a general tool; prints "ok ..." or "FAIL ..." lines and exits non-zero on a failure.

  python_ckpt_check.py compare CKPT DUMP DATA N MODE   MODE exact: every image's logits within
      1e-5 relative (max |diff| / max |logit|) and the same accuracy; quant: the same, except
      that images where a quantized activation landed on the other side of a rounding boundary
      (float sums in another order) may differ: at most 3% of them, and predictions of at least
      99% of the images and the accuracy within 0.5% must agree
  python_ckpt_check.py save CKPT OUT [bias]   re-writes CKPT from PyTorch as a weights-only file
      (bias: first adds 0.5 to fc.bias, so the file differs from the original)
  python_ckpt_check.py logits CKPT DATA N OUT  PyTorch's logits in the --dump-logits format
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import lowbit_ckpt as lc  # noqa: E402

torch.set_num_threads(1)


def logits_of(ckpt, data, n):
    model = lc.to_torch(ckpt)
    x, y = lc.load_idx(data, "t10k", n)
    with torch.no_grad():
        return model(lc.preprocess(x, model.lowbit_cfg)).numpy(), y


def compare(ckpt, dump, data, n, mode):
    out, y = logits_of(ckpt, data, n)
    tab = np.loadtxt(dump, ndmin=2)
    ref = tab[:, 1:].astype(np.float32)
    if ref.shape != out.shape:
        return "FAIL %s: lowbit dumped %s logits, PyTorch has %s" % (ckpt, ref.shape, out.shape)
    rel = np.abs(out - ref).max(1) / np.maximum(np.abs(ref).max(1), 1e-30)
    far = int((rel > 1e-5).sum())
    acc_t, acc_l = float((out.argmax(1) == y).mean()), float((ref.argmax(1) == y).mean())
    agree = float((out.argmax(1) == ref.argmax(1)).mean())
    msg = "%s: %d images, %d beyond 1e-5 (max rel %.3g), accuracy torch %.4f lowbit %.4f, " \
          "agreement %.4f" % (os.path.basename(ckpt), n, far, rel.max(), acc_t, acc_l, agree)
    if mode == "exact":
        good = far == 0 and acc_t == acc_l
    else:
        good = far <= 0.03 * n and agree >= 0.99 and abs(acc_t - acc_l) <= 0.005
    return ("ok " if good else "FAIL ") + msg


def main(a):
    if a[0] == "compare":
        line = compare(a[1], a[2], a[3], int(a[4]), a[5])
    elif a[0] == "save":
        model = lc.to_torch(a[1])
        if len(a) > 3 and a[3] == "bias":
            with torch.no_grad():
                model.fc.bias += 0.5
        lc.save(a[2], model)
        line = "ok saved %s" % a[2]
    elif a[0] == "logits":
        out, _ = logits_of(a[1], a[2], int(a[3]))
        with open(a[4], "w") as f:
            for r in out:
                f.write("%d %s\n" % (int(r.argmax()), " ".join("%.9g" % v for v in r)))
        line = "ok wrote %s" % a[4]
    else:
        sys.exit(__doc__)
    print(line)
    return line.startswith("ok")


if __name__ == "__main__":
    sys.exit(0 if main(sys.argv[1:]) else 1)
