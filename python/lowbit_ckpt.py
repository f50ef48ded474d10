"""lowbit checkpoints in PyTorch: read a lowbit safetensors file into an nn.Module whose float
evaluation gives lowbit's logits, and write a module back as a weights-only lowbit checkpoint.
Not a trainer, not a general safetensors library, no dependency on lowbit's C code; the format
and every tensor and metadata field are described in docs/checkpoint.md.

    import lowbit_ckpt as lc
    model = lc.to_torch("run.ckpt")              # the zoo, FP32 or lsq/fixed QAT (also --po2)
    x = lc.preprocess(images_u8, model.lowbit_cfg)  # pixel/255, then the recorded mean/std
    logits = model(x)                            # eval mode: lowbit's float evaluation
    lc.save("mine.ckpt", model)                  # `lowbit eval mine.ckpt` / export / --init
    tensors, meta = lc.load("run.ckpt")          # raw: name -> numpy array, metadata

Needs numpy and torch (tested with PyTorch 1.13). The modules' state_dict keys are lowbit's tensor
names, so load_state_dict(strict=True) checks that a file fits the model.
"""
import gzip
import json
import math
import os
import struct

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FORMAT_VERSION = "1"
BN_EPS = 1e-5
BN_MOMENTUM = 0.1
LSQ_FLOOR = 0.01  # a learned step is kept >= LSQ_FLOOR * its initial step (docs/robust.md)
_MIN_STEP = 1e-8

_DTYPES = {"F32": "<f4", "F64": "<f8", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
           "I8": "i1", "U8": "u1", "U16": "<u2", "U32": "<u4", "U64": "<u8", "BOOL": "?"}


