#!/usr/bin/env python3
"""Tables of bench/compare/run.sh (issue 13): reads RUNDIR/<cell>.log and the metrics JSONL of
each cell, prints markdown (final test accuracy, its distance to the model's FP32, epochs, wall
time summed over epochs, collapse warnings). Cells still running or failed are shown as such."""
import json
import os
import sys

R20_METHODS = [("lsq", "LSQ"), ("lsqpo2", "LSQ, po2 steps"), ("msqe", "MSQE po2, per channel"),
               ("gradpo2", "gradient po2, per channel"), ("maqd", "MaQD round-clip + WS"),
               ("dorefa", "DoReFa + PACT"), ("reg", "reg, learned levels")]


def cell(rundir, name):
    """(accuracy, epochs, wall seconds, warnings) of a finished cell, or a status string."""
    log = os.path.join(rundir, name + ".log")
    if not os.path.exists(log):
        running = os.path.exists(os.path.join(rundir, name + ".log.part"))
        return "running" if running else None
    with open(log) as f:
        text = f.read()
    if "# exit 0" not in text:
        code = text.rsplit("# exit", 1)[-1].split()[0] if "# exit" in text else "?"
        return "exit %s" % code
    rows = []
    with open(os.path.join(rundir, name + ".safetensors.metrics.jsonl")) as f:
        for line in f:
            d = json.loads(line)
            if "epoch" in d and "test_acc" in d:
                rows.append(d)
    if not rows:
        return "no metrics"
    last = rows[-1]
    acc = last.get("snapped_acc", last["test_acc"])
    wall = sum(r.get("epoch_s", 0) for r in rows)
    warn = sum(r.get("collapse_warnings", 0) for r in rows)
    return (acc, last["epoch"], wall, warn)


def fmt(c, ref=None):
    if c is None:
        return "-"
    if isinstance(c, str):
        return c
    acc, ep, wall, warn = c
    s = "%.2f%%" % (100 * acc)
    if ref is not None and not isinstance(ref, str) and ref is not None:
        s += " (%+.2f)" % (100 * (acc - ref[0]))
    s += ", %d ep, %.0f min" % (ep, wall / 60)
    if warn:
        s += ", %d warnings" % warn
    return s


def main():
    rundir = sys.argv[1] if len(sys.argv) > 1 else "bench/compare/runs"
    out = []
    fp = cell(rundir, "r20_fp32")
    bits = sorted({int(n.split("_w")[1].split(".")[0]) for n in os.listdir(rundir)
                   if n.startswith("r20_") and "_w" in n and n.endswith(".log")}, reverse=True)
    if fp or bits:
        out.append("### resnet20, every method (fine-tuned from FP32; in brackets: points vs FP32)\n")
        out.append("FP32: " + fmt(fp) + "\n")
        out.append("| method | " + " | ".join("W%dA%d" % (b, b) for b in bits) + " |")
        out.append("|---|" + "---|" * len(bits))
        for key, label in R20_METHODS:
            out.append("| %s | " % label + " | ".join(
                fmt(cell(rundir, "r20_%s_w%d" % (key, b)), fp if isinstance(fp, tuple) else None)
                for b in bits) + " |")
        out.append("")
    lbn = [(n, cell(rundir, n)) for n in ("lbn_cnn_bn_b128", "lbn_cnn_lbn_b8", "lbn_cnn_bn_b8")]
    if any(c for _, c in lbn):
        out.append("### Layer-Batch Norm (cnn, MaQD round-clip W4A4 from scratch)\n")
        out.append("| norm, batch | test accuracy |")
        out.append("|---|---|")
        ref = lbn[0][1] if isinstance(lbn[0][1], tuple) else None
        for n, c in lbn:
            out.append("| %s | %s |" % (n[8:].replace("_b", ", batch "), fmt(c, ref)))
        out.append("")
    for m in ("mobilenetv1", "mobilenetv2"):
        fp = cell(rundir, m + "_fp32")
        if fp is None:
            continue
        ref = fp if isinstance(fp, tuple) else None
        out.append("### %s W4A4, seed 003's matrix (in brackets: points vs FP32)\n" % m)
        out.append("FP32: %s; LSQ: %s\n" % (fmt(fp), fmt(cell(rundir, m + "_lsq_w4"), ref)))
        out.append("| scales | per tensor, no fix | per tensor, fixes | per channel, no fix "
                   "| per channel, fixes |")
        out.append("|---|---|---|---|---|")
        for key, label in (("msqe", "MSQE"), ("grad", "gradient")):
            out.append("| %s | " % label + " | ".join(
                fmt(cell(rundir, "%s_%s_%s_%s" % (m, key, g, f)), ref)
                for g in ("tensor", "channel") for f in ("nofix", "fix")) + " |")
        out.append("")
        others = [(label, cell(rundir, "%s_%s_w4" % (m, key))) for key, label in R20_METHODS
                  if key not in ("lsq", "msqe", "gradpo2")]
        if any(c for _, c in others):
            out.append("Other methods at W4A4 (2 epochs from the same FP32; MaQD's round-clip with "
                       "weight standardization starts from the plain FP32):\n")
            out.append("| method | test accuracy |")
            out.append("|---|---|")
            out += ["| %s | %s |" % (label, fmt(c, ref)) for label, c in others]
            out.append("")
    agree = os.path.join(rundir, "int_agree", "summary.md")
    if os.path.exists(agree):
        out.append("### Integer model vs float evaluation, exported C vs `eval --integer`\n")
        with open(agree) as f:
            out.append(f.read())
    print("\n".join(out))


if __name__ == "__main__":
    main()
