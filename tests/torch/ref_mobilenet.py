"""PyTorch 1.13 twins of lowbit's MobileNetV1 and MobileNetV2 (tests/test_torch_mobilenet.c),
written from the papers and docs/models.md, not from lowbit's C: stem conv 3x3, depthwise-separable
blocks (V1) or inverted residuals with linear bottlenecks (V2), BN + ReLU6, GAP, fc; width
multiplier with channels rounded to multiples of 8 (torchvision's _make_divisible); small inputs
(< 112 px) keep the stem and one early stage at stride 1 (total stride 8).

One forward and backward in train mode (batch statistics) on a fixed batch, float32, mean
cross-entropy. Per case <c>, under lowbit's parameter and state names:
  <c>_x, <c>_labels          the batch
  <c>_p0.<name>, <c>_s0.<name>  parameters and BN running statistics before the step
  <c>_logits, <c>_loss       forward
  <c>_g.<name>               gradients of every parameter
  <c>_s1.<name>              running statistics after the forward (momentum 0.1)
  <c>_y.<conv>               the ReLU6 output after each conv's BN (for the kink alignment in the
                             C test: which side of 0 and 6 an element near them fell on)"""
import math
import sys

import torch
import torch.nn.functional as F

from refio import save

BATCH = 4


def ch(c, wm):
    """c*wm rounded to a multiple of 8: at least 8, never more than 10% below c*wm."""
    v = c * wm
    r = max(8, int(v + 4) // 8 * 8)
    if r < 0.9 * v:
        r += 8
    return r


def v1_layers(wm, small):
    """(conv name, cin, cout, k, stride, groups, relu6) in graph order; residual adds: none."""
    chans = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
    strides = [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1]
    c0 = ch(32, wm)
    L = [("conv1", None, c0, 3, 1 if small else 2, 1, True)]
    cin = c0
    for b in range(13):
        s = 1 if (small and b == 11) else strides[b]
        L.append((f"b{b + 1}.dw", cin, cin, 3, s, cin, True))
        cout = ch(chans[b], wm)
        L.append((f"b{b + 1}.pw", cin, cout, 1, 1, 1, True))
        cin = cout
    return L, cin


V2_CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]


def v2_blocks(wm, small):
    """Blocks: list of (list of conv layers, residual?) and the last conv's width."""
    c0 = ch(32, wm)
    blocks = [([("conv1", None, c0, 3, 1 if small else 2, 1, True)], False)]
    cin = c0
    for s, (t, c, n, st) in enumerate(V2_CFG):
        cout = ch(c, wm)
        for b in range(n):
            p = f"s{s + 1}.b{b}."
            stride = (1 if (small and s == 1) else st) if b == 0 else 1
            hid = cin * t
            L = []
            if t != 1:
                L.append((p + "expand", cin, hid, 1, 1, 1, True))
            L.append((p + "dw", hid, hid, 3, stride, hid, True))
            L.append((p + "project", hid, cout, 1, 1, 1, False))
            blocks.append((L, stride == 1 and cin == cout))
            cin = cout
    last = ch(1280, wm) if wm > 1 else 1280
    blocks.append(([("conv_last", cin, last, 1, 1, 1, True)], False))
    return blocks, last


def make_params(gen, convs, in_c, feat, classes):
    P, S = {}, {}
    for (name, cin, cout, k, _, groups, _) in convs:
        cin = in_c if cin is None else cin
        std = math.sqrt(2.0 / (cout * k * k / groups))
        P[f"{name}.weight"] = torch.randn(cout, cin // groups, k, k, generator=gen) * std
        P[f"{name}_bn.weight"] = 1.0 + 0.2 * torch.randn(cout, generator=gen)
        P[f"{name}_bn.bias"] = 0.1 * torch.randn(cout, generator=gen)
        S[f"{name}_bn.running_mean"] = 0.1 * torch.randn(cout, generator=gen)
        S[f"{name}_bn.running_var"] = 1.0 + 0.5 * torch.rand(cout, generator=gen)
    bound = 1.0 / math.sqrt(feat)
    P["fc.weight"] = (torch.rand(classes, feat, generator=gen) * 2 - 1) * bound
    P["fc.bias"] = (torch.rand(classes, generator=gen) * 2 - 1) * bound
    for k in P:
        P[k] = P[k].clone().requires_grad_(True)
    return P, S


def cbr(P, S, layer, x, acts):
    name, _, _, k, stride, groups, relu6 = layer
    y = F.conv2d(x, P[f"{name}.weight"], None, stride, k // 2, 1, groups)
    y = F.batch_norm(y, S[f"{name}_bn.running_mean"], S[f"{name}_bn.running_var"],
                     P[f"{name}_bn.weight"], P[f"{name}_bn.bias"], True, 0.1, 1e-5)
    if relu6:
        y = F.relu6(y)
        acts[name] = y
    return y


def run_blocks(out, tag, gen, blocks, convs, feat, in_c, hw):
    """One train-mode forward/backward of blocks [(layers, residual)] + GAP + fc on random data from
    gen; dumps inputs, parameters, BN statistics before/after, logits, loss, gradients and every
    layer's output under tag (shared by ref_efficientnet.py)."""
    P, S = make_params(gen, convs, in_c, feat, 10)
    x = torch.randn(BATCH, in_c, hw, hw, generator=gen)
    labels = torch.randint(0, 10, (BATCH,), generator=gen)
    save(out, f"{tag}_x", x)
    save(out, f"{tag}_labels", labels.float())
    for k, v in P.items():
        save(out, f"{tag}_p0.{k}", v)
    for k, v in S.items():
        save(out, f"{tag}_s0.{k}", v)
    h, acts = x, {}
    for L, res in blocks:
        y = h
        for layer in L:
            y = cbr(P, S, layer, y, acts)
        h = y + h if res else y
    logits = F.linear(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1), P["fc.weight"], P["fc.bias"])
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    save(out, f"{tag}_logits", logits)
    save(out, f"{tag}_loss", loss.reshape(1))
    for k, v in P.items():
        save(out, f"{tag}_g.{k}", v.grad)
    for k, v in S.items():
        save(out, f"{tag}_s1.{k}", v)
    for k, v in acts.items():
        save(out, f"{tag}_y.{k}", v)


def run_case(out, tag, arch, wm, in_c, hw, seed):
    gen = torch.Generator().manual_seed(seed)
    small = hw < 112
    if arch == "mobilenetv1":
        convs, feat = v1_layers(wm, small)
        blocks = [([c], False) for c in convs]
    else:
        blocks, feat = v2_blocks(wm, small)
        convs = [c for L, _ in blocks for c in L]
    run_blocks(out, tag, gen, blocks, convs, feat, in_c, hw)


def main(out):
    torch.set_num_threads(1)  # the 2 cores are shared; results do not depend on it
    run_case(out, "mn1_28", "mobilenetv1", 0.25, 1, 28, 20261204)
    run_case(out, "mn2_28", "mobilenetv2", 0.25, 1, 28, 20261205)
    run_case(out, "mn2_32", "mobilenetv2", 0.5, 3, 32, 20261206)


if __name__ == "__main__":
    main(sys.argv[1])
