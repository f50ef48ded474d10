"""PyTorch 1.13 references for lb_optim: SGD (momentum, with and without Nesterov) and AdamW over
three parameter groups (decayed weights, no-decay, quantizer) for 5 steps with per-step rates, and
the learning-rate schedules through torch's own schedulers. Hyperparameters are rounded to float32
first so the C side (float config) runs with exactly the same numbers."""
import math
import sys
import warnings

import numpy as np
import torch

from refio import save

out = sys.argv[1]
torch.manual_seed(1234)
# SequentialLR steps its inner scheduler with an explicit epoch at a milestone, which warns.
warnings.filterwarnings("ignore", message="The epoch parameter")


def f32(x):
    return float(np.float32(x))


# (offset, length, group) of the flat array; groups 0 weight, 1 no-decay, 2 quantizer. Must match
# SEGS in tests/test_torch_optim.c. Odd lengths exercise the vector bodies and their tails.
SEGS = [(0, 40, 0), (40, 7, 1), (47, 3, 2), (50, 61, 0), (111, 5, 1), (116, 9, 2)]
N = 125
STEPS = 5
p0 = torch.randn(N)
grads = torch.randn(STEPS, N) * torch.tensor([1.0, 0.3, 2.0, 0.05, 1.0]).view(STEPS, 1)
# lr[step][group]
lrs = [[f32(a), f32(a), f32(b)] for a, b in
       [(0.05, 0.01), (0.1, 0.02), (0.08, 0.015), (0.05, 0.01), (0.02, 0.004)]]
save(out, "optim_p0", p0)
save(out, "optim_grads", grads)
save(out, "optim_lr", torch.tensor(lrs))


def run(make_opt, wd):
    tensors = [p0[o:o + n].clone().requires_grad_(True) for o, n, _ in SEGS]
    groups = [{"params": [t for t, s in zip(tensors, SEGS) if s[2] == g],
               "weight_decay": wd if g == 0 else 0.0, "lr": lrs[0][g]} for g in range(3)]
    opt = make_opt(groups)
    traj = []
    for k in range(STEPS):
        for g in range(3):
            opt.param_groups[g]["lr"] = lrs[k][g]
        for t, (o, n, _) in zip(tensors, SEGS):
            t.grad = grads[k, o:o + n].clone()
        opt.step()
        traj.append(torch.cat([t.detach() for t in tensors]))
    return torch.stack(traj)


mom, wd_sgd = f32(0.9), f32(5e-4)
save(out, "optim_sgd_nesterov",
     run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=mom, nesterov=True), wd_sgd))
save(out, "optim_sgd_momentum",
     run(lambda g: torch.optim.SGD(g, lr=0.1, momentum=mom), wd_sgd))
save(out, "optim_sgd_plain", run(lambda g: torch.optim.SGD(g, lr=0.1), wd_sgd))
b1, b2, eps, wd_adamw = f32(0.9), f32(0.999), f32(1e-8), f32(0.01)
save(out, "optim_adamw",
     run(lambda g: torch.optim.AdamW(g, lr=1e-3, betas=(b1, b2), eps=eps), wd_adamw))


# Schedules: rates for steps 0..total through torch's schedulers, checked here against the closed
# form the C code implements (so a torch quirk cannot silently become the reference).
def sched_run(make, total):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=BASE)
    sch = make(opt)
    rates = []
    for _ in range(total + 1):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        sch.step()
    return rates


def closed(kind, t, total, warmup, ws, final=0.0, every=0, gamma=1.0):
    if t < warmup:
        return BASE * (ws + (1 - ws) * t / warmup)
    u = t - warmup
    if kind == "cosine":
        span = total - warmup
        return final + (BASE - final) * 0.5 * (1 + math.cos(math.pi * min(u, span) / span))
    if kind == "step":
        return BASE * gamma ** (u // every)
    return BASE


BASE = f32(0.1)
LS = torch.optim.lr_scheduler
cases = {
    # name: (torch scheduler factory, closed-form args); total 20 each
    "sched_cosine_warm": (
        lambda o: LS.SequentialLR(o, [LS.LinearLR(o, f32(0.01), 1.0, total_iters=5),
                                      LS.CosineAnnealingLR(o, T_max=15, eta_min=f32(1e-3))], [5]),
        ("cosine", 20, 5, f32(0.01), f32(1e-3))),
    "sched_cosine": (lambda o: LS.CosineAnnealingLR(o, T_max=20, eta_min=0.0),
                     ("cosine", 20, 0, 1.0, 0.0)),
    "sched_step_warm": (
        lambda o: LS.SequentialLR(o, [LS.LinearLR(o, f32(0.1), 1.0, total_iters=3),
                                      LS.StepLR(o, step_size=4, gamma=f32(0.5))], [3]),
        ("step", 20, 3, f32(0.1), 0.0, 4, f32(0.5))),
    "sched_const_warm": (lambda o: LS.LinearLR(o, f32(0.25), 1.0, total_iters=4),
                         ("const", 20, 4, f32(0.25))),
}
for name, (make, args) in cases.items():
    kind, total = args[0], args[1]
    got = sched_run(make, total)
    want = [closed(kind, t, total, *args[2:]) for t in range(total + 1)]
    for t, (a, b) in enumerate(zip(got, want)):
        assert abs(a - b) <= 1e-9 * abs(b) + 1e-15, (name, t, a, b)
    save(out, name, torch.tensor(got, dtype=torch.float64))
