"""PyTorch 1.13 references for lb_quant (tests/test_torch_quant.c): the peer's LSQ fake quantizer
(shared/peer/peer_models.py; its math is copied here, the file is not imported) on weights
(signed, per-tensor), activations (unsigned, n_grad = C*H*W, init over the whole batch), 2/4/8
bits, a per-channel variant (s of shape [C,1,1,1], n_grad = elements per channel; written here,
the peer has none), a case of exact ties and bounds and one of quotients where true division and
multiplication by the reciprocal round differently, both with a given step. Per case it writes
<case>_x, _dy (inputs), _s (the step after the peer's init, or the given one), _y (forward),
_dx and _ds (gradients of sum(y*dy), ds including the gradient scale) as raw float32."""
import math
import sys

import torch

from refio import save


# ---- the peer's formulation (peer_models.py) --------------------------------------------------
def grad_scale(x, scale):
    y_out = x
    y_grad = x * scale
    return (y_out - y_grad).detach() + y_grad


def round_pass(x):
    return (x.round() - x).detach() + x


def bounds(bits, signed):
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


def lsq_init(x, qp, per_channel):
    """The peer's first-use init, s = 2*mean|x|/sqrt(Qp) clamped to >= 1e-8 (per channel:
    the mean over each output channel, s of shape [C,1,1,1])."""
    with torch.no_grad():
        if per_channel:
            m = x.abs().mean(dim=tuple(range(1, x.dim())), keepdim=True)
        else:
            m = x.abs().mean()
        return (2.0 * m / math.sqrt(qp)).clamp(min=1e-8)


def lsq_forward(x, s, qn, qp, n_for_grad):
    g = 1.0 / math.sqrt(n_for_grad * qp)
    s_used = grad_scale(s, g)
    # The peer's grad_scale returns (s - s*g) + s*g, which is not always s in float32 (about 1 in
    # 1000 values is an ulp off). lowbit divides by s itself; the cases below are chosen so the
    # two agree, and this guards that choice.
    assert torch.equal(s_used.detach(), s.detach()), "grad_scale moved s by an ulp"
    return round_pass(torch.clamp(x / s_used, -qn, qp)) * s_used


def case(out, name, x, dy, bits, signed, n_grad, per_channel=False, s_given=None):
    qn, qp = bounds(bits, signed)
    s0 = lsq_init(x, qp, per_channel) if s_given is None else torch.tensor(s_given)
    x = x.clone().requires_grad_(True)
    s = s0.clone().requires_grad_(True)
    y = lsq_forward(x, s, qn, qp, n_grad)
    y.backward(dy)
    # the same gradient in float64, for the record (how far PyTorch's float32 sum is off)
    x64 = x.detach().double().requires_grad_(True)
    s64 = s0.double().requires_grad_(True)
    g = 1.0 / math.sqrt(n_grad * qp)
    y64 = round_pass(torch.clamp(x64 / s64, -qn, qp)) * s64
    y64.backward(dy.double())
    rel = ((s.grad.double() - g * s64.grad).abs().max() / (g * s64.grad).abs().max()).item()
    if s_given is None:  # (the tie cases are built on float32 quotients; float64 has no ties)
        print(f"  {name}: ds float32 vs float64 rel {rel:.2e}")
    for k, v in (("x", x), ("dy", dy), ("s", s0), ("y", y), ("dx", x.grad), ("ds", s.grad)):
        save(out, f"quant_{name}_{k}", v)


def main(out):
    gen = torch.Generator().manual_seed(20240611)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    def relu_act(*shape):
        return torch.relu(randn(*shape, scale=0.8))  # exact zeros, as after ReLU

    # weights [cout][cin][kh][kw], signed, per-tensor, n_grad = numel
    for bits in (2, 4, 8):
        w = randn(16, 8, 3, 3, scale=0.1)
        case(out, f"w{bits}", w, randn(16, 8, 3, 3), bits, True, w.numel())
    # activations [n][c][h][w], unsigned, per-tensor, n_grad = C*H*W
    for bits in (2, 4, 8):
        a = relu_act(8, 16, 6, 6)
        case(out, f"a{bits}", a, randn(8, 16, 6, 6), bits, False, a[0].numel())
    # a large activation: threaded path, a long sum for ds
    a = relu_act(16, 32, 14, 14)
    case(out, "abig", a, randn(16, 32, 14, 14), 4, False, a[0].numel())
    # per-channel weights, signed 4-bit, n_grad = elements per channel
    w = randn(12, 6, 3, 3, scale=0.1) * torch.linspace(0.2, 3.0, 12).view(12, 1, 1, 1)
    case(out, "wpc4", w, randn(12, 6, 3, 3), 4, True, w[0].numel(), per_channel=True)
    # exact ties and bounds: s = 0.25 makes x = 0.25*u exact, so u lands on k + 0.5, -Qn, Qp
    for bits, signed, name in ((4, True, "tie_s4"), (4, False, "tie_u4")):
        qn, qp = bounds(bits, signed)
        us = [k + 0.5 for k in range(-qn - 2, qp + 2)] + [-qn, qp, -qn - 1, qp + 1, 0.0]
        us += [0.3, -0.3, qp - 0.2, -qn + 0.2]
        x = torch.tensor(us, dtype=torch.float32) * 0.25
        x = torch.cat([x, randn(64, scale=2.0)])
        case(out, name, x, randn(x.numel()), bits, signed, x.numel(), s_given=0.25)
    # true division: x/s and x*(1/s) differ by an ulp often enough to round differently next
    # to a tie; PyTorch divides (as lowbit does). Unsigned 8-bit, s = 0.1, such x collected.
    s = torch.tensor(0.1)
    xs = []
    for k in range(255):
        x0 = torch.tensor((k + 0.5) * 0.1, dtype=torch.float32)
        for d in range(-4, 5):
            x = x0
            for _ in range(abs(d)):
                x = torch.nextafter(x, torch.tensor(math.copysign(math.inf, d)))
            if torch.round(x / s) != torch.round(x * (1 / s)):
                xs.append(x.item())
    assert len(xs) >= 4, "no division/reciprocal disagreement found"
    x = torch.cat([torch.tensor(xs[:8]), relu_act(64 - len(xs[:8]))])
    case(out, "div_u8", x, randn(x.numel()), 8, False, x.numel(), s_given=0.1)


if __name__ == "__main__":
    main(sys.argv[1])
