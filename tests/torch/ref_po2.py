"""PyTorch 1.13 reference for `lsq --po2` (tests/test_torch_po2.c), written from methods.md 1b and
lb_quant.h: LSQ whose effective step is s_eff = 2^round(log2 s) per channel, straight-through for
the rounding of log2 s (ds_eff/ds = s_eff/s), LSQ's gradient scale g = 1/sqrt(N*Qp) on s.

The exponent is taken exactly from the binary exponent (s = m 2^e, m in [0.5, 1): e when
m >= sqrt(1/2), else e-1), not from a float log2 whose rounding could move the boundary.

Cases (tensor [2][3][20], per-channel steps chosen on both sides of octave boundaries and of the
sqrt(2) midpoints): w4 signed 4-bit, a3 unsigned 3-bit. Per case <c>: <c>_x, <c>_s (steps),
<c>_dy, <c>_y (forward), <c>_seff, <c>_dx, <c>_ds (gradient of the step parameters)."""
import math
import sys

import torch

from refio import save

STEPS = [0.1, 0.7071, 0.7072, 1.0, 0.35355, 0.353554, 3.0, 0.0625, 0.0884]


def po2(s):
    m, e = torch.frexp(s)
    e = torch.where(m.double() * m.double() >= 0.5, e, e - 1)
    return torch.ldexp(torch.ones_like(s), e)


def case(out, tag, bits, signed, steps, gen):
    qn, qp = (2 ** (bits - 1), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)
    ch, outer, inner = len(steps), 2, 20
    s = torch.tensor(steps, dtype=torch.float32, requires_grad=True)
    x = torch.randn(outer, ch, inner, generator=gen) * 2.0
    if not signed:
        x = x.abs()
    dy = torch.randn(outer, ch, inner, generator=gen)
    n = outer * inner  # the n_grad the C test binds with: elements per channel
    g = 1.0 / math.sqrt(n * qp)
    sg = s.detach() + (s * g - (s * g).detach())  # value exactly s, gradient g
    seff0 = po2(s.detach())
    r = (seff0 / s.detach())
    se = seff0 + (sg * r - (sg * r).detach())  # value exactly s_eff, gradient r (times g)
    se = se.view(1, ch, 1)
    xx = x.clone().requires_grad_(True)
    u = torch.clamp(xx / se, -qn, qp)
    y = ((u.round() - u).detach() + u) * se
    y.backward(dy)
    for k, v in (("x", x), ("s", s), ("dy", dy), ("y", y), ("seff", seff0), ("dx", xx.grad),
                 ("ds", s.grad)):
        save(out, f"{tag}_{k}", v)


def main(out):
    gen = torch.Generator().manual_seed(1234)
    case(out, "w4", 4, True, STEPS, gen)
    case(out, "a3", 3, False, [0.5, 0.2, 1.5], gen)


if __name__ == "__main__":
    main(sys.argv[1])
