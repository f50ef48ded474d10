"""PyTorch 1.13 twin of lowbit's efficientnet-lite0 (tests/test_torch_mobilenet.c), written from
the EfficientNet paper (Tan & Le 2019, B0's stage table) and TF's efficientnet-lite rules, not
from lowbit's C: MBConv blocks without squeeze-excite (expansion 1x1 when t != 1, depthwise kxk,
linear projection 1x1, each conv + BN, ReLU6 after the first two), residual add when stride 1 and
cin == cout; stem conv 3x3 32 and head conv 1x1 1280 + BN + ReLU6 NOT scaled by the width
multiplier; GAP; fc without dropout. Block channels c*wm rounded to multiples of 8 (TF's
round_filters = torchvision's _make_divisible). Small inputs (< 112 px) keep the stem and the
first block of stage 2 at stride 1 (total stride 8), as lowbit's MobileNetV2 (docs/models.md).

Same files per case as ref_mobilenet.py (x, labels, p0, s0, logits, loss, g, s1, y). Cases:
el0_28 (x0.25, 1x28x28) and el0_32 (x0.25, 3x32x32). Also prints the parameter count at 224x224
with 1000 classes (x1) and at 1x28x28 with 10 classes (x1, x0.25) for docs/models.md."""
import sys

import torch

from ref_mobilenet import ch, run_blocks

# B0: (expand ratio t, kernel k, stride s, channels c, repeats n)
B0 = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
      (6, 5, 2, 192, 4), (6, 3, 1, 320, 1)]
STEM, HEAD = 32, 1280


def blocks_of(wm, small):
    """List of (conv layers, residual?) in graph order; conv = (name, cin, cout, k, s, groups,
    relu6). Returns it with the head's width (the fc's input)."""
    blocks = [([("conv1", None, STEM, 3, 1 if small else 2, 1, True)], False)]
    cin = STEM
    for i, (t, k, s, c, n) in enumerate(B0):
        cout = ch(c, wm)
        for b in range(n):
            p = f"s{i + 1}.b{b}."
            stride = s if b == 0 else 1
            if small and i == 1 and b == 0:
                stride = 1
            hid = cin * t
            L = []
            if t != 1:
                L.append((p + "expand", cin, hid, 1, 1, 1, True))
            L.append((p + "dw", hid, hid, k, stride, hid, True))
            L.append((p + "project", hid, cout, 1, 1, 1, False))
            blocks.append((L, stride == 1 and cin == cout))
            cin = cout
    blocks.append(([("conv_last", cin, HEAD, 1, 1, 1, True)], False))
    return blocks, HEAD


def count(wm, in_c, classes):
    """Parameters (conv weights, BN weight + bias, fc weight + bias) of the model."""
    blocks, feat = blocks_of(wm, True)
    total = feat * classes + classes
    for L, _ in blocks:
        for (_, cin, cout, k, _, g, _) in L:
            cin = in_c if cin is None else cin
            total += cout * (cin // g) * k * k + 2 * cout
    return total


def run_case(out, tag, wm, in_c, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    blocks, feat = blocks_of(wm, hw < 112)
    convs = [c for L, _ in blocks for c in L]
    run_blocks(out, tag, gen, blocks, convs, feat, in_c, hw)


def main(out):
    torch.set_num_threads(1)  # the 2 cores are shared; results do not depend on it
    run_case(out, "el0_28", 0.25, 1, 28, 20261214)
    run_case(out, "el0_32", 0.25, 3, 32, 20261215)
    print("efficientnet-lite0 parameters: 3x224x224 1000 classes x1 %d; 1x28x28 10 classes x1 %d,"
          " x0.25 %d" % (count(1.0, 3, 1000), count(1.0, 1, 10), count(0.25, 1, 10)))


if __name__ == "__main__":
    main(sys.argv[1])