# ---------------------------------------------------------------------------- the file format
def load(path):
    """Reads a safetensors file. Returns (tensors, meta): tensors maps each name to a numpy array
    (in file order), meta maps each metadata key to its string, except "lowbit.model" and
    "lowbit.train", which are decoded from JSON into dicts."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: shorter than a safetensors header" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("%s: header size %d beyond the file's %d bytes" % (path, n, len(blob)))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    raw_meta = header.pop("__metadata__", {}) or {}
    entries = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    tensors = {}
    for name, e in entries:
        if e["dtype"] not in _DTYPES:
            raise ValueError("%s: tensor %r has dtype %s, not supported" % (path, name, e["dtype"]))
        b, end = e["data_offsets"]
        if not 0 <= b <= end <= len(data):
            raise ValueError("%s: tensor %r lies outside the data section" % (path, name))
        arr = np.frombuffer(data[b:end], dtype=_DTYPES[e["dtype"]]).reshape(e["shape"])
        tensors[name] = arr.copy()
    meta = dict(raw_meta)
    for k in ("lowbit.model", "lowbit.train"):
        if k in meta:
            meta[k] = json.loads(meta[k])
    return tensors, meta


def write(path, tensors, metadata):
    """Writes a safetensors file: `tensors` maps names to arrays (written as F32 unless integer),
    `metadata` maps keys to strings (dict values are JSON-encoded). The header is padded with
    spaces so the data starts 8-aligned, as lowbit writes it; written to a temporary file and
    renamed into place."""
    header, blobs, at = {}, [], 0
    meta = {k: (json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else str(v))
            for k, v in metadata.items()}
    if meta:
        header["__metadata__"] = meta
    for name, arr in tensors.items():
        if isinstance(arr, torch.Tensor):
            arr = arr.detach().cpu().numpy()
        arr = np.asarray(arr)
        if arr.dtype.kind == "f":
            arr = arr.astype("<f4")
        dt = {v: k for k, v in _DTYPES.items()}.get(arr.dtype.str.replace("|", ""), None)
        if dt is None:
            raise ValueError("tensor %r: dtype %s has no safetensors name" % (name, arr.dtype))
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape),
                        "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------------- model config
def model_cfg(arch="cnn", **kw):
    """A lowbit.model dict with lowbit's defaults (docs/checkpoint.md): FP32 ("quant": "none")
    cnn on 1x28x28, 10 classes. Keyword arguments override fields, e.g. quant="lsq",
    norm_mean=[0.286, 0, 0], norm_std=[0.353, 1, 1]."""
    cfg = {"arch": arch, "in_c": 1, "in_h": 28, "in_w": 28, "classes": 10, "quant": "none",
           "wbits": 4, "abits": 4, "first_bits": 8, "last_bits": 8, "per_channel": 0,
           "layer_bits": ""}
    for k, v in kw.items():
        if k not in cfg and k not in ("norm_mean", "norm_std"):
            raise ValueError("model_cfg: unknown field %r" % k)
        cfg[k] = v
    return cfg


def _layer_bits(cfg, names):
    """(weight bits, input bits) per conv/linear layer, as lowbit's quantization plan assigns
    them: body wbits/abits, the first layer first_bits with a float input, the last last_bits
    for both, then layer_bits overrides "name=W/A,..."; 0 = float."""
    over = {}
    for item in filter(None, cfg.get("layer_bits", "").split(",")):
        name, wa = item.split("=")
        w, a = wa.split("/")
        over[name] = (int(w), int(a))
    unknown = set(over) - set(names)
    if unknown:
        raise ValueError("layer_bits names layers the model does not have: %s" % sorted(unknown))
    out = {}
    for i, name in enumerate(names):
        wb, ab = cfg["wbits"], cfg["abits"]
        if i == len(names) - 1:
            wb = ab = cfg["last_bits"]
        if i == 0:
            wb, ab = cfg["first_bits"], 0
        if name in over:
            wb, ab = over[name][0], (0 if i == 0 else over[name][1])
        out[name] = (wb, ab)
    return out


# ---------------------------------------------------------------------------- layers
def _grad_scale(x, scale):
    return (x - x * scale).detach() + x * scale


def _round_pass(x):
    return (torch.round(x) - x).detach() + x


def _po2(s):
    """lowbit's --po2 step 2^round(log2 s) (exact, from the binary exponent: docs/quantizers.md),
    straight-through for the rounding: the value is exactly 2^E, the gradient 2^E / s."""
    m, e = torch.frexp(s.detach())
    e = torch.where(m.double() * m.double() >= 0.5, e, e - 1)
    se = torch.ldexp(torch.ones_like(s.detach()), e)
    t = s * (se / s.detach())
    return se + (t - t.detach())


class Quantizer(nn.Module):
    """lowbit's uniform fake quantizer, kind "lsq" or "fixed": y = round(clip(x / s, -Qn, Qp)) * s,
    round half to even, s one step per channel (dimension 0 of a weight) or one per tensor.
    Tensors as lowbit names them: lsq has `param` (the learned steps) and `state` = [initialized
    flag, initial step per channel]; fixed has only `state` (the steps, max|x|/Qp)."""

    def __init__(self, kind, bits, signed, ch, po2=False):
        super().__init__()
        self.kind, self.bits, self.signed, self.ch, self.po2 = kind, bits, signed, ch, po2
        self.qn = 2 ** (bits - 1) if signed else 0
        self.qp = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1
        if kind == "lsq":
            self.param = nn.Parameter(torch.ones(ch))
            self.register_buffer("state", torch.cat([torch.zeros(1), torch.ones(ch)]))
        elif kind == "fixed":
            self.register_buffer("state", torch.ones(ch))
        else:
            raise NotImplementedError("quantizer kind %r is not supported by lowbit_ckpt "
                                      "(lsq, fixed)" % kind)

    def step(self):
        return self.param if self.kind == "lsq" else self.state

    def _per(self, x):  # reduction over all but dim 0 (per channel) or everything
        return x.reshape(x.shape[0], -1) if self.ch > 1 else x.reshape(1, -1)

    def forward(self, x, n_grad):
        view = [self.ch] + [1] * (x.dim() - 1) if self.ch > 1 else [1] * x.dim()
        if self.training and self.kind == "lsq" and self.state[0].item() == 0:
            with torch.no_grad():  # lowbit's data-driven init (mean |x| summed in double)
                m = self._per(x.detach()).double().abs().mean(1).float()
                s = torch.clamp(2.0 * m / np.float32(math.sqrt(self.qp)), min=_MIN_STEP)
                self.param.copy_(s)
                self.state.copy_(torch.cat([torch.ones(1), s]))
        if self.training and self.kind == "fixed":
            with torch.no_grad():
                s = self._per(x.detach()).abs().amax(1) / float(self.qp)
                self.state.copy_(torch.clamp(s, min=_MIN_STEP))
        s = self.step()
        if self.training and self.kind == "lsq":
            s = _grad_scale(s, 1.0 / math.sqrt(n_grad * self.qp))
            s = (_po2(s) if self.po2 else s).reshape(view)
            return _round_pass(torch.clamp(x / s, -self.qn, self.qp)) * s
        if self.po2:
            s = _po2(s)
        s = s.detach().reshape(view) if self.kind == "fixed" else s.reshape(view)
        t = torch.clamp(x / s, -self.qn, self.qp)
        if self.training:  # fixed: straight-through inside the range
            return _round_pass(t) * s
        return torch.round(t) * s

    @torch.no_grad()
    def project(self):
        """lowbit's projection after an optimizer step: an LSQ step stays >= LSQ_FLOOR times its
        initial step (a NaN step is reset to that floor). Returns how many were moved."""
        if self.kind != "lsq" or self.state[0].item() == 0:
            return 0
        lo = LSQ_FLOOR * self.state[1:]
        bad = ~(self.param > lo)
        self.param[bad] = lo[bad]
        return int(bad.sum())

    def extra_repr(self):
        return "%s %d-bit %s, %d step(s)" % (self.kind, self.bits,
                                             "signed" if self.signed else "unsigned", self.ch)


class QLayer(nn.Module):
    """A conv (no bias, OIHW weight) or linear (weight OI + bias) layer with optional weight (`wq`)
    and input (`aq`) quantizers: y = layer(aq(x), wq(w)), as lowbit computes it."""

    def __init__(self, kind, cin, cout, k=3, stride=1, wq=None, aq=None, groups=1):
        super().__init__()
        self.kind, self.stride, self.pad, self.groups = kind, stride, k // 2, groups
        shape = (cout, cin // groups, k, k) if kind == "conv" else (cout, cin)
        self.weight = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_normal_(self.weight, nonlinearity="relu")
        if kind == "linear":
            self.bias = nn.Parameter(torch.zeros(cout))
        if wq is not None:
            self.wq = wq
        if aq is not None:
            self.aq = aq

    def forward(self, x):
        if hasattr(self, "aq"):
            x = self.aq(x, x[0].numel())
        w = self.wq(self.weight, self.weight.numel()) if hasattr(self, "wq") else self.weight
        if self.kind == "conv":
            return F.conv2d(x, w, None, self.stride, self.pad, 1, self.groups)
        return F.linear(x, w, self.bias)


class BN(nn.Module):
    """Batch norm with lowbit's tensors (weight, bias, running_mean, running_var; no
    num_batches_tracked). Training: PyTorch's (momentum 0.1, unbiased running variance, eps 1e-5),
    which is what lowbit computes; eval: lowbit's arithmetic, a = float(gamma / sqrt(double(var) +
    eps)), y = (x - mean) * a + beta."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x):
        if self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                True, BN_MOMENTUM, BN_EPS)
        a = (self.weight.double() / torch.sqrt(self.running_var.double() + BN_EPS)).float()
        v = [1, -1, 1, 1]
        return (x - self.running_mean.view(v)) * a.view(v) + self.bias.view(v)


