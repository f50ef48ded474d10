"""The PyTorch side of tests/cli/onnx.sh: exports models to ONNX with Debian's torch 1.13 and
python3-onnx, with PyTorch's logits on real Fashion-MNIST images beside them, plus malformed
files for the error tests. Not a general tool.

  onnx_models.py make OUT DATA N   writes OUT/<model>.onnx and OUT/<model>.ref (PyTorch's logits,
      one line per image) for cnn (opset 10) and resnet20 (opset 14) (the zoo twins of
      ../shared/peer/peer_models.py) and gemmnet (opset 13; not in the zoo: 5x5 stride-2 conv
      with bias, ReLU6, depthwise conv, average and padded max pools, a residual add, Gemm +
      MatMul/Add head, dropout; normalized input),
      and the bad inputs: truncated.onnx, garbage.onnx, sigmoid.onnx (unsupported op),
      extdata.onnx (its external data file removed), twoinputs.onnx
  onnx_models.py corpus OUT  tiny models (8x8 input, a few channels) covering every supported
      op, the fuzzer's seed corpus (fuzz/corpus/onnx/)
  onnx_models.py ort MODEL DATA N DUMP  runs an ONNX file written by `lowbit export --onnx` in
      onnxruntime on the first N test images (normalized with the file's lowbit.norm_mean/std)
      and compares with DUMP as `compare` does; exits 77 when onnxruntime is not installed
  onnx_models.py compare REF DUMP  every image's logits within 1e-4 relative (max |diff| / max
      |logit|) of lowbit's `eval --dump-logits` and the same predictions (REF: logits, or
      another dump)
"""
import os
import sys

import numpy as np
import onnx
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
PEER = os.environ.get("LOWBIT_PEER", os.path.join(HERE, "..", "..", "..", "..", "shared", "peer"))
for p in (PEER, "/work/shared/peer"):
    if os.path.exists(os.path.join(p, "peer_models.py")):
        sys.path.insert(0, p)
        break
import lowbit_ckpt as lc  # noqa: E402
import peer_models as pm  # noqa: E402

torch.set_num_threads(1)
MEAN, STD = 0.2860, 0.3530  # gemmnet is imported with --mean/--std


class GemmNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 5, stride=2, padding=2, bias=True)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
        self.bn = nn.BatchNorm2d(8, eps=1e-3)
        self.pw = nn.Conv2d(8, 16, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.skip = nn.Conv2d(8, 16, 1, bias=True)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.w2 = nn.Parameter(torch.randn(10, 32) * 0.2)
        self.b2 = nn.Parameter(torch.randn(10) * 0.1)
        self.drop = nn.Dropout(0.25)

    def forward(self, x):
        x = F.relu6(self.stem(x))                      # 14x14
        y = F.relu(self.bn(self.dw(x)))
        y = F.avg_pool2d(y, 2)                         # 7x7
        y = self.bn2(self.pw(y))
        s = F.avg_pool2d(self.skip(x), 2)
        x = F.relu(y + s)
        x = F.max_pool2d(x, 3, stride=2, padding=1)    # 4x4
        x = self.drop(F.relu(self.fc1(x.reshape(x.shape[0], -1))))
        return torch.matmul(x, self.w2.t()) + self.b2  # MatMul + Add


def asym(out, img):
    """asym.onnx, written with onnx.helper (PyTorch's convs pad symmetrically): a 2x2 stride-2
    conv with pads [0,0,1,1] on 28x28, whose extra bottom/right pad is never read (lowbit takes
    it), then a Gemm; its reference is PyTorch's F.pad + conv2d + linear. asymbad.onnx: pads
    [1,1,2,2] on a 3x3 stride-1 conv, which lowbit must refuse."""
    from onnx import TensorProto, helper, numpy_helper
    g = torch.Generator().manual_seed(5)
    w = torch.randn(4, 1, 2, 2, generator=g)
    fw, fb = torch.randn(10, 4 * 14 * 14, generator=g) * 0.05, torch.randn(10, generator=g)

    def model(path, weight, pads, hw):
        inits = [numpy_helper.from_array(weight.numpy(), "conv.weight"),
                 numpy_helper.from_array(torch.randn(10, 4 * hw * hw).numpy(), "fc.weight"),
                 numpy_helper.from_array(fb.numpy(), "fc.bias")]
        if hw == 14:
            inits[1] = numpy_helper.from_array(fw.numpy(), "fc.weight")
        k, s = weight.shape[2], 2 if hw == 14 else 1
        nodes = [helper.make_node("Conv", ["x", "conv.weight"], ["c"], name="conv",
                                  kernel_shape=[k, k], strides=[s, s], pads=pads),
                 helper.make_node("Flatten", ["c"], ["f"], name="flat", axis=1),
                 helper.make_node("Gemm", ["f", "fc.weight", "fc.bias"], ["logits"], name="fc",
                                  transB=1)]
        gr = helper.make_graph(nodes, "asym",
                               [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 1, 28, 28])],
                               [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 10])],
                               inits)
        onnx.save(helper.make_model(gr, opset_imports=[helper.make_opsetid("", 13)]), path)

    model(os.path.join(out, "asym.onnx"), w, [0, 0, 1, 1], 14)
    model(os.path.join(out, "asymbad.onnx"), torch.randn(4, 1, 3, 3), [1, 1, 2, 2], 29)
    with torch.no_grad():
        y = F.conv2d(F.pad(img, (0, 1, 0, 1)), w, stride=2)
        logits = F.linear(torch.flatten(y, 1), fw, fb).numpy()
    np.savetxt(os.path.join(out, "asym.ref"), logits, fmt="%.9g")


