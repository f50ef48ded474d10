"""Runs lowbit's quantized ONNX exports (`lowbit export CKPT --onnx F --onnx-form qdq|int`) in
onnxruntime on real test images and compares them with lowbit's own evaluation. The onnxruntime
side of tests/cli/onnx_quant.sh and bench/onnx/agree.sh; not a general tool.

  ort_quant.py qdq MODEL DATA N DUMP [MIN]  the QDQ model on the first N (0: all) test images of
      the idx data set DATA, normalized with the file's lowbit.norm_mean/std; DUMP is
      `lowbit eval CKPT --dump-logits` (the float fake-quant model). Passes when the predictions
      agree on at least MIN of the images (default 0.998)
  ort_quant.py int MODEL DATA N DUMP  the integer-op model on the raw uint8 pixels; DUMP is
      `lowbit eval CKPT --integer --dump-logits`. Passes when every int32 logit is equal
Both print one line (agreement, images, accuracy against the labels, onnxruntime's seconds) and
exit 77 when onnxruntime is not installed. LOWBIT_ORT_OPT=0 turns onnxruntime's graph
optimizations off (default: its default level, as a deployment would run it).
"""
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
import lowbit_ckpt as lc  # noqa: E402


def session(model):
    import onnxruntime
    so = onnxruntime.SessionOptions()
    so.intra_op_num_threads = int(os.environ.get("LOWBIT_ORT_THREADS", "1"))
    if os.environ.get("LOWBIT_ORT_OPT", "1") == "0":
        so.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(model, so, providers=["CPUExecutionProvider"])


def metadata(model):
    import onnx
    return {p.key: p.value for p in onnx.load(model).metadata_props}


def run(model, x):
    s = session(model)
    name = s.get_inputs()[0].name
    t0 = time.time()
    out = np.concatenate([s.run(None, {name: x[i:i + 500]})[0] for i in range(0, len(x), 500)])
    return out, time.time() - t0


def main(a):
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        print("skip: onnxruntime is not installed for %s (scripts/deps.sh)" % sys.executable)
        return 77
    form, model, data, n, dump = a[0], a[1], a[2], int(a[3]), a[4]
    x, y = lc.load_idx(data, "t10k", n)
    t = np.loadtxt(dump, ndmin=2)
    if len(t) != len(x):
        print("FAIL %s: %d images, lowbit's dump has %d" % (dump, len(x), len(t)))
        return 1
    pred = t[:, 0].astype(np.int64)
    if form == "qdq":
        meta = metadata(model)
        mean = np.float32(meta["lowbit.norm_mean"].split(",")[0])
        std = np.float32(meta["lowbit.norm_std"].split(",")[0])
        xf = (np.asarray(x, np.float32)[:, None] / np.float32(255) - mean) / std
        out, sec = run(model, xf.astype(np.float32))
        p = out.argmax(1)
        agree = float((p == pred).mean())
        need = float(a[5]) if len(a) > 5 else 0.998
        good = agree >= need
        print("%s qdq %s: %d images, predictions agree %.4f (need %.4f), accuracy onnxruntime "
              "%.4f lowbit %.4f, %.2f s" % ("ok" if good else "FAIL", os.path.basename(model),
                                            len(x), agree, need, (p == y).mean(),
                                            (pred == y).mean(), sec))
        return 0 if good else 1
    if form == "int":
        out, sec = run(model, np.ascontiguousarray(np.asarray(x, np.uint8)[:, None]))
        lg = t[:, 1:].astype(np.int64)
        if out.dtype != np.int32 or out.shape != lg.shape:
            print("FAIL int %s: onnxruntime gave %s %s, lowbit %s" %
                  (os.path.basename(model), out.dtype, out.shape, lg.shape))
            return 1
        same = (out.astype(np.int64) == lg).all(1)
        p = out.argmax(1)  # the first maximum, as lowbit
        good = bool(same.all()) and bool((p == pred).all())
        print("%s int %s: %d images, logits equal on %d, predictions equal %.4f, accuracy %.4f, "
              "%.2f s" % ("ok" if good else "FAIL", os.path.basename(model), len(x),
                          int(same.sum()), (p == pred).mean(), (p == y).mean(), sec))
        if not good:
            i = int(np.argmin(same))
            print("  first difference: image %d: onnxruntime %s lowbit %s" %
                  (i, out[i].tolist(), lg[i].tolist()))
        return 0 if good else 1
    sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1:]))
