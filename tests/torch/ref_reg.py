"""PyTorch 1.13 references for the regularization-based quantizer (lb_quant LB_Q_REG,
tests/test_torch_reg.c), written from methods.md sec. 2 and docs/reg.md (not from any other code):
levels a = S*R (S[k][i] = bit i of k, S[k][b] = -1), the per-layer init
s = 2*mean|w|/sqrt((2^b-1)/2) (rounded to 16 significant bits, as lowbit does), the nearest level
(w clamped into the level range, ties to the lower level, equal levels to the smaller k), the
eval snap, and the regularizer (Q/N) sum d^2 or (Q/N) sum 1 - exp(-d^2/sigma^2) (sigma = R_0 or
alpha, held constant) times lambda, with its gradients by autograd w.r.t. the weights and R. The
learned-step kind snaps with LSQ's rounding (half to even) and gives alpha no regularizer gradient.
Per case it writes reg_<case>_x, _R (R per channel, or alpha), _y (eval snap), _loss, _dx, _dR."""
import math
import sys

import torch

from refio import save


def init_step(w, bits, per_channel):
    """s per channel (or per tensor) in float32, then rounded to 16 significant bits."""
    with torch.no_grad():
        if per_channel:
            m = w.abs().reshape(w.shape[0], -1).mean(dim=1)
        else:
            m = w.abs().mean().reshape(1)
        s = (2.0 * m / math.sqrt(((1 << bits) - 1) / 2.0)).clamp(min=1e-8)
    out = []
    for v in s.tolist():
        mant, e = math.frexp(v)
        out.append(math.ldexp(round(mant * 65536.0), e - 16))
    return torch.tensor(out, dtype=torch.float32)


def R_of(s, bits):
    """R = s*[2^0, .., 2^(b-1), (2^b-1)/2] per channel: [ch, b+1]."""
    mult = [float(1 << i) for i in range(bits)] + [((1 << bits) - 1) / 2.0]
    return (s.double()[:, None] * torch.tensor(mult, dtype=torch.float64)[None, :]).float()


def levels(R, bits):
    """a[c][k] = sum_i bit_i(k) R[c][i] - R[c][b], in float64, rounded to float32 once."""
    k = torch.arange(1 << bits)
    cols = [((k >> i) & 1).double() for i in range(bits)] + [-torch.ones(1 << bits).double()]
    S = torch.stack(cols, dim=1)  # [2^b, b+1]
    return (R.double() @ S.t()).float()


DEPLOY_BITS = 12


def deployed(R):
    """Learned levels as deployed (eval snap, stored indices, integer model): R rounded half to
    even onto multiples of g = 2^(e - 12), 2^e the smallest power of two >= sum_i |R_i|, per
    channel (lowbit's lb_quant.h)."""
    out = []
    for Rc in R.double():
        m = float(Rc.abs().sum())
        fr, e = math.frexp(m)
        if fr == 0.5:
            e -= 1
        g = math.ldexp(1.0, e - DEPLOY_BITS)
        out.append(torch.round(Rc / g) * g)
    return torch.stack(out).float()


def nearest(wc, a_c):
    """Index k of the nearest level of each weight of one channel (see the module doc)."""
    t, perm = torch.sort(a_c, stable=True)
    w = torch.minimum(torch.maximum(wc, t[0]), t[-1])
    j = torch.argmin((w[:, None] - t[None, :]).abs(), dim=1)  # first minimum: the lower level
    return perm[j]


def case(out, name, w, bits, kind, form, lam, per_channel=False, R=None, alpha=None):
    ch = w.shape[0] if per_channel else 1
    wf = w.reshape(ch, -1)
    n_all = w.numel()
    Q = (1 << bits) - 1
    x = wf.clone().requires_grad_(True)
    if kind == "step":
        al = alpha.clone().requires_grad_(True)
        qn, qp = 1 << (bits - 1), (1 << (bits - 1)) - 1
        code = torch.clamp(x.detach() / al.detach()[:, None], -qn, qp).round()
        lev = code * al.detach()[:, None]
        y = lev
        sig = al.detach()[:, None]
        Rsave = al.detach()
    else:
        if R is None:
            R = R_of(init_step(w, bits, per_channel), bits)
        Rp = R.clone().requires_grad_(True)
        a = levels(Rp, bits)  # [ch, 2^b], differentiable in R
        ks = torch.stack([nearest(x.detach()[c], a.detach()[c]) for c in range(ch)])
        lev = torch.gather(a, 1, ks)
        # the eval snap: deployed levels for the learned kind (the regularizer uses R itself)
        ad = levels(deployed(R), bits) if kind == "learned" else a.detach()
        kd = torch.stack([nearest(x.detach()[c], ad[c]) for c in range(ch)])
        y = torch.where(torch.isnan(x.detach()), x.detach(), torch.gather(ad, 1, kd))
        sig = Rp.detach()[:, :1]
        Rsave = R
    d = x - lev
    if form == "mse":
        L = (d * d).sum()
    else:
        L = (1.0 - torch.exp(-(d * d) / (sig * sig))).sum()
    loss = lam * (Q / n_all) * L
    loss.backward()
    dR = torch.zeros(1) if kind == "step" else Rp.grad
    if kind == "fixed":
        dR = torch.zeros_like(Rsave)
    for k, v in (("x", wf), ("R", Rsave), ("y", y), ("loss", loss.reshape(1)), ("dx", x.grad),
                 ("dR", dR)):
        save(out, f"reg_{name}_{k}", v)


def main(out):
    gen = torch.Generator().manual_seed(20240612)

    def randn(*shape, scale=1.0):
        return torch.randn(*shape, generator=gen) * scale

    # fixed levels from the data-driven init, per tensor and per channel, both forms
    case(out, "fix4_mse", randn(16, 8, 3, 3, scale=0.05), 4, "fixed", "mse", 100.0)
    case(out, "fix2_gauss", randn(16, 8, 3, 3, scale=0.05), 2, "fixed", "gauss", 3.0)
    wpc = randn(12, 6, 3, 3, scale=0.05) * torch.linspace(0.2, 3.0, 12).view(12, 1, 1, 1)
    case(out, "fixpc4_mse", wpc, 4, "fixed", "mse", 500.0, per_channel=True)
    # learned levels: init R perturbed off the grid (and for 3 bits out of k order)
    w = randn(16, 8, 3, 3, scale=0.05)
    R = R_of(init_step(w, 4, False), 4) * (0.9 + 0.2 * torch.rand(1, 5, generator=gen))
    case(out, "lrn4_mse", w, 4, "learned", "mse", 100.0, R=R)
    w = randn(10, 4, 3, 3, scale=0.05)
    R = torch.tensor([[0.03, 0.011, 0.05, 0.04]])
    case(out, "lrn3_gauss", w, 3, "learned", "gauss", 2.0, R=R)
    w = randn(8, 16, 3, 3, scale=0.05)
    R = R_of(init_step(w, 8, True), 8) * (0.97 + 0.06 * torch.rand(8, 9, generator=gen))
    case(out, "lrnpc8_mse", w, 8, "learned", "mse", 1000.0, per_channel=True, R=R)
    # learned step: LSQ grid with a given alpha
    w = randn(16, 8, 3, 3, scale=0.05)
    case(out, "stp4_mse", w, 4, "step", "mse", 100.0, alpha=torch.tensor([0.0123]))
    case(out, "stp3_gauss", w, 3, "step", "gauss", 2.0, alpha=torch.tensor([0.031]))


if __name__ == "__main__":
    main(sys.argv[1])
