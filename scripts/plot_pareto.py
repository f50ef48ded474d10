#!/usr/bin/python3
"""Pareto fronts of `lowbit plot pareto` (issue 14, docs/mixed.md): test accuracy against the
exported model's weight + activation bytes, one curve per method, one panel per model; each
method's own Pareto front drawn as a line through its non-dominated points, the others as dots.
Input: {"points": [{"model", "method", "label", "weight_bytes", "activation_bytes",
"accuracy"}, ...]} (lowbit checks the fields first). Writes OUT.svg and OUT.png. Needs
matplotlib. Not the trainer nor the byte counter (lowbit export prints the bytes).

Usage: python3 scripts/plot_pareto.py RESULTS.json OUT  (OUT without extension, or .svg/.png)"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402


def front(pts):
    """The non-dominated points (fewer bytes or higher accuracy), by bytes."""
    out, best = [], -1.0
    for p in sorted(pts, key=lambda p: (p["bytes"], -p["accuracy"])):
        if p["accuracy"] > best:
            out.append(p)
            best = p["accuracy"]
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, out = sys.argv[1], sys.argv[2]
    base = os.path.splitext(out)[0] if out.endswith((".svg", ".png")) else out
    pts = json.load(open(path))["points"]
    for p in pts:
        p["bytes"] = p["weight_bytes"] + p["activation_bytes"]
        p.setdefault("model", "")
    models = sorted({p["model"] for p in pts})
    fig, axes = plt.subplots(1, len(models), figsize=(6.5 * len(models), 4.8), squeeze=False)
    for ax, m in zip(axes[0], models):
        mine = [p for p in pts if p["model"] == m]
        methods = sorted({p["method"] for p in mine})
        for i, meth in enumerate(methods):
            q = [p for p in mine if p["method"] == meth]
            col = "C%d" % (i % 10)
            ax.scatter([p["bytes"] / 1024 for p in q], [100 * p["accuracy"] for p in q],
                       color=col, s=18, alpha=0.6)
            f = front(q)
            ax.plot([p["bytes"] / 1024 for p in f], [100 * p["accuracy"] for p in f],
                    color=col, marker="o", label=meth)
            for p in q:
                if p.get("label"):
                    ax.annotate(p["label"], (p["bytes"] / 1024, 100 * p["accuracy"]),
                                fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("weight + activation bytes of the exported model (KiB, log)")
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(m or "models")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(base + ".svg")
    fig.savefig(base + ".png", dpi=120)


if __name__ == "__main__":
    main()
