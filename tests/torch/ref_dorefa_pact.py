"""PyTorch 1.13 twins of lowbit's DoReFa weight and PACT activation quantizers
(tests/test_torch_dorefa_pact.c), written from methods.md sec. 1 with autograd doing the
gradients:
- DoReFa (tensorpack's fw, the authors' reference): t = tanh(w); w' = t / max|t| * 0.5 + 0.5;
  y = 2 * round_ste(w' * n) / n - 1, n = 2^b - 1, the max over the tensor or per output channel
  (amax, so its gradient flows and ties share it).
- PACT (Choi et al.): y = clip(x, 0, alpha) on the grid s = alpha / n, written as
  round_ste(clamp(x / s, 0, n)) * s with s detached, plus (alpha - alpha.detach()) * (x / s > n):
  the value is the uniform grid's, dy/dx = 1 inside [0, n] (clamp's mask, bounds included) and
  dy/dalpha = 1 above alpha, 0 elsewhere (no LSQ residual term).
Per case it writes <case>_x, _dy, _y, _dx and for PACT _alpha (given, or from the data-driven
init alpha0 = n * 2 mean|x| / sqrt(n)) and _dalpha, as raw float32."""
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


def dorefa(w, bits, per_channel):
    n = float(2 ** bits - 1)
    t = torch.tanh(w)
    if per_channel:
        m = t.abs().flatten(1).amax(dim=1).view(-1, *([1] * (w.dim() - 1)))
    else:
        m = t.abs().amax()
    wp = t / m * 0.5 + 0.5
    return 2 * (RoundSTE.apply(wp * n) / n) - 1


def pact(x, alpha, bits):
    n = float(2 ** bits - 1)
    s = (alpha / n).detach()
    u = x / s
    y = RoundSTE.apply(torch.clamp(u, 0.0, n)) * s
    return y + (alpha - alpha.detach()) * (u.detach() > n).float()


def dorefa_case(out, name, w, dy, bits, per_channel):
    w = w.clone().requires_grad_(True)
    y = dorefa(w, bits, per_channel)
    y.backward(dy)
    for k, v in (("x", w), ("dy", dy), ("y", y), ("dx", w.grad)):
        save(out, f"dp_{name}_{k}", v)


def pact_case(out, name, x, dy, bits, alpha=None):
    n = 2 ** bits - 1
    if alpha is None:  # the data-driven init, in float32 as the C code computes it
        a0 = torch.tensor(float(n), dtype=torch.float32) * (
            2.0 * x.abs().mean() / torch.tensor(math.sqrt(n), dtype=torch.float32))
    else:
        a0 = torch.tensor(alpha, dtype=torch.float32)
    x = x.clone().requires_grad_(True)
    a = a0.clone().requires_grad_(True)
    y = pact(x, a, bits)
    y.backward(dy)
    for k, v in (("x", x), ("dy", dy), ("alpha", a0.reshape(1)), ("y", y), ("dx", x.grad),
                 ("dalpha", a.grad.reshape(1))):
        save(out, f"dp_{name}_{k}", v)


def main(out):
    gen = torch.Generator().manual_seed(20261204)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    # weights [16][8][3][3] (Kaiming-like scale) and a per-channel [12][6][3][3]
    for b in (2, 4, 7):
        dorefa_case(out, f"dw{b}", randn(16, 8, 3, 3, scale=0.15), randn(16, 8, 3, 3), b, False)
    dorefa_case(out, "dwpc4", randn(12, 6, 3, 3, scale=0.3), randn(12, 6, 3, 3), 4, True)
    # a wide spread: tanh saturates for the large weights
    dorefa_case(out, "dwide3", randn(10, 40, scale=2.0), randn(10, 40), 3, False)
    # activations [8][16][6][6] after a ReLU-like shift; alpha from the init or given
    for b in (2, 4):
        x = torch.relu(randn(8, 16, 6, 6) + 0.3)
        pact_case(out, f"a{b}init", x, randn(8, 16, 6, 6), b)
        pact_case(out, f"a{b}", x, randn(8, 16, 6, 6), b, alpha=1.3)
    # signed input: PACT clips the negatives at 0
    pact_case(out, "asigned4", randn(4, 100), randn(4, 100), 4, alpha=0.9)


if __name__ == "__main__":
    main(sys.argv[1])
