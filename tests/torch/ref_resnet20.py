"""PyTorch 1.13 reference for one whole ResNet-20 training step (tests/test_torch_resnet.c): the
peer's ResNet-20 for 1x28x28 (shared/peer/peer_models.py: option-A shortcuts, BN after every conv,
global average pool, fc 64->10; its math is copied here functionally, the file is not imported),
in float32 ("rn_fp32") and with LSQ W4A4 ("rn_lsq": first conv 8-bit weights on the raw image,
fc 8-bit weights and 8-bit unsigned input, the rest 4-bit signed weights and 4-bit unsigned
activations, per-tensor steps initialized from the data on this first training forward), and the
peer's SmallCNN with LSQ W4A4 ("cnn_lsq", the same plan).

One step in train mode on a fixed batch of 8: forward, mean cross-entropy, backward, SGD (lr 0.1,
momentum 0.9, Nesterov, weight decay 5e-4 on conv/fc weights only: lowbit never decays BN, bias
or quantizer parameters, so the torch param groups are built the same way).

Tensors are written under lowbit's parameter and state names, per case <c>:
  <c>_x, <c>_labels (as float)          the batch
  <c>_p0.<name>, <c>_s0.<name>          parameters and states before the step
  <c>_init.<name>                       LSQ steps right after their data-driven init (forward)
  <c>_logits, <c>_loss                  forward
  <c>_g.<name>                          gradients
  <c>_gmag.<layer>.{wq,aq}.param        magnitude of the sums behind each LSQ step gradient
  <c>_xq.<layer>                        quantized input activations of each layer that has them
  <c>_argmax.pool<k>                    the element each window of the k-th max pool chose
  <c>_p1.<name>, <c>_s1.<name>          parameters and states after the step
Two deliberate departures from the peer's literal code, both so the comparison measures lowbit
rather than float noise in the reference, and both mathematically the same quantizer:
  - grad_scale is s.detach() + (s*g - (s*g).detach()), whose value is exactly s; the peer's
    (s - s*g).detach() + s*g is an ulp off s for about 1 value in 1000 (see ref_quant.py);
  - the init mean |v| is summed in float64 and rounded once, as lowbit does (the peer's float32
    sum differs in the last bits, which would only add rounding noise at .5 boundaries)."""
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F

from refio import save

BATCH = 8
WIDTHS = ((16, 1), (32, 2), (64, 2))


def layer_names(arch):
    """(conv, bn, cin, cout, stride) of every conv in lowbit's order (the fc comes last)."""
    if arch == "cnn":
        return [("conv1", "bn1", 1, 32, 1), ("conv2", "bn2", 32, 32, 1),
                ("conv3", "bn3", 32, 64, 1), ("conv4", "bn4", 64, 64, 1)]
    convs = [("conv1", "bn1", 1, 16, 1)]
    cin = 16
    for s, (cout, stride) in enumerate(WIDTHS):
        for b in range(3):
            p = f"s{s + 1}.b{b}"
            st = stride if b == 0 else 1
            convs.append((f"{p}.conv1", f"{p}.bn1", cin, cout, st))
            convs.append((f"{p}.conv2", f"{p}.bn2", cout, cout, 1))
            cin = cout
    return convs


def bounds(bits, signed):
    if signed:
        return 2 ** (bits - 1), 2 ** (bits - 1) - 1
    return 0, 2 ** bits - 1


