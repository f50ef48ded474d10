"""PyTorch 1.13 references for the fault module (lb_faults.h, tests/test_torch_faults.c), written
from methods.md sec. 3 and docs/faults.md (not from any other code): a weight stores the b bits of
a pattern p; stuck-at masks give the chip's pattern (p & ~sa0) | sa1 and the reachable patterns
((p & sa0) == 0 and (p & sa1) == sa1); per-weight levels a[w,p] = sum_j bit_j(p) R_j v[w,j] - R_b
(summed in float64, rounded to float32 once); the nearest reachable level (w clamped into the
reachable range, ties to the lower level, equal levels to the smaller p); the fault/variability-aware
regularizer lambda*(Q/N)*sum d^2 and QFALT's -lambda*sum_w sum_p V[w,p] exp(-(w-a[w,p])^2/sigma^2),
with gradients by autograd w.r.t. the weights and R. Masks are written as float32 values.
Sign-magnitude (docs/faults.md "Encodings"): bit b-1 is the sign, a[w,p] = sign(p) * sum_{j<b-1}
bit_j(p) R_j v[w,j] - R_b, and a code c is stored as c (c >= 0) or 2^(b-1) | -c.
Per case: faults_<case>_w, _R, _sa0, _sa1, _var, _p (chosen pattern), _loss, _dw, _dR; and
faults_codes for the faulty and nearest reachable codes of random codes."""
import sys

import torch

from refio import save


def bits_of(bits):
    p = torch.arange(1 << bits)
    return torch.stack([(p >> j) & 1 for j in range(bits)], dim=1)  # [2^b, b]


def masks(n, bits, rate, share, gen):
    cell = torch.rand(n, bits, generator=gen, dtype=torch.float64) < rate
    one = torch.rand(n, bits, generator=gen, dtype=torch.float64) < share
    weights = (1 << torch.arange(bits))[None, :]
    sa0 = ((cell & ~one).long() * weights).sum(1)
    sa1 = ((cell & one).long() * weights).sum(1)
    return sa0, sa1


def reachable(sa0, sa1, bits):
    p = torch.arange(1 << bits)[None, :]
    return ((p & sa0[:, None]) == 0) & ((p & sa1[:, None]) == sa1[:, None])  # [n, 2^b]


def own_levels(R, v, bits, signmag=False):
    """a[w, p] in float64 then float32 once; R [b+1] (differentiable), v [n, b]. Sign-magnitude:
    the top cell carries no magnitude and gives the sum its sign."""
    B = bits_of(bits).double()  # [2^b, b]
    m = bits - 1 if signmag else bits
    contrib = R.double()[None, None, :m] * v.double()[:, None, :m] * B[None, :, :m]
    mag = contrib.sum(2)
    if signmag:
        mag = mag * (1.0 - 2.0 * B[None, :, bits - 1])
    return (mag - R.double()[bits]).float()  # [n, 2^b]


def nearest(w, a, V):
    """Pattern of the nearest reachable level of each weight (rule in the module doc)."""
    inf = torch.tensor(float("inf"))
    lo = torch.where(V, a, inf).min(1).values
    hi = torch.where(V, a, -inf).max(1).values
    wc = torch.minimum(torch.maximum(w, lo), hi)
    t, perm = torch.sort(a, dim=1, stable=True)
    Vs = torch.gather(V, 1, perm)
    dist = torch.where(Vs, (wc[:, None] - t).abs(), inf)
    j = torch.argmin(dist, dim=1)  # the first minimum: the lower level, then the smaller p
    return torch.gather(perm, 1, j[:, None])[:, 0]


def case(out, name, w, R, bits, sa0, sa1, v, lam, form, sigma=0.0, signmag=False):
    n = w.numel()
    x = w.clone().requires_grad_(True)
    Rp = R.clone().requires_grad_(True)
    a = own_levels(Rp, v, bits, signmag)
    V = reachable(sa0, sa1, bits)
    p = nearest(x.detach(), a.detach(), V)
    if form == "mse":
        d = x - torch.gather(a, 1, p[:, None])[:, 0]
        Q = (1 << bits) - 1
        loss = lam * (Q / n) * (d.double() ** 2).sum()
    else:
        e = torch.exp(-((x.double()[:, None] - a.double()) ** 2) / (sigma * sigma))
        loss = -lam * (V.double() * e).sum()
    loss.backward()
    for k, t in (("w", w), ("R", R), ("sa0", sa0.float()), ("sa1", sa1.float()), ("var", v),
                 ("p", p.float()), ("loss", loss.float().reshape(1)), ("dw", x.grad),
                 ("dR", Rp.grad)):
        save(out, f"faults_{name}_{k}", t)


