#!/usr/bin/python3
"""Plots of a `lowbit faults sweep` directory: DIR/sweep.csv -> DIR/sweep_rate.{svg,png} (chip
accuracy against the bit-fault rate, one panel per variability; when the sweep has more than one
rate or only one variability) and DIR/sweep_var.{svg,png} (against sigma/mu, one panel per rate;
when it has more than one variability). One curve per method (and "before" fine-tuning): the mean
across chips, a band from the lowest to the highest chip and bars of one standard deviation. The
model on a healthy chip (sweep.json's fault_free_accuracy) is a dotted line, with the goals of
issue 12 (1, 2 and 3 points below it) as fainter ones. Not the sweep itself (lowbit faults sweep writes the
table). Needs Debian's matplotlib (python3-matplotlib, scripts/deps.sh).

Usage: /usr/bin/python3 scripts/plot_sweep.py DIR"""
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")  # files only: no display on build machines
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ["before", "inject", "qfalt", "lowbit"]
STYLE = {"before": ("0.45", "o", "--"), "inject": ("tab:orange", "s", "-"),
         "qfalt": ("tab:green", "^", "-"), "lowbit": ("tab:blue", "D", "-")}


def load(path):
    cells = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            key = (float(row["variability"]), float(row["rate"]), row["method"])
            cells.setdefault(key, []).append(float(row["accuracy"]))
    return cells


def stats(v):
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd, min(v), max(v)


def fault_free(d):
    import json
    try:
        with open(os.path.join(d, "sweep.json")) as f:
            v = json.load(f).get("fault_free_accuracy")
        return float(v) if v else None
    except (OSError, ValueError):
        return None


def figure(cells, xkey, panels, title, out_base, ff=None):
    """xkey 'rate' (panel per variability) or 'var' (panel per rate)."""
    methods = sorted({k[2] for k in cells}, key=lambda m: ORDER.index(m) if m in ORDER else 99)
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4), squeeze=False)
    for ax, p in zip(axes[0], panels):
        for m in methods:
            pts = sorted((k[1] if xkey == "rate" else k[0], stats(v)) for k, v in cells.items()
                         if k[2] == m and (k[0] if xkey == "rate" else k[1]) == p)
            if not pts:
                continue
            color, marker, ls = STYLE.get(m, ("k", "x", "-"))
            xs = [100 * x for x, _ in pts]
            mean = [100 * s[0] for _, s in pts]
            sd = [100 * s[1] for _, s in pts]
            ax.fill_between(xs, [100 * s[2] for _, s in pts], [100 * s[3] for _, s in pts],
                            color=color, alpha=0.15, linewidth=0)
            ax.errorbar(xs, mean, yerr=sd, color=color, marker=marker, linestyle=ls, capsize=3,
                        label=m)
        if ff is not None:
            ax.axhline(100 * ff, color="k", linestyle=":", linewidth=1,
                       label="fault-free %.2f%%" % (100 * ff))
            for drop in (1, 2, 3):
                ax.axhline(100 * ff - drop, color="k", linestyle=":", linewidth=0.6, alpha=0.35)
        ax.set_xlabel("bit-fault rate (%)" if xkey == "rate" else "variability sigma/mu (%)")
        ax.set_ylabel("chip test accuracy (%)")
        ax.set_title(("variability %g%%" if xkey == "rate" else "bit-fault rate %g%%") % (100 * p))
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    for ext in ("svg", "png"):
        tmp = "%s.tmp.%d.%s" % (out_base, os.getpid(), ext)
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, "%s.%s" % (out_base, ext))  # atomic: no half-written plot
    plt.close(fig)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    d = sys.argv[1]
    cells = load(os.path.join(d, "sweep.csv"))
    if not cells:
        sys.exit("plot_sweep: %s/sweep.csv has no rows" % d)
    vars_ = sorted({k[0] for k in cells})
    rates = sorted({k[1] for k in cells})
    title = "chip accuracy: mean of chips, band min..max, bars 1 std"
    ff = fault_free(d)
    made = []
    if len(rates) > 1 or len(vars_) == 1:
        made.append(os.path.join(d, "sweep_rate"))
        figure(cells, "rate", vars_, title, made[-1], ff)
    if len(vars_) > 1:
        made.append(os.path.join(d, "sweep_var"))
        figure(cells, "var", rates, title, made[-1], ff)
    print("plots: " + " ".join("%s.svg %s.png" % (m, m) for m in made))


if __name__ == "__main__":
    main()
