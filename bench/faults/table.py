#!/usr/bin/python3
"""The issue-12 table of one or more `lowbit faults sweep` directories: per point (rate,
variability) and method, the chip accuracy over chips (mean, std, min), its gap to the fault-free
model (sweep.json's fault_free_accuracy), and the goals: within 1 point of fault-free at 10% BFR,
3 points at 20%, 2 points at 40% variability (lowbit's mean), and lowbit above both baselines at
every nonzero point (means). Points with fewer than CHIPS chips are marked partial (the healthy
point, rate 0 and variability 0, has one chip: lowbit faults sweep runs one there).

Usage: /usr/bin/python3 bench/faults/table.py [--chips 5] DIR [DIR ...]"""
import argparse
import csv
import json
import os
import statistics

GOALS = {("rate", 0.1): 1.0, ("rate", 0.2): 3.0, ("var", 0.4): 2.0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chips", type=int, default=5)
    ap.add_argument("dirs", nargs="+")
    a = ap.parse_args()
    acc, ff = {}, set()
    for d in a.dirs:
        with open(os.path.join(d, "sweep.json")) as f:
            v = json.load(f).get("fault_free_accuracy")
        if v:
            ff.add(round(float(v), 6))
        with open(os.path.join(d, "sweep.csv"), newline="") as f:
            for r in csv.DictReader(f):
                key = (float(r["rate"]), float(r["variability"]))
                acc.setdefault(key, {}).setdefault(r["method"], {})[int(r["chip"])] = \
                    float(r["accuracy"])
    if len(ff) != 1:
        raise SystemExit("table: expected one fault-free accuracy across the sweeps, got %s" % ff)
    base = 100 * ff.pop()
    print("Fault-free: **%.2f%%**.\n" % base)
    print("| BFR | sigma/mu | chips | before | inject | qfalt | lowbit | lowbit - fault-free |")
    print("|---:|---:|---:|---|---|---|---|---:|")
    checks = []
    for (rate, var) in sorted(acc, key=lambda k: (k[1] > 0, k[1], k[0])):
        ms = acc[(rate, var)]
        n = min(len(v) for v in ms.values())
        # the healthy point (no stuck cell, no variability) is one chip: every chip is the same
        full = a.chips if (rate > 0 or var > 0) else 1

        def cell(m):
            if m not in ms:
                return "-"
            v = [100 * x for x in ms[m].values()]
            sd = statistics.stdev(v) if len(v) > 1 else 0.0
            return "%.2f +- %.2f (min %.2f)" % (statistics.mean(v), sd, min(v))

        lm = 100 * statistics.mean(ms["lowbit"].values()) if "lowbit" in ms else None
        gap = "%+.2f" % (lm - base) if lm is not None else "-"
        print("| %g%% | %g%% | %d%s | %s | %s | %s | %s | %s |" % (
            100 * rate, 100 * var, n, "" if n >= full else " (partial)", cell("before"),
            cell("inject"), cell("qfalt"), cell("lowbit"), gap))
        for kind, x in (("rate", rate), ("var", var)):
            other = var if kind == "rate" else rate
            g = GOALS.get((kind, round(x, 6)))
            if g is not None and other == 0 and lm is not None:
                checks.append("- %s %g%%: lowbit %.2f%%, %.2f points below fault-free (goal <= %g): "
                              "%s%s" % ("BFR" if kind == "rate" else "variability", 100 * x, lm,
                                        base - lm, g, "PASS" if base - lm <= g else "FAIL",
                                        "" if n >= full else " (partial point)"))
        if (rate > 0 or var > 0) and lm is not None:
            for m in ("inject", "qfalt"):
                if m in ms:
                    bm = 100 * statistics.mean(ms[m].values())
                    if not lm > bm:
                        checks.append("- BFR %g%% var %g%%: lowbit %.2f%% not above %s %.2f%%: "
                                      "FAIL" % (100 * rate, 100 * var, lm, m, bm))
    print("\nGoals:\n")
    print("\n".join(checks) if checks else "- (no goal point in these sweeps)")
    print("- lowbit above both baselines at every nonzero point: %s" % (
        "FAIL" if any("not above" in c for c in checks) else "PASS"))


if __name__ == "__main__":
    main()
