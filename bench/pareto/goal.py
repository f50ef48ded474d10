#!/usr/bin/python3
"""Issue 14's Pareto goal, judged on a results.json of bench/pareto/run.sh.

usage: goal.py RUNDIR/results.json

"At equal bytes, mixed precision at least as accurate as uniform at every point and strictly
better (>= 0.5 point) at two or more." Bytes are weight + activation bytes of the exported model
(lowbit info). Read as Pareto dominance, per model:
  - every mixed-precision point (sliced, adaqat) is compared with the best uniform point that
    needs at most its reference bytes: a budgeted run's budget (budget_bytes: a uniform model's
    own bytes, equal bytes by construction whatever the run undershot it by, or a midpoint
    between two uniform models, compared with the smaller one), else its own
    bytes plus 1% (TOL, in uniform's favour); the mixed point must be at least as accurate (a
    mixed point smaller than every uniform one has nothing to be compared with and is listed);
  - "strictly better at two or more": at least two mixed points are 0.5 point or more above it.
Also printed, the other reading: at the bytes of each uniform point, the best mixed point that
fits them against the uniform one (W8's size usually holds only mixed models trained toward 2-4
bits, so this reading compares a 4-bit budget with an 8-bit model there).
Prints Markdown; exit 0 always (a verdict, not a test).
"""

import json
import sys

TOL = 0.01


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    pts = json.load(open(sys.argv[1]))["points"]
    models = sorted({p["model"] for p in pts})
    for m in models:
        mp = [p for p in pts if p["model"] == m]
        for p in mp:
            p["bytes"] = p["weight_bytes"] + p["activation_bytes"]
            p["acc"] = 100.0 * p["accuracy"]
        uni = sorted((p for p in mp if p["method"] == "uniform"), key=lambda p: p["bytes"])
        mix = sorted((p for p in mp if p["method"] != "uniform"), key=lambda p: p["bytes"])
        print("### %s\n" % m)
        print("| mixed point | bytes | acc % | best uniform within its budget (or bytes +1%) | acc % | difference |")
        print("|---|---:|---:|---|---:|---:|")
        ok, better = True, 0
        for p in mix:
            ref = p.get("budget_bytes") or p["bytes"] * (1 + TOL)
            fit = [u for u in uni if u["bytes"] <= ref]
            if not fit:
                print("| %s %s | %d | %.2f | (none that small) | | |"
                      % (p["method"], p["label"], p["bytes"], p["acc"]))
                continue
            u = max(fit, key=lambda u: u["acc"])
            d = p["acc"] - u["acc"]
            ok &= d >= 0
            better += d >= 0.5
            print("| %s %s | %d | %.2f | uniform %s (%d) | %.2f | %+.2f |"
                  % (p["method"], p["label"], p["bytes"], p["acc"], u["label"], u["bytes"],
                     u["acc"], d))
        verdict = "met" if ok and better >= 2 else "not met"
        print("\nGoal (every mixed point >= the uniform front at its bytes; >= 0.5 better at two "
              "or more): **%s** (%d points 0.5 or more better)\n" % (verdict, better))
        print("| uniform point | bytes | acc % | best mixed within its bytes | acc % | difference |")
        print("|---|---:|---:|---|---:|---:|")
        for u in uni:
            fit = [p for p in mix if p["bytes"] <= u["bytes"]]
            if not fit:
                print("| %s | %d | %.2f | (none that small) | | |" % (u["label"], u["bytes"], u["acc"]))
                continue
            p = max(fit, key=lambda p: p["acc"])
            print("| %s | %d | %.2f | %s %s (%d) | %.2f | %+.2f |"
                  % (u["label"], u["bytes"], u["acc"], p["method"], p["label"], p["bytes"],
                     p["acc"], p["acc"] - u["acc"]))
        print()


if __name__ == "__main__":
    main()
