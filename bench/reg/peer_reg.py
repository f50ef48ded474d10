#!/usr/bin/python3
"""PyTorch twin of lowbit's `--quant reg` training step, for speed (issue 11, item 5).

Written from ../shared/docs/methods.md section 2 (not from the authors' code): weights are NOT
fake-quantized in the training forward; activations go through LSQ (unsigned, after ReLU) as in
the peer models; the loss is CE + lambda * sum_l (Q/N_l) sum_w d(w)^2 with d the distance to the
nearest level of the layer's levels a_k = S*R. Fixed levels (R frozen after the data-driven init
s = 2*mean|w|/sqrt((2^b-1)/2)) use the closed form of the nearest level of a uniform offset grid
(the fastest PyTorch can do); learned levels (R a parameter, own SGD group, lr 1e-6) search a
sorted table with torch.bucketize. First conv and last fc at 8 bits, as lowbit's defaults.

One timed step = zero_grad + forward + CE + regularizer + backward + SGD(momentum 0.9, Nesterov,
wd 5e-4 on weights) update on a real Fashion-MNIST batch; 5 warm-up steps, then --steps timed;
prints the median step as `train_img_per_s: X` (the line `lowbit bench` prints).

Usage: /usr/bin/python3 bench/reg/peer_reg.py --model cnn --levels fixed --threads 2 [--batch 128]
"""
import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..",
                                "shared", "peer"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="cnn", choices=["cnn", "resnet20"])
    ap.add_argument("--levels", default="fixed", choices=["fixed", "learned"])
    ap.add_argument("--wbits", type=int, default=4)
    ap.add_argument("--abits", type=int, default=4)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lam", type=float, default=100.0)
    a = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F

    import fmnist
    import peer_models as pm

    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    x_all, y_all = fmnist.load_normalized("train")
    idx = np.random.RandomState(0).permutation(len(x_all))
    net = pm.build(a.model, "lsq", a.wbits, a.abits)
    layers = [m for m in net.modules() if isinstance(m, (pm.QConv2d, pm.QLinear))]
    bits = {}
    for m in layers:  # weights float in training: the regularizer alone pulls them
        bits[m] = m.wq.bits if m.wq is not None else 8
        m.wq = None
    regs = []
    for m in layers:
        b = bits[m]
        s = float(2 * m.weight.detach().abs().mean() / ((2 ** b - 1) / 2) ** 0.5)
        mult = [2.0 ** i for i in range(b)] + [(2 ** b - 1) / 2.0]
        R = torch.tensor([s * v for v in mult])
        if a.levels == "learned":
            R = torch.nn.Parameter(R)
        regs.append((m, b, R))
    k_all = lambda b: torch.arange(2 ** b)

    def reg_loss():
        tot = 0.0
        for m, b, R in regs:
            w = m.weight
            Q = 2 ** b - 1
            if a.levels == "fixed":
                s = R[0]
                # a_k = s*(k - Q/2): nearest k = clamp(round(w/s + Q/2)), as a constant index
                k = torch.clamp(torch.round(w.detach() / s + Q / 2), 0, Q)
                lev = s * (k - Q / 2)
            else:
                kk = k_all(b)
                S = torch.stack([((kk >> i) & 1).float() for i in range(b)] +
                                [-torch.ones(2 ** b)], 1)
                lv = S @ R
                t, perm = torch.sort(lv.detach())
                wc = torch.clamp(w.detach(), t[0], t[-1]).reshape(-1)
                j = torch.clamp(torch.bucketize(wc, t), 1, len(t) - 1)
                lo, hi = t[j - 1], t[j]
                j = torch.where((wc - lo) <= (hi - wc), j - 1, j)
                lev = lv[perm[j]].reshape(w.shape)
            d = w - lev
            tot = tot + (Q / w.numel()) * (d * d).sum()
        return a.lam * tot

    groups = pm.param_groups(net, 5e-4)
    opt = torch.optim.SGD(groups, lr=0.01, momentum=0.9, nesterov=True)
    ropt = None
    if a.levels == "learned":
        ropt = torch.optim.SGD([R for _, _, R in regs], lr=1e-6, momentum=0.9, weight_decay=1e-4)
    net.train()
    times = []
    for i in range(5 + a.steps):
        sel = idx[(i * a.batch) % 50000:(i * a.batch) % 50000 + a.batch]
        xb, yb = torch.from_numpy(x_all[sel]), torch.from_numpy(y_all[sel])
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        if ropt:
            ropt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(xb), yb) + reg_loss()
        loss.backward()
        opt.step()
        if ropt:
            ropt.step()
        if i >= 5:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"step_median_s: {med:.5f}")
    print(f"train_img_per_s: {a.batch / med:.1f}")


if __name__ == "__main__":
    main()