def codes(out, gen):
    """Faulty codes and nearest reachable codes (in value, ties to the lower) for random codes of
    4 bits, index, two's complement and sign-magnitude. Rows: k, sa0, sa1, then per encoding
    code, faulty, near. The stored pattern is the code's (sign-magnitude's 0 is 0000)."""
    n, bits = 64, 4
    sa0, sa1 = masks(n, bits, 0.3, 0.5, gen)
    k = torch.randint(0, 1 << bits, (n,), generator=gen)
    rows = [k.float(), sa0.float(), sa1.float()]
    top = 1 << (bits - 1)
    for enc in ("index", "twos", "signmag"):
        def value(p):
            if enc == "twos":
                return p - (1 << bits) * ((p >> (bits - 1)) & 1)
            if enc == "signmag":
                return (p & (top - 1)) * (1 - 2 * ((p >> (bits - 1)) & 1))
            return p
        code = value(k)
        stored = torch.where(code < 0, top | -code, code) if enc == "signmag" else k
        faulty = value((stored & ~sa0) | sa1)
        P = torch.arange(1 << bits)[None, :].expand(n, -1)
        vals = value(P)
        V = reachable(sa0, sa1, bits)
        dist = torch.where(V, (vals - code[:, None]).abs(), torch.tensor(1 << 20))
        # the lowest value among the nearest: sort by value first, then the first minimum
        vs, perm = torch.sort(vals, dim=1, stable=True)
        j = torch.argmin(torch.gather(dist, 1, perm), dim=1)
        near = torch.gather(vs, 1, j[:, None])[:, 0]
        rows += [code.float(), faulty.float(), near.float()]
    save(out, "faults_codes", torch.stack(rows))


def main(out):
    gen = torch.Generator().manual_seed(20241204)
    n = 240

    def lognormal(nn, bits, r):
        """Our design's multipliers: exp(N(-s^2/2, s^2)), s^2 = ln(1 + r^2)."""
        s2 = torch.log1p(torch.tensor(r * r, dtype=torch.float64))
        z = torch.randn(nn, bits, generator=gen, dtype=torch.float64)
        return torch.exp(-s2 / 2 + s2.sqrt() * z).float()

    ones = {b: torch.ones(n, b) for b in (3, 4)}
    R4 = torch.tensor([0.011, 0.023, 0.041, 0.083, 0.0755])
    R3 = torch.tensor([0.02, 0.041, 0.079, 0.07])
    w = torch.randn(n, generator=gen) * 0.05
    z4 = torch.zeros(n, dtype=torch.long)
    sa0, sa1 = masks(n, 4, 0.2, 0.4, gen)
    case(out, "f4", w, R4, 4, sa0, sa1, ones[4], 100.0, "mse")  # fault-aware
    w = torch.randn(n, generator=gen) * 0.05
    case(out, "v3", w, R3, 3, z4, z4, lognormal(n, 3, 0.3), 50.0, "mse")  # variability-aware
    w = torch.randn(n, generator=gen) * 0.05
    sa0, sa1 = masks(n, 4, 0.1, 0.3, gen)
    case(out, "fv4", w, R4, 4, sa0, sa1, lognormal(n, 4, 0.2), 200.0, "mse")  # both
    # two's complement grid of step 0.01 (R = s*[1, 2, 4, -8], offset 0), SA0 only
    w = torch.randn(n, generator=gen) * 0.03
    sa0, sa1 = masks(n, 4, 0.2, 0.0, gen)
    Rt = torch.tensor([0.01, 0.02, 0.04, -0.08, 0.0])
    case(out, "tw4", w, Rt, 4, sa0, sa1, ones[4], 10.0, "mse")
    # QFALT with faults and variability
    w = torch.randn(n, generator=gen) * 0.05
    sa0, sa1 = masks(n, 3, 0.2, 0.5, gen)
    case(out, "q3", w, R3, 3, sa0, sa1, lognormal(n, 3, 0.1), 0.5, "qfalt", sigma=0.03)
    # sign-magnitude grid of step 0.01 (R = s*[1, 2, 4, 0], offset 0): faults and variability,
    # the MSE form and QFALT's
    Rs = torch.tensor([0.01, 0.02, 0.04, 0.0, 0.0])
    w = torch.randn(n, generator=gen) * 0.03
    sa0, sa1 = masks(n, 4, 0.1, 0.5, gen)
    case(out, "sm4", w, Rs, 4, sa0, sa1, lognormal(n, 4, 0.4), 10.0, "mse", signmag=True)
    w = torch.randn(n, generator=gen) * 0.03
    case(out, "smq4", w, Rs, 4, sa0, sa1, lognormal(n, 4, 0.2), 0.5, "qfalt", sigma=0.01,
         signmag=True)
    codes(out, gen)


if __name__ == "__main__":
    main(sys.argv[1])
