"""PyTorch 1.13 twins of lowbit's MaQD parts (tests/test_torch_maqd.c), written from methods.md
sec. 5 (every formula there is lowbit's design) with autograd doing the gradients:
- round-clip Q(x) = clip(round(a x), -K, K) / a, computed as round_ste(clamp(x / s, -K, K)) * s
  with s = 1/a (the same float ops as the C kernel); a gets LSQ's gradient scale 1/sqrt(N K)
  through the usual grad_scale trick; the data-driven init a0 = 1 / (2 mean|x| / sqrt(K));
  the triangle surrogate as a custom round whose backward is 4 min(t, 1-t), t = frac(u), inside
  the range (a's gradient stays the straight-through one);
- weight standardization (w - mean) / sqrt(var + 1e-5) per output channel over the fan-in;
- Layer-Batch Norm: per-sample mean and biased variance over (C, H, W), per-channel gamma/beta,
  optionally relu(LBN(x) + res); running statistics: every channel moves by the batch means of
  the per-sample mean and of the unbiased per-sample variance, momentum 0.1.
Each case writes its inputs and outputs as raw float32 (mq_<case>_<what>.f32)."""
import math
import sys

import torch

from refio import save


class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, g):
        return g


class RoundTri(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u):
        ctx.save_for_backward(u)
        return torch.round(u)

    @staticmethod
    def backward(ctx, g):
        (u,) = ctx.saved_tensors
        t = u - torch.floor(u)
        return g * 4.0 * torch.minimum(t, 1.0 - t)


def grad_scale(a, g):
    return (a - a * g).detach() + a * g


def roundclip(x, a, K, signed, gscale, per_channel):
    lo = -float(K) if signed else 0.0
    ag = grad_scale(a, gscale)
    s = 1.0 / ag
    if per_channel:
        s = s.view(-1, *([1] * (x.dim() - 1)))
    return RoundSTE.apply(torch.clamp(x / s, lo, float(K))) * s


def roundclip_tri_dx(x, a, K, signed, per_channel):
    lo = -float(K) if signed else 0.0
    s = (1.0 / a).detach()
    if per_channel:
        s = s.view(-1, *([1] * (x.dim() - 1)))
    u = x / s
    inside = ((u >= lo) & (u <= K)).float()
    return RoundTri.apply(torch.clamp(u, lo, float(K))) * s * inside + (
        torch.clamp(u, lo, float(K)).detach() * s * (1 - inside))


def rc_case(out, name, x, dy, K, signed, per_channel, n, a=None):
    """n: the N of the gradient scale, as the graph binds it (a weight channel's or the whole
    tensor's count; an activation's per-sample C*H*W)."""
    gs = 1.0 / math.sqrt(n * K)
    if a is None:  # data-driven init, float32 as the C code: s = 2 mean|x| / sqrt(K), a = 1/s
        s0 = 2.0 * x.abs().mean() / torch.tensor(math.sqrt(K), dtype=torch.float32)
        a = (1.0 / s0).reshape(1)
    else:
        a = torch.tensor(a, dtype=torch.float32).reshape(-1)
    xx = x.clone().requires_grad_(True)
    aa = a.clone().requires_grad_(True)
    y = roundclip(xx, aa, K, signed, gs, per_channel)
    y.backward(dy)
    for k, v in (("x", x), ("dy", dy), ("a", a), ("y", y), ("dx", xx.grad), ("da", aa.grad)):
        save(out, f"mq_{name}_{k}", v)
    xt = x.clone().requires_grad_(True)
    roundclip_tri_dx(xt, a, K, signed, per_channel).backward(dy)
    save(out, f"mq_{name}_dxtri", xt.grad)


def wstd_case(out, name, w, dws):
    ww = w.clone().requires_grad_(True)
    f = ww.flatten(1)
    mu = f.mean(dim=1, keepdim=True)
    var = f.var(dim=1, unbiased=False, keepdim=True)
    ws = ((f - mu) / torch.sqrt(var + 1e-5)).view_as(w)
    ws.backward(dws)
    for k, v in (("w", w), ("dws", dws), ("ws", ws), ("dw", ww.grad)):
        save(out, f"mq_{name}_{k}", v)


def lbn_case(out, name, x, dy, gamma, beta, res):
    xx = x.clone().requires_grad_(True)
    g = gamma.clone().requires_grad_(True)
    b = beta.clone().requires_grad_(True)
    rr = res.clone().requires_grad_(True) if res is not None else None
    mu = xx.mean(dim=(1, 2, 3), keepdim=True)
    var = xx.var(dim=(1, 2, 3), unbiased=False, keepdim=True)
    y = (xx - mu) / torch.sqrt(var + 1e-5) * g.view(1, -1, 1, 1) + b.view(1, -1, 1, 1)
    if rr is not None:
        y = torch.relu(y + rr)
    y.backward(dy)
    cnt = x[0].numel()
    c = x.shape[1]
    with torch.no_grad():
        rm = torch.zeros(c) * 0.9 + 0.1 * mu.mean()
        rv = torch.ones(c) * 0.9 + 0.1 * (var * cnt / (cnt - 1)).mean()
    for k, v in (("x", x), ("dy", dy), ("gamma", gamma), ("beta", beta), ("y", y),
                 ("dx", xx.grad), ("dgamma", g.grad), ("dbeta", b.grad), ("rm", rm),
                 ("rv", rv)):
        save(out, f"mq_{name}_{k}", v)
    if rr is not None:
        save(out, f"mq_{name}_res", res)
        save(out, f"mq_{name}_dres", rr.grad)


def main(out):
    gen = torch.Generator().manual_seed(2002)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    # weights [16][72] after standardization (unit scale), 15 states (K = 7), a given
    rc_case(out, "w15", randn(16, 72), randn(16, 72), 7, True, False, 16 * 72, a=[2.3])
    rc_case(out, "w15pc", randn(12, 54), randn(12, 54), 7, True, True, 54,
            a=[1.1 + 0.2 * i for i in range(12)])
    rc_case(out, "w9", randn(10, 40), randn(10, 40), 4, True, False, 400, a=[1.7])
    # activations [8][16*6*6] after a ReLU, 16 states (K = 15): the init, and a given a
    xa = torch.relu(randn(8, 576) + 0.3)
    rc_case(out, "a16init", xa, randn(8, 576), 15, False, False, 576)
    rc_case(out, "a16", xa, randn(8, 576), 15, False, False, 576, a=[6.1])
    wstd_case(out, "ws", randn(8, 3, 3, 3, scale=0.2) + 0.05, randn(8, 3, 3, 3))
    lbn_case(out, "lbn", randn(4, 6, 5, 5) * 2 + 0.5, randn(4, 6, 5, 5), 1 + randn(6, scale=0.2),
             randn(6, scale=0.1), None)
    lbn_case(out, "lbnres", randn(4, 6, 5, 5) * 2 + 0.5, randn(4, 6, 5, 5),
             1 + randn(6, scale=0.2), randn(6, scale=0.1), randn(4, 6, 5, 5, scale=0.5))


if __name__ == "__main__":
    main(sys.argv[1])
