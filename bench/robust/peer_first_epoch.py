#!/usr/bin/env python3
"""The first epoch of lowbit's default cnn recipe, in PyTorch (issue 10's open first-epoch
criterion): does the twin of the same model, init and schedule also end its first epoch above
ln(classes) on a set? Not a copy of lowbit's trainer: the recipe as docs/robust.md states it.

Recipe (lowbit train's defaults for --model cnn): conv32-conv32-maxpool-conv64-conv64-maxpool-fc,
3x3 convs without bias, BN+ReLU after each; PyTorch's default init for the fc (as lowbit's) and
Kaiming normal (fan_out, ReLU) for the convs; SGD, Nesterov momentum 0.9, weight decay 5e-4 on
conv/fc weights only; batch 128, lr 0.02 (scaled with the batch); linear warm-up from 10% of the
rate over the first max(5% of the run, 100) steps; random crop with 2-pixel zero padding, no flip;
each channel normalized with the training split's own mean and std.

usage: peer_first_epoch.py DIR [--seeds 1,2,3] [--lr 0.02] [--batch 128] [--epochs 15]
       [--threads 2] [--head torch|zero] [--head-lr M]
DIR: a CIFAR-10 binary set (data_batch_*.bin, test_batch.bin) or an idx set (train-images-idx3-ubyte[.gz]).
Prints, per seed, the loss of the untrained net on the first batch and the mean training loss of
epoch 1 (the mean over its batches, as lowbit's epoch line), against ln(classes).
"""
import argparse
import glob
import gzip
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def read_idx(path):
    op = gzip.open if path.endswith(".gz") else open
    with op(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    nd = magic & 0xFF
    dims = struct.unpack(">" + "I" * nd, data[4:4 + 4 * nd])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * nd).reshape(dims)


def load(d):
    cifar = sorted(glob.glob(os.path.join(d, "data_batch_*.bin")))
    if cifar:
        raw = np.concatenate([np.fromfile(p, np.uint8) for p in cifar]).reshape(-1, 3073)
        return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)
    for suffix in ("", ".gz"):
        p = os.path.join(d, "train-images-idx3-ubyte" + suffix)
        if os.path.exists(p):
            x = read_idx(p)[:, None]
            y = read_idx(os.path.join(d, "train-labels-idx1-ubyte" + suffix)).astype(np.int64)
            return x, y
    raise SystemExit(f"{d}: neither CIFAR binary nor idx files")


class Cnn(nn.Module):
    def __init__(self, cin, hw, classes):
        super().__init__()
        chans = [(cin, 32), (32, 32), (32, 64), (64, 64)]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in chans)
        self.bns = nn.ModuleList(nn.BatchNorm2d(b) for _, b in chans)
        self.fc = nn.Linear(64 * (hw // 4) * (hw // 4), classes)
        for c in self.convs:
            nn.init.kaiming_normal_(c.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        for i, (c, b) in enumerate(zip(self.convs, self.bns)):
            x = F.relu(b(c(x)))
            if i in (1, 3):
                x = F.max_pool2d(x, 2)
        return self.fc(torch.flatten(x, 1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--head", choices=["torch", "zero"], default="torch",
                    help="fc init: PyTorch's default (lowbit's) or zero weights and bias")
    ap.add_argument("--head-lr", type=float, default=1.0,
                    help="the fc layer's rate as a multiple of the others' (docs/robust.md)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x8, y = load(a.dir)
    classes = int(y.max()) + 1
    x = x8.astype(np.float32) / 255.0
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    x = torch.from_numpy((x - mean) / std)
    y = torch.from_numpy(y)
    n, cin, hw = x.shape[0], x.shape[1], x.shape[2]
    steps = n // a.batch
    total = steps * a.epochs
    warm = max(int(0.05 * total), min(100, total // 10))
    print(f"{a.dir}: {n} images {cin}x{hw}x{hw}, {classes} classes, {steps} steps an epoch, "
          f"warm-up {warm} steps, lr {a.lr}, ln(classes) {math.log(classes):.4f}")
    for seed in [int(s) for s in a.seeds.split(",")]:
        torch.manual_seed(seed)
        g = np.random.default_rng(seed)
        net = Cnn(cin, hw, classes)
        if a.head == "zero":
            nn.init.zeros_(net.fc.weight)
            nn.init.zeros_(net.fc.bias)
        decay = [p for nm, p in net.named_parameters() if p.dim() > 1 and not nm.startswith("fc")]
        rest = [p for nm, p in net.named_parameters() if p.dim() <= 1 and not nm.startswith("fc")]
        opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4},
                               {"params": rest, "weight_decay": 0},
                               {"params": [net.fc.weight], "weight_decay": 5e-4, "m": a.head_lr},
                               {"params": [net.fc.bias], "weight_decay": 0, "m": a.head_lr}],
                              lr=a.lr, momentum=0.9, nesterov=True)
        perm = torch.from_numpy(g.permutation(n))
        losses = []
        for t in range(steps):
            lr = a.lr * (0.1 + 0.9 * t / warm) if t < warm else a.lr
            for grp in opt.param_groups:
                grp["lr"] = lr * grp.get("m", 1.0)
            idx = perm[t * a.batch:(t + 1) * a.batch]
            xp = F.pad(x[idx], (2, 2, 2, 2))
            off = g.integers(0, 5, (len(idx), 2))
            xb = torch.stack([xp[i, :, dy:dy + hw, dx:dx + hw] for i, (dy, dx) in enumerate(off)])
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        q = len(losses) // 4
        print(f"seed {seed}: first batch {losses[0]:.4f}  epoch 1 mean {np.mean(losses):.4f}  "
              f"max {max(losses):.4f}  quarters " +
              " ".join(f"{np.mean(losses[i * q:(i + 1) * q]):.3f}" for i in range(4)))


if __name__ == "__main__":
    main()
