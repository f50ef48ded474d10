"""Conv2d and linear references from PyTorch 1.13 for tests/test_torch_conv.c: for each case the
inputs (x, w, b, dy) and PyTorch's y = conv(x, w) + b and its gradients (dx, dw, db) for the
upstream gradient dy, as raw float32 files conv_<case>_<tensor>.f32 in argv[1]. The shapes here
must match the table in test_torch_conv.c."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import save  # noqa: E402

# name: (n, cin, h, w, cout, k, stride, pad, groups)
CONV_CASES = {
    "3x3s1": (3, 5, 9, 8, 8, 3, 1, 1, 1),
    "3x3s2": (2, 4, 9, 10, 6, 3, 2, 1, 1),
    "dw3x3s1": (2, 6, 8, 8, 6, 3, 1, 1, 6),
    "dw3x3s2": (2, 6, 9, 9, 6, 3, 2, 1, 6),
    "group2": (2, 6, 7, 7, 4, 3, 1, 1, 2),
    "1x1": (2, 5, 6, 6, 7, 1, 1, 0, 1),
}
LINEAR = (4, 20, 7)  # n, in, out


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(20240601)
    for name, (n, cin, h, w, cout, k, s, p, g) in CONV_CASES.items():
        x = torch.randn(n, cin, h, w, requires_grad=True)
        wt = torch.randn(cout, cin // g, k, k, requires_grad=True)
        b = torch.randn(cout, requires_grad=True)
        y = F.conv2d(x, wt, b, stride=s, padding=p, groups=g)
        dy = torch.randn_like(y)
        y.backward(dy)
        for tname, t in (("x", x), ("w", wt), ("b", b), ("dy", dy), ("y", y),
                         ("dx", x.grad), ("dw", wt.grad), ("db", b.grad)):
            save(out, f"conv_{name}_{tname}", t)
    n, i, o = LINEAR
    x = torch.randn(n, i, requires_grad=True)
    wt = torch.randn(o, i, requires_grad=True)
    b = torch.randn(o, requires_grad=True)
    y = F.linear(x, wt, b)
    dy = torch.randn_like(y)
    y.backward(dy)
    for tname, t in (("x", x), ("w", wt), ("b", b), ("dy", dy), ("y", y),
                     ("dx", x.grad), ("dw", wt.grad), ("db", b.grad)):
        save(out, f"linear_{tname}", t)


if __name__ == "__main__":
    main(sys.argv[1])