class _Net(nn.Module):
    """Shared by the zoo: builds each conv/linear with the quantizers the plan gives it."""

    def __init__(self, cfg, layer_names):
        super().__init__()
        self.lowbit_cfg = dict(cfg)
        if cfg.get("quant", "none") == "reg":
            raise NotImplementedError("lowbit_ckpt does not model the reg quantizer")
        self._bits = _layer_bits(cfg, layer_names) if cfg.get("quant", "none") != "none" else {}

    def _layer(self, name, kind, cin, cout, k=3, stride=1, groups=1, signed_in=False):
        wq = aq = None
        if name in self._bits:
            wb, ab = self._bits[name]
            q = self.lowbit_cfg["quant"]
            po2 = bool(self.lowbit_cfg.get("po2", 0))
            if wb > 0:
                wq = Quantizer(q, wb, True, cout if self.lowbit_cfg.get("per_channel") else 1,
                               po2)
            if ab > 0:  # unsigned after a ReLU; MobileNetV2's linear bottlenecks are signed
                aq = Quantizer("lsq" if q == "reg" else q, ab, signed_in, 1, po2)
        return QLayer(kind, cin, cout, k, stride, wq, aq, groups)

    def project(self):
        """Applies every LSQ step's floor (call after each optimizer step when training)."""
        return sum(m.project() for m in self.modules() if isinstance(m, Quantizer))