class Lsq:
    """The peer's LSQ quantizer on a step tensor s of shape [1] (lowbit's per-tensor layout)."""

    def __init__(self, s, bits, signed):
        self.s, self.bits = s, bits
        self.qn, self.qp = bounds(bits, signed)
        self.init = None

    def __call__(self, x, n_for_grad):
        if self.init is None:  # first training forward: s = 2*mean|x|/sqrt(Qp), clamped
            with torch.no_grad():
                m = np.float32(x.detach().double().abs().mean().item())
                s0 = np.float32(2.0) * m / np.float32(math.sqrt(self.qp))
                s0 = max(s0, np.float32(1e-8))
                self.s.copy_(torch.tensor([s0], dtype=torch.float32))
                self.init = self.s.detach().clone()
        g = 1.0 / math.sqrt(n_for_grad * self.qp)
        s = self.s.detach() + (self.s * g - (self.s * g).detach())
        u = torch.clamp(x / s, -self.qn, self.qp)
        y = ((u.round() - u).detach() + u) * s
        y.retain_grad()
        self.x, self.y, self.g = x.detach(), y, g
        return y

    def grad_magnitude(self):
        """g * (sum |dy*round(c)| + sum |dy*c| inside the clip range), c the clamped quotient:
        the magnitudes of the two float32 sums autograd adds for ds (the product's and the
        quotient's), which bound its rounding error; ds itself may be far smaller (they cancel)."""
        dy = self.y.grad.double()
        c = (self.x.double() / float(self.s)).clamp(-self.qn, self.qp)
        inside = ((self.x / self.s.detach() >= -self.qn) & (self.x / self.s.detach() <= self.qp))
        t = (dy * c.round()).abs().sum() + (dy * c * inside.double()).abs().sum()
        return torch.tensor([self.g * t.item()])


def make_params(gen, arch, quant):
    """Deterministic parameters (dict name -> leaf tensor), states, quantizers and groups."""
    P, S, Q = {}, {}, {}
    groups = {"weight": [], "nodecay": [], "quant": []}

    def param(name, t, group):
        P[name] = t.clone().requires_grad_(True)
        groups[group].append(name)

    convs = layer_names(arch)
    for i, (conv, bn, cin, cout, _) in enumerate(convs):
        std = math.sqrt(2.0 / (cout * 9))  # kaiming_normal_, fan_out, ReLU gain (as the peer)
        param(f"{conv}.weight", torch.randn(cout, cin, 3, 3, generator=gen) * std, "weight")
        # non-trivial affine and running statistics, so every term of BN is exercised
        param(f"{bn}.weight", 1.0 + 0.2 * torch.randn(cout, generator=gen), "nodecay")
        param(f"{bn}.bias", 0.1 * torch.randn(cout, generator=gen), "nodecay")
        S[f"{bn}.running_mean"] = 0.1 * torch.randn(cout, generator=gen)
        S[f"{bn}.running_var"] = 1.0 + 0.5 * torch.rand(cout, generator=gen)
    fin = 64 * 7 * 7 if arch == "cnn" else 64
    bound = 1.0 / math.sqrt(fin)
    param("fc.weight", (torch.rand(10, fin, generator=gen) * 2 - 1) * bound, "weight")
    param("fc.bias", (torch.rand(10, generator=gen) * 2 - 1) * bound, "nodecay")
    if quant:
        layers = [c[0] for c in convs] + ["fc"]
        for i, name in enumerate(layers):
            first, last = i == 0, i == len(layers) - 1
            wb = 8 if first or last else 4
            ab = None if first else (8 if last else 4)
            # lowbit's defaults before init: step 1; state = [initialized flag 0, initial step 1]
            # (init on the first training forward; the initial step sets the step's floor)
            param(f"{name}.wq.param", torch.ones(1), "quant")
            S[f"{name}.wq.state"] = torch.tensor([0.0, 1.0])
            Q[f"{name}.wq"] = Lsq(P[f"{name}.wq.param"], wb, True)
            if ab:
                param(f"{name}.aq.param", torch.ones(1), "quant")
                S[f"{name}.aq.state"] = torch.tensor([0.0, 1.0])
                Q[f"{name}.aq"] = Lsq(P[f"{name}.aq.param"], ab, False)
    return P, S, Q, groups


