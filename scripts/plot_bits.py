#!/usr/bin/python3
"""Learned bit-widths of a --quant sliced checkpoint (`lowbit plot bits`): the JSON lines lowbit
writes ({"layer","q":"w"|"a","bits":[per slice]}) -> OUT.svg and OUT.png. Top panel: every weight
slice (output channel) as a bar, layers side by side in network order, each layer's mean as a
line; bottom panel: one bar per activation quantizer (a slice per tensor). Not the checkpoint
reader (lowbit writes the lines). Needs matplotlib.

Usage: python3 scripts/plot_bits.py BITS.jsonl OUT  (OUT without extension, or .svg/.png)"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, out = sys.argv[1], sys.argv[2]
    base = os.path.splitext(out)[0] if out.endswith((".svg", ".png")) else out
    recs = [json.loads(l) for l in open(path) if l.strip()]
    w = [r for r in recs if r["q"] == "w"]
    a = [r for r in recs if r["q"] == "a"]
    fig, axes = plt.subplots(2, 1, figsize=(13, 7.5), gridspec_kw={"height_ratios": [3, 2]})
    ax = axes[0]
    x0, ticks, labels = 0, [], []
    for i, r in enumerate(w):
        b = r["bits"]
        xs = list(range(x0, x0 + len(b)))
        ax.bar(xs, b, width=1.0, color="C%d" % (i % 10), edgecolor="none")
        m = sum(b) / len(b)
        ax.hlines(m, x0 - 0.5, x0 + len(b) - 0.5, colors="k", linewidth=1)
        ticks.append(x0 + (len(b) - 1) / 2)
        labels.append("%s\n%.2f b" % (r["layer"], m))
        x0 += len(b) + 2
    ax.set_xticks(ticks)
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("weight bits per slice")
    ax.set_ylim(0, 8.5)
    ax.set_title("learned bit-widths (bars: slices; black: layer mean)")
    ax = axes[1]
    ax.bar(range(len(a)), [r["bits"][0] for r in a], color="C1")
    ax.set_xticks(range(len(a)))
    ax.set_xticklabels([r["layer"] for r in a], fontsize=8)
    ax.set_ylabel("activation bits (input of layer)")
    ax.set_ylim(0, 8.5)
    fig.tight_layout()
    fig.savefig(base + ".svg")
    fig.savefig(base + ".png", dpi=100)


if __name__ == "__main__":
    main()
