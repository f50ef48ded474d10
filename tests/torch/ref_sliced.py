"""PyTorch 1.13 twins of lowbit's tensor-sliced quantizer (tests/test_torch_sliced.c), written from
methods.md sec. 4 (seed 004) with autograd doing the gradients:
- y = d * round(clamp(x, -xmax, xmax) / d) (unsigned: clamp to [0, xmax]), d and xmax per slice
  (per output channel here for weights, one for activations);
- the round's backward modified: weights (EWGS) g * (1 + delta sign(g) r), activations
  g * (1 + delta sign(g) (0.5 / atanh(0.95)) atanh(1.9 r)), r = u - round(u), delta = 5e-3;
- optional power-of-two d: 2^round(log2 d), straight through the rounding of log2 d;
- the size n * mean(b) / 8000 kB (at the effective d) with b = ceil(log2(round(xmax / d) + 1)) (+1 signed), round and
  ceil straight through;
- the init: weights xmax = max(|mu - 3 sigma|, |mu + 3 sigma|) per slice (population sigma),
  activations the 0.999 quantile of |x| (linear interpolation), d = xmax / (2^(b0-1) - 1)
  (unsigned 2^b0 - 1).
Each case writes its inputs and outputs as raw float32 (sl_<case>_<what>.f32)."""
import math
import sys

import torch

from refio import save

DELTA = 5e-3


class RoundEWGS(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return torch.round(u)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        r = u - torch.round(u)
        return g * (1 + DELTA * torch.sign(g) * r)


class RoundTanh(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return torch.round(u)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        r = u - torch.round(u)
        k = 0.5 / math.atanh(0.95)
        return g * (1 + DELTA * torch.sign(g) * k * torch.atanh(1.9 * r))


def ste(x, f):
    return x + (f - x).detach()


def eff(d, po2):
    if not po2:
        return d
    l2 = torch.log2(d)
    return torch.pow(2.0, ste(l2, torch.round(l2)))


def sliced(x, d, xm, signed, weight, po2):
    # x [outer, ch, inner]; d, xm [ch]
    d = eff(d, po2)
    dv, xv = d.view(1, -1, 1), xm.view(1, -1, 1)
    lo = -xv if signed else torch.zeros_like(xv)
    c = torch.clamp(x, lo, xv)  # tensor bounds: x's gradient where lo <= x <= xmax
    rnd = RoundEWGS if weight else RoundTanh
    return dv * rnd.apply(c / dv)


def size_kb(d, xm, n, signed, po2):
    d = eff(d, po2)
    k = ste(xm / d, torch.round(xm / d))
    l = torch.log2(k + 1)
    b = ste(l, torch.ceil(l)) + (1 if signed else 0)
    return n * b.mean() / 8000.0


def case(out, name, outer, ch, inner, signed, weight, po2, seed):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(outer, ch, inner, generator=g) * 2 - 1) * 1.3
    if not signed:
        x = x + 0.4
    dy = torch.rand(outer, ch, inner, generator=g) * 2 - 1
    d = (0.04 + 0.05 * torch.rand(ch, generator=g)).requires_grad_()
    xm = (0.5 + 0.5 * torch.rand(ch, generator=g)).requires_grad_()
    xg = x.clone().requires_grad_()
    y = sliced(xg, d, xm, signed, weight, po2)
    y.backward(dy)
    for k, v in [("x", x), ("dy", dy), ("d", d), ("xm", xm), ("y", y), ("dx", xg.grad),
                 ("dd", d.grad), ("dxm", xm.grad)]:
        save(out, "sl_%s_%s" % (name, k), v)
    d2, xm2 = d.detach().clone().requires_grad_(), xm.detach().clone().requires_grad_()
    s = size_kb(d2, xm2, 1000, signed, po2)
    s.backward()
    save(out, "sl_%s_kb" % name, s.reshape(1))
    save(out, "sl_%s_kbdd" % name, d2.grad)
    save(out, "sl_%s_kbdxm" % name, xm2.grad)


def init_case(out):
    g = torch.Generator().manual_seed(7)
    w = torch.randn(4, 50, generator=g) * 0.1 + 0.01 * torch.arange(4).view(4, 1)
    mu, sd = w.mean(1), w.std(1, unbiased=False)
    xm = torch.maximum((mu - 3 * sd).abs(), (mu + 3 * sd).abs())
    save(out, "sl_init_w", w)
    save(out, "sl_init_wxm", xm)
    save(out, "sl_init_wd", xm / 7.0)  # b0 = 4, signed
    a = torch.rand(3, 200, generator=g) * 5
    axm = torch.quantile(a.abs().flatten(), 0.999)
    save(out, "sl_init_a", a)
    save(out, "sl_init_axm", axm.reshape(1))
    save(out, "sl_init_ad", (axm / 15.0).reshape(1))  # b0 = 4, unsigned


if __name__ == "__main__":
    out = sys.argv[1]
    case(out, "ws", 1, 4, 30, True, True, False, 1)
    case(out, "wp", 1, 4, 30, True, True, True, 2)
    case(out, "au", 3, 1, 40, False, False, False, 3)
    case(out, "as", 3, 1, 40, True, False, False, 4)
    init_case(out)
