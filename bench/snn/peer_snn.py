#!/usr/bin/python3
"""PyTorch + snnTorch twin of lowbit's snn-vgg training step, for speed (issue 15, "Fast").

Written from ../shared/docs/methods.md section 6 and lowbit's docs/snn.md (not from lowbit's C):
conv 1->32 and a layer norm over (C,H,W) without affine run once on the image and are repeated
over T steps (direct encoding, as lowbit does it); then per stage conv -> [max pool] -> layer
norm -> Leaky (beta 0.5, threshold 1, reset by subtraction, arctangent surrogate, snnTorch's
detached reset), the stateless layers on all T*B frames at once and only the neurons stepping
through time (the fastest way to write it in PyTorch); head flatten -> fc 256 -> Leaky -> dropout
0.5 -> fc classes, mean over T (membrane readout), cross-entropy; AdamW lr 1e-3, wd 1e-4.
Weights fp32, or 4-bit LSQ fake-quantized (--wbits 4; first and last layer 8-bit as lowbit).
Uses snnTorch's Leaky when it imports, else a twin of the same recurrence (printed).

One timed step = zero_grad + forward + CE + backward + AdamW update on a real Fashion-MNIST
batch; 3 warm-up steps, then --steps timed; prints the median as `train_img_per_s: X` (the line
`lowbit bench` prints).

Usage: /usr/bin/python3 bench/snn/peer_snn.py --timesteps 8 --threads 2 [--batch 128] [--wbits 4]
"""
import argparse
import math
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "shared", "peer"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--wbits", type=int, default=0)
    a = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import fmnist

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    T = a.timesteps
    try:
        import snntorch as snn
        from snntorch import surrogate

        def leaky():
            return snn.Leaky(beta=0.5, threshold=1.0, spike_grad=surrogate.atan())
        src = "snnTorch " + snn.__version__
    except Exception:  # noqa: BLE001
        class Spike(torch.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                ctx.save_for_backward(x)
                return (x > 0).float()

            @staticmethod
            def backward(ctx, g):
                (x,) = ctx.saved_tensors
                return g / (1 + (math.pi * x) ** 2)

        class Twin(nn.Module):
            def init_leaky(self):
                return 0

            def forward(self, x, mem):
                r = (mem > 1.0).float() if torch.is_tensor(mem) else 0
                mem = 0.5 * mem + x - r
                return Spike.apply(mem - 1.0), mem

        def leaky():
            return Twin()
        src = "a PyTorch twin of the LIF recurrence"

    class LSQ(torch.autograd.Function):
        """4-bit LSQ weights: s*round(clip(w/s)) with the straight-through and step gradients."""

        @staticmethod
        def forward(ctx, w, s, qn, qp):
            g = 1.0 / math.sqrt(w.numel() * qp)
            v = w / s
            ctx.save_for_backward(v)
            ctx.other = (g, qn, qp)
            return torch.round(v.clamp(-qn, qp)) * s

        @staticmethod
        def backward(ctx, d):
            (v,) = ctx.saved_tensors
            g, qn, qp = ctx.other
            inside = (v >= -qn) & (v <= qp)
            ds = torch.where(inside, torch.round(v) - v, v.clamp(-qn, qp))
            return d * inside, (d * ds).sum().view(1) * g, None, None

    class QConv(nn.Conv2d):
        def __init__(self, *args, bits=0, **kw):
            super().__init__(*args, **kw)
            self.bits = bits
            if bits:
                self.s = nn.Parameter(torch.tensor([2 * self.weight.abs().mean().item() /
                                                    math.sqrt(2 ** (bits - 1) - 1)]))

        def forward(self, x):
            w = self.weight
            if self.bits:
                w = LSQ.apply(w, self.s, 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1)
            return F.conv2d(x, w, None, 1, 1)

    class QLinear(nn.Linear):
        def __init__(self, i, o, bits=0):
            super().__init__(i, o)
            self.bits = bits
            if bits:
                self.s = nn.Parameter(torch.tensor([2 * self.weight.abs().mean().item() /
                                                    math.sqrt(2 ** (bits - 1) - 1)]))

        def forward(self, x):
            w = self.weight
            if self.bits:
                w = LSQ.apply(w, self.s, 2 ** (self.bits - 1), 2 ** (self.bits - 1) - 1)
            return F.linear(x, w, self.bias)

    wb = a.wbits
    first = 8 if wb else 0

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = QConv(1, 32, 3, bias=False, bits=first)
            self.c2 = QConv(32, 32, 3, bias=False, bits=wb)
            self.c3 = QConv(32, 64, 3, bias=False, bits=wb)
            self.c4 = QConv(64, 64, 3, bias=False, bits=wb)
            self.fc1 = QLinear(7 * 7 * 64, 256, bits=wb)
            self.fc2 = QLinear(256, 10, bits=first)
            self.lifs = nn.ModuleList([leaky() for _ in range(5)])

        def step_all(self, lif, cur):  # cur [T*B, ...] -> spikes [T*B, ...]
            mem = lif.init_leaky()
            cur = cur.view(T, -1, *cur.shape[1:])
            out = []
            for t in range(T):
                s, mem = lif(cur[t], mem)
                out.append(s)
            return torch.cat(out)

        def forward(self, x):
            B = x.shape[0]
            y = self.c1(x)
            y = F.layer_norm(y, y.shape[1:])
            y = y.repeat(T, 1, 1, 1)  # direct encoding after the first norm
            s = self.step_all(self.lifs[0], y)
            y = F.max_pool2d(self.c2(s), 2)
            s = self.step_all(self.lifs[1], F.layer_norm(y, y.shape[1:]))
            y = self.c3(s)
            s = self.step_all(self.lifs[2], F.layer_norm(y, y.shape[1:]))
            y = F.max_pool2d(self.c4(s), 2)
            s = self.step_all(self.lifs[3], F.layer_norm(y, y.shape[1:]))
            s = self.step_all(self.lifs[4], self.fc1(s.flatten(1)))
            y = self.fc2(F.dropout(s, 0.5, self.training))
            return y.view(T, B, -1).mean(0)

    net = Net()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-4)
    x_all, y_all = fmnist.load_normalized("train")
    idx = np.random.RandomState(0).permutation(len(x_all))
    times = []
    for i in range(3 + a.steps):
        j = idx[(i * a.batch) % (len(idx) - a.batch):][:a.batch]
        x = torch.from_numpy(x_all[j]).view(-1, 1, 28, 28)
        y = torch.from_numpy(y_all[j].astype(np.int64))
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x), y)
        loss.backward()
        opt.step()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    print(f"peer: {src}, T {T}, batch {a.batch}, threads {a.threads}, wbits {wb or 'fp32'}")
    print(f"train_img_per_s: {a.batch / statistics.median(times):.1f}")


if __name__ == "__main__":
    main()