class CNN(_Net):
    """lowbit's cnn: conv32-conv32-maxpool-conv64-conv64-maxpool-fc, 3x3 convs, BN+ReLU each."""

    def __init__(self, cfg):
        super().__init__(cfg, ["conv1", "conv2", "conv3", "conv4", "fc"])
        c = cfg["in_c"]
        self.conv1, self.bn1 = self._layer("conv1", "conv", c, 32), BN(32)
        self.conv2, self.bn2 = self._layer("conv2", "conv", 32, 32), BN(32)
        self.conv3, self.bn3 = self._layer("conv3", "conv", 32, 64), BN(64)
        self.conv4, self.bn4 = self._layer("conv4", "conv", 64, 64), BN(64)
        feat = 64 * (cfg["in_h"] // 4) * (cfg["in_w"] // 4)
        self.fc = self._layer("fc", "linear", feat, cfg["classes"])

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2, 2)
        x = F.relu(self.bn3(self.conv3(x)))
        x = F.max_pool2d(F.relu(self.bn4(self.conv4(x))), 2, 2)
        return self.fc(torch.flatten(x, 1))


class Block(nn.Module):
    """CIFAR ResNet basic block; option A (parameter-free subsample + zero channels, half before
    and half after) or option B (1x1 conv `down` + BN `down_bn`) when the shape changes."""

    def __init__(self, net, p, cin, cout, stride, option_b):
        super().__init__()
        self.conv1, self.bn1 = net._layer(p + ".conv1", "conv", cin, cout, 3, stride), BN(cout)
        self.conv2, self.bn2 = net._layer(p + ".conv2", "conv", cout, cout, 3, 1), BN(cout)
        self.stride, self.cin, self.cout = stride, cin, cout
        self.proj = (stride != 1 or cin != cout) and option_b
        if self.proj:
            self.down = net._layer(p + ".down", "conv", cin, cout, 1, stride)
            self.down_bn = BN(cout)

    def forward(self, x):
        y = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        sc = x
        if self.proj:
            sc = self.down_bn(self.down(x))
        elif self.stride != 1 or self.cin != self.cout:
            sc = x[:, :, ::self.stride, ::self.stride]
            before = (self.cout - self.cin) // 2
            sc = F.pad(sc, (0, 0, 0, 0, before, self.cout - self.cin - before))
        return F.relu(y + sc)


