#!/usr/bin/env python3
"""The first epoch of lowbit's default cnn or resnet20 recipe, in PyTorch (issue 10's open first-epoch
criterion): does the twin of the same model, init and schedule also end its first epoch above
ln(classes) on a set? Not a copy of lowbit's trainer: the recipe as docs/robust.md states it.

Recipe (lowbit train's defaults for --model cnn): conv32-conv32-maxpool-conv64-conv64-maxpool-fc,
3x3 convs without bias, BN+ReLU after each; PyTorch's default init for the fc (as lowbit's) and
Kaiming normal (fan_out, ReLU) for the convs; SGD, Nesterov momentum 0.9, weight decay 5e-4 on
conv/fc weights only; batch 128, lr 0.02 (scaled with the batch); linear warm-up from 10% of the
rate over the first max(5% of the run, 100) steps; random crop after 2-pixel padding with black
pixels (--pad mean: the mean colour, what this script did until 2026-12-07), no flip; each
channel normalized with the training split's own mean and std. --model resnet20: He et al.'s
CIFAR ResNet-20, the same recipe at lr 0.1 (give --lr 0.1 and lowbit's measured head scale,
e.g. --head-lr 0.6).

usage: peer_first_epoch.py DIR [--seeds 1,2,3] [--lr 0.02] [--batch 128] [--epochs 15]
       [--threads 2] [--head torch|zero] [--head-lr M] [--model cnn|resnet20]
       [--recipe lowbit|he2016]

--model resnet20 --recipe he2016 is the field's canonical CIFAR recipe rather than lowbit's (He et
al. 2016, Sec. 4.2: ResNet-20 with parameter-free option-A shortcuts, He-normal init, SGD with
momentum 0.9 (not Nesterov) and weight decay 1e-4 on every parameter, lr 0.1 from the first step
(no warm-up), batch 128, 4-pixel padding and random crop plus horizontal flip): does a trainer
nobody tuned for this set learn in its first epoch? --recipe he2016 ignores --lr, --head and
--head-lr.
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


class Block(nn.Module):
    """CIFAR ResNet basic block with the parameter-free option-A shortcut (He et al. 2016)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.stride, self.pad = stride, cout - cin

    def forward(self, x):
        out = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
        sc = x
        if self.stride != 1 or self.pad:
            sc = F.pad(x[:, :, ::self.stride, ::self.stride],
                       (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return F.relu(out + sc)


class ResNet20(nn.Module):
    """He et al.'s CIFAR ResNet-20 (lowbit's resnet20): 16/32/64 channels, 3 blocks a stage."""

    def __init__(self, cin, classes):
        super().__init__()
        self.stem = nn.Conv2d(cin, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        blocks, c = [], 16
        for cout, stride in ((16, 1), (32, 2), (64, 2)):
            for i in range(3):
                blocks.append(Block(c, cout, stride if i == 0 else 1))
                c = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(64, classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


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
    ap.add_argument("--model", choices=["cnn", "resnet20"], default="cnn")
    ap.add_argument("--recipe", choices=["lowbit", "he2016"], default="lowbit")
    ap.add_argument("--pad", choices=["black", "mean"], default="black",
                    help="the random crop's padding: black pixels (lowbit's loader, torchvision's "
                         "RandomCrop before Normalize) or the mean colour (0 after normalizing)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    x8, y = load(a.dir)
    classes = int(y.max()) + 1
    x = x8.astype(np.float32) / 255.0
    mean = x.mean(axis=(0, 2, 3), keepdims=True)
    std = x.std(axis=(0, 2, 3), keepdims=True)
    x = torch.from_numpy((x - mean) / std)
    black = torch.from_numpy((-mean / std).astype(np.float32))  # [1][C][1][1]
    y = torch.from_numpy(y)
    n, cin, hw = x.shape[0], x.shape[1], x.shape[2]
    steps = n // a.batch
    total = steps * a.epochs
    he = a.recipe == "he2016"
    if he:
        a.lr = 0.1
    warm = 0 if he else max(int(0.05 * total), min(100, total // 10))
    pad = 4 if he else 2
    print(f"{a.dir}: {n} images {cin}x{hw}x{hw}, {classes} classes, {steps} steps an epoch, "
          f"warm-up {warm} steps, lr {a.lr}, ln(classes) {math.log(classes):.4f}")
    for seed in [int(s) for s in a.seeds.split(",")]:
        torch.manual_seed(seed)
        g = np.random.default_rng(seed)
        net = Cnn(cin, hw, classes) if a.model == "cnn" else ResNet20(cin, classes)
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
        if he:
            opt = torch.optim.SGD(net.parameters(), lr=a.lr, momentum=0.9, weight_decay=1e-4)
        perm = torch.from_numpy(g.permutation(n))
        net.train()
        losses = []
        for t in range(steps):
            lr = a.lr * (0.1 + 0.9 * t / warm) if t < warm else a.lr
            for grp in opt.param_groups:
                grp["lr"] = lr * grp.get("m", 1.0)
            idx = perm[t * a.batch:(t + 1) * a.batch]
            xp = F.pad(x[idx], (pad, pad, pad, pad))
            if a.pad == "black":  # raw 0, normalized: -mean/std per channel
                xp = xp + black * (F.pad(torch.zeros_like(x[idx][:, :1]), (pad,) * 4, value=1.0))
            off = g.integers(0, 2 * pad + 1, (len(idx), 2))
            xb = torch.stack([xp[i, :, dy:dy + hw, dx:dx + hw] for i, (dy, dx) in enumerate(off)])
            if he:
                flip = torch.from_numpy(g.random(len(idx)) < 0.5)
                xb[flip] = torch.flip(xb[flip], dims=[3])
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
