"""PyTorch 1.13 twins of msqe-po2 and grad-po2 (tests/test_torch_po2x.c), written from methods.md
1b (QKeras' power-of-two quantizers), not from lowbit's C. Grids: signed Qn = Qp = 2^(b-1)-1,
unsigned [0, 2^b-1]; step 2^E with E an integer; y = s * clip(round(x/s)) (round half to even).

msqe-po2: E0 = round(log2(max|x|/Qp)); then three least-squares refinements from E (codes of the
current candidate, E' = round(log2(sum m q x / sum m q q)), kept when the weighted error is
strictly lower) and a line search over E + {-3..-1, 1..3} around the result. Error sum m (x - y)^2,
m = [|x| <= 2 std(x)] * sqrt(moments) (either may be off). Backward: dx = dy where round(x/s) is a
code; moments' = 0.999 moments + 0.001 [code in range] dy^2.

grad-po2: learned e; E = ceil(e), or floor(e) when its weighted error (mask |x| <= 2^e (Qp + 1/2),
sqrt(moments)) is strictly lower than ceil(e)'s; s = 2^(e + stopgrad(E - e)) so ds/de = ln2 s;
autograd through s * clamp(round_ste(x/s)); init e0 = log2(max(3 std(x)/Qp, 1e-5)).

Cases px_<tag>_<k>: x, mom (moments in), dy, E (chosen), y, dx, mom1 (moments out); grad-po2 also
e (the learned value in), de, and e0 (the init from x)."""
import sys

import torch

from refio import save


def bounds(bits, signed):
    return (2 ** (bits - 1) - 1, 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def quant(x, E, qn, qp):
    """x [ch, n] float32, E [ch] integers -> y, codes (float32)"""
    s = torch.pow(torch.tensor(2.0, dtype=torch.float64), E.double()).float().view(-1, 1)
    k = torch.clamp(torch.round(x / s), -qn, qp)
    return k * s, k


def werr(x, E, qn, qp, m):
    y, k = quant(x, E, qn, qp)
    d = (x - y).double()
    return (m * d * d).sum(1), (m * k.double() * x.double()).sum(1), (m * k.double() ** 2).sum(1)


def weights(x, mom, thr):
    m = torch.ones_like(x, dtype=torch.float64)
    if thr is not None:
        m = m * (x.abs() <= thr.view(-1, 1)).double()
    if mom is not None:
        m = m * torch.sqrt(mom).double()
    return m


def rlog2(v):
    return torch.round(torch.log2(v))


def msqe_case(out, tag, bits, signed, ch, n, mask, moments, gen, scale):
    qn, qp = bounds(bits, signed)
    x = torch.randn(ch, n, generator=gen) * scale.view(-1, 1)
    if not signed:
        x = x.abs()
    x[:, 3] *= 9.0  # an outlier per channel
    mom = 0.05 + torch.rand(ch, n, generator=gen) * 3.0
    dy = torch.randn(ch, n, generator=gen)
    thr = (2.0 * x.double().std(1, unbiased=False)).float() if mask else None
    m = weights(x, mom if moments else None, thr)
    E = rlog2(x.abs().amax(1).double() / qp)
    best, qx, qq = werr(x, E, qn, qp, m)
    cur = E.clone()
    for _ in range(3):
        cand = torch.where((qq > 0) & (qx > 0), rlog2(qx / qq.clamp_min(1e-300)), cur)
        err, qx, qq = werr(x, cand, qn, qp, m)
        E = torch.where(err < best, cand, E)
        best = torch.minimum(err, best)
        cur = cand
    center = E.clone()
    for off in (-3, -2, -1, 1, 2, 3):
        cand = center + off
        err, _, _ = werr(x, cand, qn, qp, m)
        E = torch.where(err < best, cand, E)
        best = torch.minimum(err, best)
    y, k = quant(x, E, qn, qp)
    inr = ((k >= -qn) & (k <= qp)).float()  # always true after the clamp: recompute unclamped
    s = torch.pow(torch.tensor(2.0, dtype=torch.float64), E.double()).float().view(-1, 1)
    r = torch.round(x / s)
    inr = ((r >= -qn) & (r <= qp)).float()
    dx = dy * inr
    mom1 = (mom * 0.999 + 0.001 * (inr * dy * dy)) if moments else mom
    for k_, v in (("x", x), ("mom", mom), ("dy", dy), ("E", E), ("y", y), ("dx", dx),
                  ("mom1", mom1)):
        save(out, f"px_{tag}_{k_}", v)


def grad_case(out, tag, bits, signed, ch, n, ceil, mask, moments, gen, e_in):
    qn, qp = bounds(bits, signed)
    x = torch.randn(ch, n, generator=gen) * 0.3
    if not signed:
        x = x.abs()
    mom = 0.05 + torch.rand(ch, n, generator=gen) * 3.0
    dy = torch.randn(ch, n, generator=gen)
    sd = x.double().std(1, unbiased=False)
    e0 = torch.log2(torch.clamp(3.0 * sd / qp, min=1e-5)).float()
    e = torch.tensor(e_in, dtype=torch.float32, requires_grad=True)
    lo, hi = torch.floor(e.detach()), torch.ceil(e.detach())
    if ceil:
        E = hi
    else:
        thr = (torch.pow(2.0, e.detach().double()) * (qp + 0.5)).float() if mask else None
        m = weights(x, mom if moments else None, thr)
        ef, _, _ = werr(x, lo, qn, qp, m)
        ec, _, _ = werr(x, hi, qn, qp, m)
        E = torch.where(ef < ec, lo, hi)
    s0 = torch.pow(torch.tensor(2.0, dtype=torch.float64), E.double()).float()
    s = s0 + (e - e.detach()) * (0.6931471805599453 * s0)  # value 2^E exactly, ds/de = ln2 s
    s = s.view(-1, 1)
    xx = x.clone().requires_grad_(True)
    u = xx / s
    v = u + (torch.round(u) - u).detach()
    y = s * torch.clamp(v, -qn, qp)
    y.backward(dy)
    r = torch.round(x / s0.view(-1, 1))
    inr = ((r >= -qn) & (r <= qp)).float()
    mom1 = (mom * 0.999 + 0.001 * (inr * dy * dy)) if moments else mom
    for k_, val in (("x", x), ("mom", mom), ("dy", dy), ("E", E), ("y", y), ("dx", xx.grad),
                    ("mom1", mom1), ("e", e), ("de", e.grad), ("e0", e0)):
        save(out, f"px_{tag}_{k_}", val)


def main(out):
    gen = torch.Generator().manual_seed(4321)
    # weights [4][60]: per channel, mask and moments on (the reference default), 4 bit signed
    msqe_case(out, "mw", 4, True, 4, 60, True, True, gen, torch.tensor([0.02, 0.1, 0.5, 0.003]))
    # per tensor, no mask, no moments, 3 bit signed; unsigned 4 bit activations, mask only
    msqe_case(out, "mt", 3, True, 1, 240, False, False, gen, torch.tensor([0.07]))
    msqe_case(out, "ma", 4, False, 1, 240, True, False, gen, torch.tensor([1.3]))
    # grad-po2: msqe rounding with mask + moments (per channel), ceil (per tensor, unsigned)
    grad_case(out, "gw", 4, True, 3, 80, False, True, True, gen, [-4.4, -3.7, -2.05])
    grad_case(out, "ga", 4, False, 1, 240, True, False, False, gen, [-3.3])
    grad_case(out, "gm", 3, True, 2, 100, False, False, False, gen, [-2.5, -3.9])


if __name__ == "__main__":
    main(sys.argv[1])