class ResNet(_Net):
    """lowbit's resnet20 (16/32/64, 3 blocks per stage, option A) and resnet18 (64..512, 2 blocks,
    option B): stem conv1/bn1, blocks s<stage>.b<i>, global average pool, fc."""

    def __init__(self, cfg):
        r18 = cfg["arch"] == "resnet18"
        widths, blocks = ((64, 128, 256, 512), 2) if r18 else ((16, 32, 64), 3)
        names = ["conv1"]
        for s in range(len(widths)):
            for b in range(blocks):
                p = "s%d.b%d" % (s + 1, b)
                names += [p + ".conv1", p + ".conv2"] + ([p + ".down"] if r18 and s and not b
                                                         else [])
        names.append("fc")
        super().__init__(cfg, names)
        self.conv1, self.bn1 = self._layer("conv1", "conv", cfg["in_c"], widths[0]), BN(widths[0])
        cin = widths[0]
        for s, w in enumerate(widths):
            stage = nn.Module()
            for b in range(blocks):
                stride = 2 if (s > 0 and b == 0) else 1
                setattr(stage, "b%d" % b, Block(self, "s%d.b%d" % (s + 1, b), cin, w, stride, r18))
                cin = w
            setattr(self, "s%d" % (s + 1), stage)
        self.nstages, self.nblocks = len(widths), blocks
        self.fc = self._layer("fc", "linear", cin, cfg["classes"])

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        for s in range(self.nstages):
            stage = getattr(self, "s%d" % (s + 1))
            for b in range(self.nblocks):
                x = getattr(stage, "b%d" % b)(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def _ch(c, wm):
    """c * wm rounded to a multiple of 8, at least 8, never 10% below c * wm (docs/models.md)."""
    v = c * wm
    r = max(8, int(v + 4) // 8 * 8)
    return r + 8 if r < 0.9 * v else r


class MobileNet(_Net):
    """lowbit's mobilenetv1 / mobilenetv2 / efficientnet-lite0 (docs/models.md): conv +
    `<conv>_bn` + ReLU6 units, V1 blocks b<i>.dw/.pw, V2 and Lite0 blocks
    s<stage>.b<i>.expand/.dw/.project with residual adds, conv_last, global average pool, fc;
    stride 8 in total below 112 pixels, else 32. Lite0: B0's stages (5x5 depthwise convs in
    some), stem 32 and head 1280 whatever the multiplier."""

    V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
        [(1024, 2), (1024, 1)]
    V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
          (6, 160, 3, 2), (6, 320, 1, 1)]
    # EfficientNet-B0's stages as (t, c, n, s, depthwise kernel)
    LITE0 = [(1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
             (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3)]

    def __init__(self, cfg):
        wm, small = cfg.get("width_mult", 1.0), cfg["in_h"] < 112 and cfg["in_w"] < 112
        units, blocks = [], []  # (name, cin, cout, k, stride, groups, relu6, signed input)
        lite = cfg["arch"] == "efficientnet-lite0"
        c0 = 32 if lite else _ch(32, wm)
        units.append(("conv1", cfg["in_c"], c0, 3, 1 if small else 2, 1, True, True))
        cin = c0
        if cfg["arch"] == "mobilenetv1":
            for b, (c, st) in enumerate(self.V1):
                st = 1 if small and b == 11 else st
                cout = _ch(c, wm)
                units.append(("b%d.dw" % (b + 1), cin, cin, 3, st, cin, True, False))
                units.append(("b%d.pw" % (b + 1), cin, cout, 1, 1, 1, True, False))
                cin = cout
        else:
            stages = self.LITE0 if lite else [v + (3,) for v in self.V2]
            for s, (t, c, n, st0, k) in enumerate(stages):
                cout = _ch(c, wm)
                for b in range(n):
                    p = "s%d.b%d." % (s + 1, b)
                    st = (1 if small and s == 1 else st0) if b == 0 else 1
                    first = len(units)
                    if t != 1:  # the block input is a linear bottleneck: signed
                        units.append((p + "expand", cin, cin * t, 1, 1, 1, True, s > 0))
                    h = cin * t
                    units.append((p + "dw", h, h, k, st, h, True, t == 1 and s > 0))
                    units.append((p + "project", h, cout, 1, 1, 1, False, False))
                    if st == 1 and cin == cout:
                        blocks.append((first, len(units)))
                    cin = cout
            last = _ch(1280, wm) if wm > 1 and not lite else 1280
            units.append(("conv_last", cin, last, 1, 1, 1, True, True))
            cin = last
        super().__init__(cfg, [u[0] for u in units] + ["fc"])
        self.units, self.res = [u[0] for u in units], dict(blocks)
        self.relu6 = {u[0]: u[6] for u in units}
        for (name, ci, co, k, st, g, _, sig) in units:
            parent = self
            parts = name.split(".")
            for part in parts[:-1]:
                if not hasattr(parent, part):
                    setattr(parent, part, nn.Module())
                parent = getattr(parent, part)
            setattr(parent, parts[-1], self._layer(name, "conv", ci, co, k, st, g, sig))
            setattr(parent, parts[-1] + "_bn", BN(co))
        self.fc = self._layer("fc", "linear", cin, cfg["classes"])

    def _get(self, name):
        m = self
        for part in name.split("."):
            m = getattr(m, part)
        return m

    def forward(self, x):
        i, keep = 0, {}
        while i < len(self.units):
            if i in self.res:
                keep[self.res[i]] = x
            name = self.units[i]
            x = self._get(name + "_bn")(self._get(name)(x))
            if self.relu6[name]:
                x = F.relu6(x)
            i += 1
            if i in keep:
                x = x + keep.pop(i)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# ---------------------------------------------------------------------------- entry points
def build(cfg):
    """A fresh module for a lowbit.model dict (model_cfg() makes one)."""
    if cfg["arch"] == "cnn":
        return CNN(cfg)
    if cfg["arch"] in ("resnet20", "resnet18"):
        return ResNet(cfg)
    if cfg["arch"] in ("mobilenetv1", "mobilenetv2", "efficientnet-lite0"):
        return MobileNet(cfg)
    raise ValueError("unknown model %r (cnn, resnet20, resnet18, mobilenetv1, mobilenetv2, "
                     "efficientnet-lite0)" % cfg["arch"])


def to_torch(spec, **kw):
    """A PyTorch module for `spec`: a checkpoint path (its model with its weights, quantizer
    steps and BN statistics, in eval mode), an arch name ("cnn", "resnet20", "resnet18"; fresh,
    with model_cfg(spec, **kw)) or a lowbit.model dict (fresh)."""
    if isinstance(spec, dict):
        return build(spec)
    if not os.path.exists(spec) and spec in ("cnn", "resnet20", "resnet18", "mobilenetv1",
                                             "mobilenetv2", "efficientnet-lite0"):
        return build(model_cfg(spec, **kw))
    tensors, meta = load(spec)
    if "lowbit.model" not in meta:
        raise ValueError("%s: no lowbit.model metadata: not a lowbit checkpoint" % spec)
    model = build(meta["lowbit.model"])
    sd = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("optim.")}
    model.load_state_dict(sd, strict=True)
    model.lowbit_meta = meta
    return model.eval()


def save(path, model, test_acc=None, cfg=None):
    """Writes `model` as a weights-only lowbit checkpoint: every tensor of its state_dict and the
    metadata lowbit.format and lowbit.model (the model's lowbit_cfg, or `cfg`), plus
    lowbit.test_acc when given. No training state: lowbit evaluates, exports and fine-tunes
    (--init) it, but cannot --resume it. Record norm_mean/norm_std in the config, else lowbit
    normalizes with the statistics of the data it reads."""
    cfg = dict(cfg if cfg is not None else model.lowbit_cfg)
    meta = {"lowbit.format": FORMAT_VERSION, "lowbit.model": cfg}
    if test_acc is not None:
        meta["lowbit.test_acc"] = "%.6f" % test_acc
    write(path, model.state_dict(), meta)


def preprocess(images, cfg):
    """uint8 images (N,H,W) or (N,C,H,W) -> float32 NCHW normalized as lowbit does:
    (pixel / 255 - mean[c]) / std[c], in float32, with the model's recorded norm_mean/norm_std."""
    x = torch.from_numpy(np.array(images, dtype=np.uint8))
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if "norm_mean" not in cfg:
        raise ValueError("the model records no normalization (norm_mean/norm_std)")
    c = x.shape[1]
    mean = torch.tensor(cfg["norm_mean"][:c], dtype=torch.float32).view(1, c, 1, 1)
    std = torch.tensor(cfg["norm_std"][:c], dtype=torch.float32).view(1, c, 1, 1)
    return (x.float() / 255.0 - mean) / std


def load_idx(data_dir, split="t10k", limit=0):
    """(images uint8 N x H x W, labels int64) of an MNIST/Fashion-MNIST idx split ("t10k" or
    "train"), .gz or raw."""
    def read(stem):
        p = os.path.join(data_dir, stem)
        op = gzip.open if os.path.exists(p + ".gz") else open
        with op(p + ".gz" if op is gzip.open else p, "rb") as f:
            return f.read()
    img = read("%s-images-idx3-ubyte" % split)
    lab = read("%s-labels-idx1-ubyte" % split)
    n, h, w = struct.unpack(">III", img[4:16])
    if limit:
        n = min(n, limit)
    x = np.frombuffer(img, np.uint8, n * h * w, 16).reshape(n, h, w)
    y = np.frombuffer(lab, np.uint8, n, 8).astype(np.int64)
    return x, y