def randomize_bn(m, g):
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            mod.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
            mod.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            mod.bias.data.copy_(torch.randn(c, generator=g) * 0.2)


def export(m, path, inputs=None, names=("x",), opset=10):
    m.eval()
    inputs = inputs if inputs is not None else (torch.zeros(1, 1, 28, 28),)
    # opset 10 writes F.pad as one Pad node and relu6 as Relu + Clip(max) attributes; 14
    # (PyTorch 1.13's default) computes F.pad's pads in an int64 subgraph lowbit folds, and Clip
    # takes its bounds as inputs. PRESERVE keeps BatchNormalization nodes (EVAL folds them into
    # the convs).
    torch.onnx.export(m, inputs, path, input_names=list(names), output_names=["logits"],
                      opset_version=opset, training=torch.onnx.TrainingMode.PRESERVE,
                      do_constant_folding=True)


def make(out, data, n):
    os.makedirs(out, exist_ok=True)
    x, _ = lc.load_idx(data, "t10k", n)
    img = torch.from_numpy(np.array(x, dtype=np.uint8)).unsqueeze(1).float() / 255.0
    g = torch.Generator().manual_seed(16)
    torch.manual_seed(16)
    models = {"cnn": (pm.build("cnn"), img, 10), "resnet20": (pm.build("resnet20"), img, 14),
              "gemmnet": (GemmNet(), (img - MEAN) / STD, 13)}
    try:  # torchvision's own MobileNetV2 (not the zoo's): ReLU6 as Clip, depthwise convs, inverted
        # residual Adds, adaptive pooling + flatten + dropout + Linear; 1-channel stem for the data
        import torchvision
        mb = torchvision.models.mobilenet_v2(num_classes=10, width_mult=0.5)
        stem = mb.features[0][0]
        mb.features[0][0] = nn.Conv2d(1, stem.out_channels, 3, 2, 1, bias=False)
        models["mbv2"] = (mb, (img - MEAN) / STD, 13)
    except ImportError:
        print("torchvision absent (scripts/deps.sh: python3-torchvision): no mbv2")
    for name, (m, inp, opset) in models.items():
        randomize_bn(m, g)
        export(m, os.path.join(out, name + ".onnx"), opset=opset)
        with torch.no_grad():
            logits = m.eval()(inp).numpy()
        np.savetxt(os.path.join(out, name + ".ref"), logits, fmt="%.9g")
    asym(out, img)
    raw = open(os.path.join(out, "cnn.onnx"), "rb").read()
    open(os.path.join(out, "truncated.onnx"), "wb").write(raw[: len(raw) // 2])
    open(os.path.join(out, "garbage.onnx"), "wb").write(b"\xff" * 64 + raw[64:256])

    class Sig(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.fc = nn.Linear(4 * 26 * 26, 10)

        def forward(self, x):
            return self.fc(torch.flatten(torch.sigmoid(self.conv(x)), 1))

    export(Sig(), os.path.join(out, "sigmoid.onnx"))

    class Two(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(28 * 28, 10)

        def forward(self, a, b):
            return self.fc(torch.flatten(a + b, 1))

    z = torch.zeros(1, 1, 28, 28)
    export(Two(), os.path.join(out, "twoinputs.onnx"), (z, z), ("a", "b"))
    mp = onnx.load(os.path.join(out, "cnn.onnx"))
    onnx.save_model(mp, os.path.join(out, "extdata.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="extdata.bin", size_threshold=0)
    os.remove(os.path.join(out, "extdata.bin"))
    print("ok exported", ", ".join(models), "and the bad inputs to", out)


class Tiny(nn.Module):
    """Every op lowbit imports, at 8x8 with 2-4 channels: a seed for fuzz/fuzz_onnx.c."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(1, 2, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(2)
        self.c2 = nn.Conv2d(2, 2, 3, padding=1, groups=2)
        self.c3 = nn.Conv2d(2, 4, 1, bias=False)
        self.fc = nn.Linear(4 * 2 * 2, 4)
        self.w = nn.Parameter(torch.randn(4, 3))
        self.b = nn.Parameter(torch.randn(3))

    def forward(self, x):
        x = F.relu(self.bn(self.c1(x)))
        y = F.relu6(self.c2(x))
        x = F.max_pool2d(x + y, 2)                       # 4x4
        s = F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, 1, 1))  # option-A shortcut: 4x2x2
        x = F.avg_pool2d(self.c3(x), 2) + s
        x = nn.functional.dropout(x.reshape(x.shape[0], -1), 0.1, self.training)
        x = F.relu(self.fc(x))
        return torch.matmul(x, self.w) + self.b


def corpus(out):
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(1)
    m = Tiny()
    export(m, os.path.join(out, "tiny.onnx"), (torch.zeros(1, 1, 8, 8),))
    export(m, os.path.join(out, "tiny14.onnx"), (torch.zeros(1, 1, 8, 8),), opset=14)

    class Gap(nn.Module):
        def __init__(self):
            super().__init__()
            self.c = nn.Conv2d(3, 2, 1)
            self.fc = nn.Linear(2, 2)

        def forward(self, x):
            return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.c(x), 1), 1))

    export(Gap(), os.path.join(out, "gap.onnx"), (torch.zeros(1, 3, 4, 4),))
    print("ok corpus in", out)


def ort(model, data, n, dump):
    try:
        import onnxruntime
    except ImportError:
        print("skip: onnxruntime is not installed (pip install onnxruntime)")
        return 77
    meta = {p.key: p.value for p in onnx.load(model).metadata_props}
    mean = np.array([float(v) for v in meta["lowbit.norm_mean"].split(",")], np.float32)
    std = np.array([float(v) for v in meta["lowbit.norm_std"].split(",")], np.float32)
    x, _ = lc.load_idx(data, "t10k", n)
    x = np.array(x, dtype=np.float32)[:, None] / np.float32(255)
    x = (x - mean[0]) / std[0]
    sess = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]
    ref = dump + ".ort"
    np.savetxt(ref, out, fmt="%.9g")
    return compare(ref, dump)


def compare(ref, dump):
    r = np.loadtxt(ref, ndmin=2).astype(np.float32)
    t = np.loadtxt(dump, ndmin=2)
    if r.shape == t.shape:  # REF is a dump too (prediction, logits...)
        r = r[:, 1:]
    lg = t[:, 1:].astype(np.float32)
    if lg.shape != r.shape:
        print("FAIL %s: lowbit dumped %s logits, PyTorch has %s" % (dump, lg.shape, r.shape))
        return 1
    rel = np.abs(lg - r).max(1) / np.maximum(np.abs(r).max(1), 1e-30)
    same = float((lg.argmax(1) == r.argmax(1)).mean())
    good = rel.max() <= 1e-4 and same == 1.0
    print("%s %s: %d images, max rel diff %.3g, predictions equal %.4f" %
          ("ok" if good else "FAIL", os.path.basename(ref), len(r), rel.max(), same))
    return 0 if good else 1


if __name__ == "__main__":
    a = sys.argv[1:]
    if a and a[0] == "make":
        make(a[1], a[2], int(a[3]))
    elif a and a[0] == "corpus":
        corpus(a[1])
    elif a and a[0] == "ort":
        sys.exit(ort(a[1], a[2], int(a[3]), a[4]))
    elif a and a[0] == "compare":
        sys.exit(compare(a[1], a[2]))
    else:
        sys.exit(__doc__)
