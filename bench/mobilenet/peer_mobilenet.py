#!/usr/bin/python3
"""Training speed of PyTorch (Debian python3-torch, CPU) on lowbit's MobileNetV1/V2 (issue 13's
"mobilenetv1/v2 training >= 1.5x PyTorch, FP32 and W4A4"): the architectures of lowbit's zoo, as
tests/torch/ref_mobilenet.py lists them (its layer tables are imported, not copied), built as
torch.nn modules: conv-BN-ReLU6 (no ReLU after the projection), inverted residuals, global
average pool, fc. W4A4 ("lsq") is the LSQ twin of ../shared/peer/peer_models.py (QConv2d, QLinear:
signed LSQ weights, unsigned LSQ inputs), 8-bit first conv (float image in) and fc, 4-bit
elsewhere, as lowbit's default plan. One step = zero_grad + forward + CE + backward + SGD
(momentum 0.9, nesterov, wd 5e-4) on a real Fashion-MNIST batch, train mode; WARMUP steps, then
STEPS timed ones; prints one JSON line {"img_per_s": median rate, "step_ms": median step}.

Usage: /usr/bin/python3 bench/mobilenet/peer_mobilenet.py MODEL QUANT [--batch 128]
       [--threads 2] [--steps 10] [--warmup 3] [--width-mult 1]
"""
import argparse
import json
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
PEER = os.path.normpath(os.path.join(REPO, "..", "shared", "peer"))
sys.path.insert(0, os.path.join(REPO, "tests", "torch"))
sys.path.insert(0, PEER)


def build(arch, wm, quant, classes=10, in_c=1, hw=28):
    import torch.nn as nn
    import torch.nn.functional as F
    import ref_mobilenet as R
    from peer_models import QConv2d, QLinear, QCfg

    q = QCfg(quant)
    small = hw < 112
    if arch == "mobilenetv1":
        convs, feat = R.v1_layers(wm, small)
        blocks = [([c], False) for c in convs]
    else:
        blocks, feat = R.v2_blocks(wm, small)

    class CBR(nn.Module):
        def __init__(self, layer):
            super().__init__()
            name, cin, cout, k, stride, groups, relu6 = layer
            first = cin is None
            cin = in_c if first else cin
            qa = q.first() if first else q.mid()
            self.conv = QConv2d(cin, cout, k, stride=stride, padding=k // 2, groups=groups,
                                bias=False, **qa)
            self.bn = nn.BatchNorm2d(cout)
            self.relu6 = relu6

        def forward(self, x):
            y = self.bn(self.conv(x))
            return F.relu6(y) if self.relu6 else y

    class Block(nn.Module):
        def __init__(self, layers, res):
            super().__init__()
            self.body = nn.Sequential(*[CBR(L) for L in layers])
            self.res = res

        def forward(self, x):
            y = self.body(x)
            return x + y if self.res else y

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.Sequential(*[Block(L, r) for L, r in blocks])
            self.fc = QLinear(feat, classes, **q.last())

        def forward(self, x):
            h = self.blocks(x)
            return self.fc(F.adaptive_avg_pool2d(h, 1).flatten(1))

    return Net()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["mobilenetv1", "mobilenetv2"])
    ap.add_argument("quant", choices=["fp32", "lsq"])
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--width-mult", type=float, default=1.0)
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F
    import fmnist

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    xa, ya = fmnist.load_normalized("train")
    x, y = torch.from_numpy(xa[: a.batch].copy()), torch.from_numpy(ya[: a.batch].copy())
    net = build(a.model, a.width_mult, a.quant)
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    times = []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        t = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(t)
    med = statistics.median(times)
    nparam = sum(p.numel() for n, p in net.named_parameters() if not n.endswith(".s"))
    print(json.dumps({"img_per_s": a.batch / med, "step_ms": 1000 * med, "params": nparam}))


if __name__ == "__main__":
    main()
