#!/usr/bin/python3
"""Scale trajectories of a `lowbit train --log-scales N` run: the {"event":"scales"} lines of its
metrics JSONL -> OUT.svg and OUT.png. One panel for the weight quantizers, one for the activation
quantizers; per layer the log2 of the step used (the exponent E for power-of-two kinds; per-channel
layers: the mean over channels with a band from the lowest to the highest), and dashed the learned
value behind it (grad-po2's e, lsq's log2 s). The legend counts each layer's exponent reversals
(a change of E opposite to its previous change, summed over channels): oscillating scales (seed 003) show there and as
saw-teeth. Not the logger (lowbit train writes the lines). Needs matplotlib.

Usage: python3 scripts/plot_scales.py METRICS.jsonl OUT  (OUT without extension, or .svg/.png)
Exit status 2 when the file has no scale records."""
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    series = {}  # (side, layer) -> dict
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                sys.exit("%s:%d: not a JSON line" % (path, n))
            if rec.get("event") != "scales":
                continue
            for q in rec["layers"]:
                key = (q["q"], q["layer"])
                s = series.setdefault(key, {"kind": q["kind"], "step": [], "v": [], "learned": [],
                                            "ch": []})
                vals = [v for v in q["log2_step"] if v is not None]
                if not vals:
                    continue
                s["step"].append(rec["step"])
                s["v"].append((sum(vals) / len(vals), min(vals), max(vals)))
                s["ch"].append(q["log2_step"])
                lv = q.get("e")
                if lv is None and q.get("s") is not None:
                    lv = [math.log2(x) for x in q["s"] if x and x > 0]
                s["learned"].append(sum(lv) / len(lv) if lv else None)
    return series


def reversals(values):
    """Changes of a channel's exponent opposite to its previous change, summed over channels."""
    n = 0
    for c in range(min(len(v) for v in values) if values else 0):
        last = 0
        seq = [v[c] for v in values if v[c] is not None]
        for a, b in zip(seq, seq[1:]):
            d = (b > a) - (b < a)
            if d and last and d != last:
                n += 1
            if d:
                last = d
    return n


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, out = sys.argv[1], sys.argv[2]
    base = os.path.splitext(out)[0] if out.endswith((".svg", ".png")) else out
    series = load(path)
    if not series:
        print("%s: no scale records (train with --log-scales N)" % path, file=sys.stderr)
        sys.exit(2)
    sides = [s for s in ("w", "a") if any(k[0] == s for k in series)]
    fig, axes = plt.subplots(len(sides), 1, figsize=(13, 4.2 * len(sides)), squeeze=False)
    for ax, side in zip(axes[:, 0], sides):
        for (sd, layer), s in sorted(series.items(), key=lambda kv: kv[0][1]):
            if sd != side or not s["step"]:
                continue
            mean = [v[0] for v in s["v"]]
            line, = ax.step(s["step"], mean, where="post",
                            label="%s %s (%d reversals)" % (layer, s["kind"], reversals(s["ch"])))
            lo = [v[1] for v in s["v"]]
            hi = [v[2] for v in s["v"]]
            if lo != hi:
                ax.fill_between(s["step"], lo, hi, step="post", alpha=0.15, color=line.get_color())
            pts = [(x, y) for x, y in zip(s["step"], s["learned"]) if y is not None]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], "--", lw=0.8,
                        color=line.get_color())
        ax.set_title("%s quantizers: log2 of the step (dashed: learned e / log2 s)"
                     % ("weight" if side == "w" else "activation"))
        ax.set_xlabel("optimizer step")
        ax.set_ylabel("log2 step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2 if len(ax.get_lines()) > 24 else 1, loc="upper left",
                  bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    for ext in ("svg", "png"):
        fig.savefig(base + "." + ext)
    print("wrote %s.svg and %s.png" % (base, base))


if __name__ == "__main__":
    main()
