#!/usr/bin/python3
"""Where issue 12's goals stand across every recorded sweep: one row per sweep directory and
nonzero point (rate, variability), with its encodings, the fault-free accuracy, each method's
mean over chips, lowbit's gap to fault-free, and the checks (within 1 point of fault-free at 10%
BFR, 3 at 20%, 2 at 40% variability; lowbit above both baselines at every nonzero point). Not the
per-sweep table with spreads and minima (table.py).

Usage: /usr/bin/python3 bench/faults/goals.py [DIR ...]   (default: bench/faults/results/*)"""
import glob
import json
import os
import statistics
import sys

GOALS = {(0.1, 0.0): 1.0, (0.2, 0.0): 3.0, (0.0, 0.4): 2.0}


def rows(d):
    with open(os.path.join(d, "sweep.json")) as f:
        j = json.load(f)
    ff = 100 * j["fault_free_accuracy"]
    # sweeps made before an option existed ran with its default
    enc = "%s/%s" % (j.get("reg_encoding", "index"), j.get("lsq_encoding", "twos"))
    pts = {}
    for c in j["cells"]:
        key = (float(c["rate"]), float(c["variability"]))
        pts.setdefault(key, {}).setdefault(c["method"], []).append(100 * c["accuracy"])
    for key in sorted(pts):
        if key == (0.0, 0.0):
            continue
        m = {k: statistics.mean(v) for k, v in pts[key].items()}
        n = len(pts[key].get("lowbit", []))
        yield os.path.basename(d.rstrip("/")), key, enc, ff, m, n


def main():
    dirs = sys.argv[1:] or sorted(glob.glob(os.path.join(os.path.dirname(__file__), "results", "*")))
    print("| sweep | BFR | sigma/mu | encoding reg/lsq | fault-free | before | inject | qfalt | "
          "lowbit | lowbit - fault-free | goal | above both baselines |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
    fmt = lambda m, k: "%.2f" % m[k] if k in m else "-"
    for name, (r, v), enc, ff, m, n in (x for d in dirs for x in rows(d)):
        gap = m["lowbit"] - ff if "lowbit" in m else float("nan")
        g = GOALS.get((r, v))
        goal = "-" if g is None else ("met (<= %g)" % g if -gap <= g else "**missed** (<= %g)" % g)
        base = [m[k] for k in ("inject", "qfalt") if k in m]
        above = "-" if "lowbit" not in m or not base else (
            "yes" if all(m["lowbit"] > b for b in base) else "**no**")
        part = "" if n >= 5 else " (%d chips)" % n
        print("| %s%s | %g%% | %g%% | %s | %.2f | %s | %s | %s | %s | %+.2f | %s | %s |" % (
            name, part, 100 * r, 100 * v, enc, ff, fmt(m, "before"), fmt(m, "inject"),
            fmt(m, "qfalt"), fmt(m, "lowbit"), gap, goal, above))


if __name__ == "__main__":
    main()
