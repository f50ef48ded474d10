"""PyTorch 1.13 references for the non-GEMM ops of lb_ops (tests/test_torch_ops.c): batch norm
(train with running stats, backward, eval), relu/relu6, max/avg/adaptive-avg pooling, option-A
shortcut and label-smoothed cross-entropy. Inputs are drawn here with fixed seeds and saved too,
so the C side runs on identical values. Run: /usr/bin/python3 tests/torch/ref_ops.py OUTDIR."""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from refio import save  # noqa: E402


def leaf(t):
    return t.clone().requires_grad_(True)


def batch_norm(out):
    n, c, h, w = 4, 3, 5, 5
    x = torch.randn(n, c, h, w) * 2 + 0.5
    x[:, 1] += 20  # a channel whose mean dwarfs its spread
    gamma, beta = torch.rand(c) + 0.5, torch.randn(c)
    rm, rv = torch.randn(c) * 0.1, torch.rand(c) + 0.5
    dy = torch.randn(n, c, h, w)
    for name, t in [("x", x), ("gamma", gamma), ("beta", beta), ("rm0", rm), ("rv0", rv),
                    ("dy", dy)]:
        save(out, "bn_" + name, t)
    xl, gl, bl = leaf(x), leaf(gamma), leaf(beta)
    rm1, rv1 = rm.clone(), rv.clone()
    y = F.batch_norm(xl, rm1, rv1, gl, bl, training=True, momentum=0.1, eps=1e-5)
    y.backward(dy)
    save(out, "bn_y", y)
    save(out, "bn_rm1", rm1)
    save(out, "bn_rv1", rv1)
    save(out, "bn_dx", xl.grad)
    save(out, "bn_dgamma", gl.grad)
    save(out, "bn_dbeta", bl.grad)
    _, mean, invstd = torch.native_batch_norm(x, gamma, beta, rm.clone(), rv.clone(), True, 0.1,
                                              1e-5)
    save(out, "bn_mean", mean)
    save(out, "bn_invstd", invstd)
    save(out, "bn_yeval", F.batch_norm(x, rm, rv, gamma, beta, training=False, eps=1e-5))


def activations(out):
    x = torch.randn(2, 3, 4, 4) * 4 + 3
    x[0, 0, 0, :4] = torch.tensor([0.0, 6.0, -0.0, 5.999])  # the clip points themselves
    dy = torch.randn(2, 3, 4, 4)
    save(out, "act_x", x)
    save(out, "act_dy", dy)
    for name, f in [("relu", F.relu), ("relu6", F.relu6)]:
        xl = leaf(x)
        y = f(xl)
        y.backward(dy)
        save(out, name + "_y", y)
        save(out, name + "_dx", xl.grad)


def pools(out):
    # (name, shape, k, stride, pad, integer-valued input with many ties?)
    cases = [("mp2", (2, 3, 6, 6), 2, 2, 0, False), ("mp2t", (2, 3, 6, 7), 2, 2, 0, True),
             ("mp3", (2, 3, 7, 7), 3, 2, 1, False), ("mp3t", (2, 3, 8, 8), 3, 2, 1, True)]
    for name, shape, k, s, p, ties in cases:
        x = torch.randint(0, 3, shape).float() if ties else torch.randn(shape)
        xl = leaf(x)
        y, idx = F.max_pool2d(xl, k, s, p, return_indices=True)
        dy = torch.randn(y.shape)
        y.backward(dy)
        for suffix, t in [("x", x), ("dy", dy), ("y", y), ("idx", idx.float()),
                          ("dx", xl.grad)]:
            save(out, name + "_" + suffix, t)
    for name, shape, k, s, p in [("ap2", (2, 3, 6, 6), 2, 2, 0), ("ap3", (2, 3, 7, 7), 3, 2, 1)]:
        x = torch.randn(shape)
        xl = leaf(x)
        y = F.avg_pool2d(xl, k, s, p, count_include_pad=True)
        dy = torch.randn(y.shape)
        y.backward(dy)
        for suffix, t in [("x", x), ("dy", dy), ("y", y), ("dx", xl.grad)]:
            save(out, name + "_" + suffix, t)
    x = torch.randn(2, 3, 5, 5)
    xl = leaf(x)
    y = F.adaptive_avg_pool2d(xl, 1)
    dy = torch.randn(y.shape)
    y.backward(dy)
    for suffix, t in [("x", x), ("dy", dy), ("y", y), ("dx", xl.grad)]:
        save(out, "gap_" + suffix, t)


def shortcut(out):
    # The CIFAR ResNet option A: x[:, :, ::2, ::2] zero-padded to 2x the channels.
    x = torch.randn(2, 4, 5, 6)
    xl = leaf(x)
    y = F.pad(xl[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))
    dy = torch.randn(y.shape)
    y.backward(dy)
    for suffix, t in [("x", x), ("dy", dy), ("y", y), ("dx", xl.grad)]:
        save(out, "sc_" + suffix, t)


def xent(out):
    n, k = 8, 10
    z = torch.randn(n, k) * 3
    labels = torch.randint(0, k, (n,))
    save(out, "xent_z", z)
    save(out, "xent_labels", labels.float())
    for name, eps in [("xent", 0.1), ("xent0", 0.0)]:
        zl = leaf(z)
        loss = F.cross_entropy(zl, labels, label_smoothing=eps)
        loss.backward()
        save(out, name + "_loss", loss.reshape(1))
        save(out, name + "_dz", zl.grad)
    save(out, "xent_probs", torch.softmax(z, 1))
    save(out, "xent_ncorrect", (z.argmax(1) == labels).sum().float().reshape(1))


def main(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(20240)
    batch_norm(out)
    activations(out)
    pools(out)
    shortcut(out)
    xent(out)


if __name__ == "__main__":
    main(sys.argv[1])
