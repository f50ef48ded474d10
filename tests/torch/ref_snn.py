"""Reference values for lowbit's spiking pieces (tests/test_torch_snn.c).

The LIF neuron and the MSE count loss come from snnTorch (PyPI, installed beside Debian's torch by
scripts/deps.sh with --no-deps) when it imports; otherwise from a PyTorch twin of the same
recurrence written from methods.md sec. 6 (U[t] = beta*U[t-1] + I[t] - S[t-1]*theta, S = H(U -
theta), the reset detached as snnTorch detaches it, surrogates as snnTorch defines them). The
file snn_source.f32 says which (1 snnTorch, 0 twin). The membrane grid (--mem-bits) is lowbit's
own design: twin only. Layer norm is torch.nn.functional.layer_norm over (C,H,W), no affine.
Per LIF case: <case>_x [T][N][C][HW], _dy, _spk, _mem, _dx, _beta, _dbeta."""
import math
import sys

import torch
import torch.nn.functional as F

from refio import save

try:
    import snntorch as snn
    from snntorch import surrogate
    import snntorch.functional as SF

    HAVE_SNN = True
except Exception:  # noqa: BLE001 - any import failure means: use the twin
    HAVE_SNN = False

T, N, C, HW = 6, 3, 4, 5


class Spike(torch.autograd.Function):
    """Heaviside forward, snnTorch's surrogate backward (atan: alpha/2/(1+(pi/2 alpha x)^2),
    fast sigmoid: 1/(slope|x|+1)^2)."""

    @staticmethod
    def forward(ctx, x, kind, slope):
        ctx.save_for_backward(x)
        ctx.kind, ctx.slope = kind, slope
        return (x > 0).float()

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        a = ctx.slope
        if ctx.kind == "atan":
            d = a / 2 / (1 + (math.pi / 2 * a * x) ** 2)
        else:
            d = 1.0 / (a * x.abs() + 1.0) ** 2
        return g * d, None, None


def twin_lif(x, beta, reset, kind, slope, theta=1.0, mem_bits=0):
    mem = torch.zeros_like(x[0])
    spk_prev = torch.zeros_like(x[0])
    spks, mems = [], []
    step = theta / 2 ** (mem_bits - 2) if mem_bits else 1.0
    lo, hi = -(2 ** (mem_bits - 1)), 2 ** (mem_bits - 1) - 1
    for t in range(x.shape[0]):
        r = spk_prev.detach()
        b = beta.clamp(0, 1)
        if reset == "zero":
            mem = b * ((1 - r) * mem) + x[t]
        else:
            mem = b * mem + x[t] - r * theta
        if mem_bits:
            # the grid with a straight-through gradient, none where the code sits at either end
            m = torch.clamp(torch.round(mem / step), lo, hi)
            inside = ((m > lo) & (m < hi)).float()
            mem = (m * step).detach() + (mem - mem.detach()) * inside
        spk = Spike.apply(mem - theta, kind, slope)
        spks.append(spk)
        mems.append(mem)
        spk_prev = spk
    return torch.stack(spks), torch.stack(mems)


def snn_lif(x, beta, reset, kind, slope, learn):
    grad = surrogate.atan(alpha=slope) if kind == "atan" else surrogate.fast_sigmoid(slope=slope)
    lif = snn.Leaky(beta=beta, learn_beta=learn, threshold=1.0, spike_grad=grad,
                    reset_mechanism="subtract" if reset == "sub" else "zero")
    mem = lif.init_leaky()
    spks, mems = [], []
    for t in range(x.shape[0]):
        s, mem = lif(x[t], mem)
        spks.append(s)
        mems.append(mem)
    return torch.stack(spks), torch.stack(mems), lif.beta


def lif_case(out, name, reset, kind, slope, learn, seed, mem_bits=0):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(T, N, C, HW, generator=g) * 1.6 - 0.3).requires_grad_(True)
    dy = torch.randn(T, N, C, HW, generator=g)
    nb = C if learn == 2 else 1
    b0 = torch.rand(nb, generator=g) * 0.6 + 0.3
    shape = (C, 1) if learn == 2 else ()
    use_snn = HAVE_SNN and not mem_bits
    if use_snn:
        beta_in = b0.clone().reshape(shape) if learn else float(b0[0])
        spk, mem, beta = snn_lif(x, beta_in if learn else torch.tensor(beta_in), reset, kind,
                                 slope, bool(learn))
    else:
        beta = b0.clone().reshape(shape).requires_grad_(bool(learn))
        spk, mem = twin_lif(x, beta, reset, kind, slope, mem_bits=mem_bits)
    (spk * dy).sum().backward()
    save(out, name + "_x", x)
    save(out, name + "_dy", dy)
    save(out, name + "_spk", spk)
    save(out, name + "_mem", mem)
    save(out, name + "_dx", x.grad)
    save(out, name + "_beta", b0)
    db = beta.grad if learn and beta.grad is not None else torch.zeros(nb)
    save(out, name + "_dbeta", db.reshape(-1))


def ln_case(out):
    g = torch.Generator().manual_seed(11)
    x = (torch.randn(5, 3, 6, 7, generator=g) * 2 + 0.5).requires_grad_(True)
    dy = torch.randn(5, 3, 6, 7, generator=g)
    y = F.layer_norm(x, (3, 6, 7), eps=1e-5)
    (y * dy).sum().backward()
    save(out, "snn_ln_x", x)
    save(out, "snn_ln_dy", dy)
    save(out, "snn_ln_y", y)
    save(out, "snn_ln_dx", x.grad)


def count_case(out):
    g = torch.Generator().manual_seed(12)
    steps, n, k = 8, 6, 10
    spk = (torch.rand(steps, n, k, generator=g) < 0.4).float().requires_grad_(True)
    labels = torch.randint(0, k, (n,), generator=g)
    if HAVE_SNN:
        loss = SF.mse_count_loss(correct_rate=0.8, incorrect_rate=0.2)(spk, labels)
    else:
        target = torch.full((n, k), float(int(steps * 0.2)))
        target[torch.arange(n), labels] = float(int(steps * 0.8))
        loss = F.mse_loss(spk.sum(0), target) / steps  # snnTorch divides by T too
    loss.backward()
    save(out, "snn_cnt_counts", spk.sum(0))
    save(out, "snn_cnt_labels", labels.float())
    save(out, "snn_cnt_loss", loss.reshape(1))
    # every step of a count gets the count's gradient
    save(out, "snn_cnt_dcounts", spk.grad[0])


def main(out):
    torch.manual_seed(0)
    save(out, "snn_source", torch.tensor([1.0 if HAVE_SNN else 0.0]))
    lif_case(out, "snn_sub_atan", "sub", "atan", 2.0, 0, 1)
    lif_case(out, "snn_zero_atan", "zero", "atan", 2.0, 0, 2)
    lif_case(out, "snn_sub_fsig", "sub", "fsig", 25.0, 0, 3)
    lif_case(out, "snn_zero_fsig", "zero", "fsig", 25.0, 0, 4)
    lif_case(out, "snn_learn_layer", "sub", "atan", 2.0, 1, 5)
    lif_case(out, "snn_learn_chan", "zero", "atan", 2.0, 2, 6)
    lif_case(out, "snn_membits", "sub", "atan", 2.0, 0, 7, mem_bits=6)
    ln_case(out)
    count_case(out)
    print("ref_snn: LIF and count loss from", "snnTorch" if HAVE_SNN else "the PyTorch twin")


if __name__ == "__main__":
    main(sys.argv[1])