def forward(arch, P, S, Q, x, argmax):
    """Logits; appends each max pool's winning indices to argmax."""
    def conv(name, x, stride):
        if f"{name}.aq" in Q:
            x = Q[f"{name}.aq"](x, x[0].numel())
        w = P[f"{name}.weight"]
        if f"{name}.wq" in Q:
            w = Q[f"{name}.wq"](w, w.numel())
        return F.conv2d(x, w, None, stride, 1)

    def fc(x):
        if "fc.aq" in Q:
            x = Q["fc.aq"](x, x[0].numel())
        w = P["fc.weight"]
        if "fc.wq" in Q:
            w = Q["fc.wq"](w, w.numel())
        return F.linear(x, w, P["fc.bias"])

    def bn(name, x):
        return F.batch_norm(x, S[f"{name}.running_mean"], S[f"{name}.running_var"],
                            P[f"{name}.weight"], P[f"{name}.bias"], True, 0.1, 1e-5)

    def pool(x):  # remembers which element won each window (lowbit's argmax convention)
        y, idx = F.max_pool2d(x, 2, return_indices=True)
        argmax.append(idx)
        return y

    if arch == "cnn":  # the peer's SmallCNN
        x = F.relu(bn("bn1", conv("conv1", x, 1)))
        x = pool(F.relu(bn("bn2", conv("conv2", x, 1))))
        x = F.relu(bn("bn3", conv("conv3", x, 1)))
        x = pool(F.relu(bn("bn4", conv("conv4", x, 1))))
        return fc(torch.flatten(x, 1))
    x = F.relu(bn("bn1", conv("conv1", x, 1)))
    cin = 16
    for s, (cout, stride) in enumerate(WIDTHS):
        for b in range(3):
            p = f"s{s + 1}.b{b}"
            st = stride if b == 0 else 1
            out = F.relu(bn(f"{p}.bn1", conv(f"{p}.conv1", x, st)))
            out = bn(f"{p}.bn2", conv(f"{p}.conv2", out, 1))
            sc = x
            pad = cout - cin
            if st != 1 or pad:  # option A: subsample, zero channels pad//2 before, rest after
                sc = x[:, :, ::st, ::st]
                sc = F.pad(sc, (0, 0, 0, 0, pad // 2, pad - pad // 2))
            x = F.relu(out + sc)
            cin = cout
    return fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def run_case(out, tag, arch, quant, seed):
    gen = torch.Generator().manual_seed(seed)
    P, S, Q, groups = make_params(gen, arch, quant)
    x = torch.randn(BATCH, 1, 28, 28, generator=gen)
    labels = torch.randint(0, 10, (BATCH,), generator=gen)
    save(out, f"{tag}_x", x)
    save(out, f"{tag}_labels", labels.float())
    for k, v in P.items():
        save(out, f"{tag}_p0.{k}", v)
    for k, v in S.items():
        save(out, f"{tag}_s0.{k}", v)

    argmax = []
    logits = forward(arch, P, S, Q, x, argmax)
    for k, idx in enumerate(argmax):  # flat h*w index in the input plane, exact as float
        save(out, f"{tag}_argmax.pool{k + 1}", idx.float())
    for k, q in Q.items():
        save(out, f"{tag}_init.{k}.param", q.init)
        S[f"{k}.state"][0] = 1.0  # lowbit's initialized flag
        S[f"{k}.state"][1:] = q.init  # and the initial step (its floor is 1% of it)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    save(out, f"{tag}_logits", logits)
    save(out, f"{tag}_loss", loss.reshape(1))
    for k, v in P.items():
        save(out, f"{tag}_g.{k}", v.grad)
    for k, q in Q.items():
        save(out, f"{tag}_gmag.{k}.param", q.grad_magnitude())
        if k.endswith(".aq"):  # the quantized input activations, to count code flips
            save(out, f"{tag}_xq.{k[:-3]}", q.y)

    opt = torch.optim.SGD(
        [{"params": [P[k] for k in groups["weight"]], "weight_decay": 5e-4},
         {"params": [P[k] for k in groups["nodecay"]], "weight_decay": 0.0},
         {"params": [P[k] for k in groups["quant"]], "weight_decay": 0.0}],
        lr=0.1, momentum=0.9, nesterov=True)
    opt.step()
    for k, v in P.items():
        save(out, f"{tag}_p1.{k}", v)
    for k, v in S.items():
        save(out, f"{tag}_s1.{k}", v)


def main(out):
    torch.set_num_threads(1)  # the 2 cores are shared; results do not depend on it
    run_case(out, "rn_fp32", "resnet20", False, 20240620)
    run_case(out, "rn_lsq", "resnet20", True, 20240621)
    run_case(out, "cnn_lsq", "cnn", True, 20240622)


if __name__ == "__main__":
    main(sys.argv[1])
