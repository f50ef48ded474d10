#!/usr/bin/python3
"""Summarizes a robustness sweep (bench/robust/sweep.sh) as a Markdown table, checks and a plot.

usage: table.py RUNDIR [--data DIR] [--baseline JSON] [--out PREFIX] [--prior MD] [--no-plot]

Reads RUNDIR/<set>_<model>_<quant>_s<seed>.safetensors.metrics.jsonl (one JSON object per epoch;
lines with "event": "collapse" are collapse warnings, zero or more) and the matching .log/.cmd.
Prints Markdown (also written to PREFIX.md) and draws PREFIX.svg / PREFIX.png (final accuracy per
set/model/quant, one dot per seed, mean +- std). PREFIX defaults to RUNDIR/results.

A run "ends at chance" when its final test accuracy is at most p + 3 sqrt(p (1 - p) / n_test),
p = 1/classes (lowbit's own bound, with the majority share taken as 1/classes). Classes and
test-set sizes come from DIR/<set>/stats.json (make_sets.py), else 10 classes.
The digits baseline is --baseline, else RUNDIR/baseline_digits.json, else computed here with
baseline.py's logistic regression on DIR/digits (and cached in RUNDIR/baseline_digits.json).

--prior MD merges an earlier sweep's table (its results.md) where its run directory is gone: a
set/model/quant row of MD that RUNDIR has no run of is taken as printed there (marked "prior"),
and the checks use its mean, min and first-epoch list. Rows RUNDIR has runs of replace MD's.
PREFIX.json has every run of RUNDIR (one record each) and the prior rows, for later merges.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

QUANT_ORDER = {"fp32": 0, "w8a8": 1, "w4a4": 2, "w3a3": 3, "w2a2": 4}
SET_ORDER = {"glyphs": 0, "digits": 1, "colour": 2, "tiny": 3}


def mean(v):
    return sum(v) / len(v) if v else float("nan")


def std(v):
    if len(v) < 2:
        return 0.0
    m = mean(v)
    return math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1))


def opt_value(cmd, opt):
    toks = cmd.split()
    for i, t in enumerate(toks[:-1]):
        if t == opt:
            return toks[i + 1]
    return None


def extra_of(cmd):
    """What follows --out FILE in the recorded command: sweep.sh's EXTRA."""
    toks = cmd.split()
    if "--out" in toks:
        i = toks.index("--out")
        return " ".join(toks[i + 2:])
    return ""


def split_name(name):
    """<set>_<model>_<quant>_s<seed> -> (set, model, quant, seed), or None."""
    parts = name.rsplit("_", 3)
    if len(parts) != 4 or not re.fullmatch(r"s\d+", parts[3]):
        return None
    return parts[0], parts[1], parts[2], int(parts[3][1:])


def load_run(rundir, metrics_path):
    base = os.path.basename(metrics_path)[: -len(".safetensors.metrics.jsonl")]
    cell = split_name(base)
    if not cell:
        return None
    set_, model, quant, seed = cell
    epochs, events, bad_lines = [], [], 0
    with open(metrics_path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except json.JSONDecodeError:
                bad_lines += 1
                continue
            if o.get("event") == "collapse":
                events.append(o)
            elif o.get("event") is None and "epoch" in o:
                epochs.append(o)
    r = {"name": base, "set": set_, "model": model, "quant": quant, "seed": seed,
         "epochs": epochs, "events": events, "bad_lines": bad_lines, "exit": None,
         "log_collapse": 0, "done": False, "cmd": "", "wall_s": None}
    log = os.path.join(rundir, base + ".log")
    if os.path.isfile(log):
        r["done"] = os.path.isfile(os.path.join(rundir, base + ".safetensors"))
        with open(log, errors="replace") as f:
            for line in f:
                m = re.match(r"# exit (\d+)\s+wall_s (\d+)", line)
                if m:
                    r["exit"], r["wall_s"] = int(m.group(1)), int(m.group(2))
                elif "collapse:" in line:
                    r["log_collapse"] += 1
    cmdf = os.path.join(rundir, base + ".cmd")
    if os.path.isfile(cmdf):
        with open(cmdf) as f:
            r["cmd"] = f.read().strip()
    return r


def set_info(datadir, set_):
    p = os.path.join(datadir, set_, "stats.json") if datadir else ""
    if p and os.path.isfile(p):
        with open(p) as f:
            s = json.load(f)
        test = s.get("t10k") or s.get("test") or {}
        return len(s.get("classes", [])) or 10, test.get("n")
    return 10, None


def chance_bound(classes, n_test):
    p = 1.0 / classes
    return p + 3.0 * math.sqrt(p * (1 - p) / max(n_test or 1, 1))


def get_baseline(args, rundir):
    for p in ([args.baseline] if args.baseline else []) + [os.path.join(rundir,
                                                                          "baseline_digits.json")]:
        if p and os.path.isfile(p):
            with open(p) as f:
                return json.load(f)["test_acc"], p
    d = os.path.join(args.data, "digits") if args.data else ""
    if not d or not os.path.isdir(d):
        return None, None
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    import baseline as bl
    xtr, ytr, xte, yte = bl.load(d)
    clf = LogisticRegression(max_iter=5000).fit(xtr / 255.0, ytr)
    acc = float(clf.score(xte / 255.0, yte))
    out = os.path.join(rundir, "baseline_digits.json")
    with open(out, "w") as f:
        json.dump({"set": "digits", "model": "logreg", "C": 1.0, "max_iter": 5000,
                   "n_iter": int(np.max(clf.n_iter_)), "test_acc": acc,
                   "train_acc": float(clf.score(xtr / 255.0, ytr)), "n_train": int(len(ytr)),
                   "n_test": int(len(yte))}, f)
        f.write("\n")
    return acc, out + " (computed now)"


def parse_prior(path):
    """Rows and first-epoch failures of an earlier results.md (this script's own format)."""
    rows, above, baseline = {}, [], None
    row = re.compile(r"^\| (\w+) \| (\w+) \| (\w+) \| (\d+) \(([\d,]+)\) \| ([\d.]+) / ([\d.]+) "
                     r"\(([\d.]+)\) \| ([\d.]+) ± ([\d.]+) \| ([\d.]+) \| (\d+) \| (\d+) \| "
                     r"(\d+) / (\d+) \|")
    with open(path) as f:
        for line in f:
            m = row.match(line)
            if m:
                g = m.groups()
                rows[(g[0], g[1], g[2])] = {
                    "n": int(g[3]), "seeds": g[4], "e1_mean": float(g[5]), "e1_max": float(g[6]),
                    "lnc": float(g[7]), "mean": float(g[8]) / 100, "std": float(g[9]) / 100,
                    "min": float(g[10]) / 100, "coll": int(g[11]), "chance": int(g[12]),
                    "unfinished": int(g[13]), "nonzero": int(g[14])}
            elif line.startswith("- FAIL:") and ">=" in line:
                above += re.findall(r"(\w+_s\d+) \(([\d.]+) >= ([\d.]+)\)", line)
            m = re.match(r"- baseline test accuracy ([\d.]+)", line)
            if m:
                baseline = float(m.group(1)) / 100
    if not rows:
        sys.exit(f"table: no table rows in {path}")
    return rows, above, baseline


def pct(x):
    return "n/a" if x is None or x != x else f"{100 * x:.2f}"


def fin_mean(g):
    if not g:
        return None
    if "prior" in g:
        return g["prior"]["mean"]
    return mean(g["fin"]) if g["fin"] else None


def fin_min(g):
    if "prior" in g:
        return g["prior"]["min"]
    return min(g["fin"]) if g["fin"] else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rundir")
    ap.add_argument("--data", default="/work/data/robust")
    ap.add_argument("--baseline")
    ap.add_argument("--out")
    ap.add_argument("--prior")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args()
    rundir = args.rundir
    prefix = args.out or os.path.join(rundir, "results")

    runs = []
    for p in sorted(glob.glob(os.path.join(rundir, "*.safetensors.metrics.jsonl"))):
        r = load_run(rundir, p)
        if r:
            runs.append(r)
    if not runs:
        sys.exit(f"table: no *.safetensors.metrics.jsonl in {rundir}")

    groups = {}
    for r in runs:
        groups.setdefault((r["set"], r["model"], r["quant"]), []).append(r)
    prior, prior_above, prior_base = {}, [], None
    if args.prior:
        rows, prior_above, prior_base = parse_prior(args.prior)
        prior = {k: v for k, v in rows.items() if k not in groups}
        prior_above = [a for a in prior_above if (split_name(a[0]) or ())[:3] in prior]
    keys = sorted(list(groups) + list(prior),
                  key=lambda k: (SET_ORDER.get(k[0], 99), k[0], k[1], QUANT_ORDER.get(k[2], 99),
                                 k[2]))

    out = []
    w = out.append
    extras = sorted({extra_of(r["cmd"]) for r in runs if r["cmd"]})
    w(f"# Robustness sweep: {rundir}\n")
    w(f"{len(runs)} runs ({sum(r['done'] for r in runs)} finished). Options beyond the defaults "
      "(sweep.sh's EXTRA): " + (", ".join(f"`{e}`" for e in extras if e) or "none") + "\n")
    if any(extras):
        w("**Not a real sweep: some runs use non-default options (smoke test).**\n")
    if prior:
        w(f"Rows marked *prior* ({len(prior)} of {len(keys)}, "
          f"{sum(p['n'] for p in prior.values())} runs) are taken as printed in `{args.prior}`: "
          "this run directory has no runs of them. The other rows replace that table's.\n")
    w("| set | model | quant | seeds | epoch-1 train loss mean / max (ln C) | "
      "final test acc % mean ± std | min | runs with collapse warnings | at chance | "
      "unfinished / exit≠0 |")
    w("|---|---|---|---|---|---|---|---|---|---|")
    summary = {}
    for k in keys:
        if k in prior:
            p = prior[k]
            summary[k] = {"e1": [], "fin": [], "lnc": p["lnc"], "runs": [], "prior": p}
            w(f"| {k[0]} | {k[1]} | {k[2]} *prior* | {p['n']} ({p['seeds']}) | "
              f"{p['e1_mean']:.3f} / {p['e1_max']:.3f} ({p['lnc']:.3f}) | "
              f"{pct(p['mean'])} ± {100 * p['std']:.2f} | {pct(p['min'])} | {p['coll']} | "
              f"{p['chance']} | {p['unfinished']} / {p['nonzero']} |")
            continue
        rs = sorted(groups[k], key=lambda r: r["seed"])
        classes, n_test = set_info(args.data, k[0])
        lnc = math.log(classes)
        e1 = [r["epochs"][0]["train_loss"] for r in rs
              if r["epochs"] and r["epochs"][0].get("train_loss") is not None]
        fin = [r["epochs"][-1]["test_acc"] for r in rs
               if r["epochs"] and r["epochs"][-1].get("test_acc") is not None]
        tl = {r["name"]: opt_value(r["cmd"], "--test-limit") for r in rs}
        chance = 0
        for r in rs:
            if not r["epochs"] or r["epochs"][-1].get("test_acc") is None:
                continue
            n = n_test
            lim = tl[r["name"]]
            if lim and int(lim) > 0:
                n = min(n, int(lim)) if n else int(lim)
            if r["epochs"][-1]["test_acc"] <= chance_bound(classes, n):
                chance += 1
        coll = sum(1 for r in rs if r["events"] or r["log_collapse"] or
                   any(e.get("collapse_warnings", 0) for e in r["epochs"]))
        unfinished = sum(1 for r in rs if not r["done"] or not r["epochs"] or
                         r["epochs"][-1].get("epoch") != r["epochs"][-1].get("epochs"))
        nonzero = sum(1 for r in rs if r["exit"] not in (None, 0))
        seeds = ",".join(str(r["seed"]) for r in rs)
        summary[k] = {"e1": e1, "fin": fin, "lnc": lnc, "classes": classes, "runs": rs}
        w(f"| {k[0]} | {k[1]} | {k[2]} | {len(rs)} ({seeds}) | "
          f"{mean(e1):.3f} / {max(e1) if e1 else float('nan'):.3f} ({lnc:.3f}) | "
          f"{pct(mean(fin))} ± {100 * std(fin):.2f} | {pct(min(fin) if fin else None)} | "
          f"{coll} | {chance} | {unfinished} / {nonzero} |")

    # ------------------------------------------------------------------ checks
    w("\n## Checks\n")
    fails = 0

    w("**W4A4 within 1 point of FP32** (mean final test accuracy over seeds, per set/model):\n")
    any_pair = False
    for (s, m) in sorted({(k[0], k[1]) for k in keys}, key=lambda t: (SET_ORDER.get(t[0], 99),) + t):
        f, q = summary.get((s, m, "fp32")), summary.get((s, m, "w4a4"))
        if fin_mean(f) is None or fin_mean(q) is None:
            continue
        any_pair = True
        gap = fin_mean(f) - fin_mean(q)
        ok = gap <= 0.01
        fails += not ok
        w(f"- {s}/{m}: FP32 {pct(fin_mean(f))}, W4A4 {pct(fin_mean(q))}, gap "
          f"{100 * gap:+.2f} points, worst W4A4 seed {pct(fin_min(q))}: "
          f"{'PASS' if ok else 'FAIL'}")
    if not any_pair:
        w("- no set/model has both FP32 and W4A4 runs")

    w("\n**Every first-epoch training loss below ln(classes)**:\n")
    above = []
    for k in keys:
        for r in summary[k]["runs"]:
            if r["epochs"] and r["epochs"][0].get("train_loss") is not None:
                l1 = r["epochs"][0]["train_loss"]
                if not l1 < summary[k]["lnc"]:
                    above.append(f"{r['name']} ({l1:.3f} >= {summary[k]['lnc']:.3f})")
    above += [f"{a[0]} ({a[1]} >= {a[2]}, prior)" for a in prior_above]
    n_e1 = sum(len(summary[k]["e1"]) for k in keys) + sum(p["n"] for p in prior.values())
    if above:
        fails += 1
        w(f"- FAIL: {len(above)} of {n_e1} runs: " + ", ".join(above))
    else:
        w(f"- PASS: all {n_e1} runs")

    dig = [k for k in keys if k[0] == "digits"]
    base = None
    if dig:
        base, src = get_baseline(args, rundir)
        if base is None and prior_base is not None:
            base, src = prior_base, f"as printed in {args.prior}"
        w("\n**digits vs logistic regression on raw pixels** (FP32 and W4A4 above it, W2A2 "
          "within 2 points):\n")
        if base is None:
            w("- no baseline (give --baseline or --data with digits/)")
        else:
            w(f"- baseline test accuracy {pct(base)} ({src})")
            for m in sorted({k[1] for k in dig}):
                for q, need, what in (("fp32", base, "above"), ("w4a4", base, "above"),
                                      ("w2a2", base - 0.02, "within 2 points of")):
                    g = summary.get(("digits", m, q))
                    a = fin_mean(g)
                    if a is None:
                        continue
                    ok = a > need if what == "above" else a >= need
                    fails += not ok
                    w(f"- digits/{m}/{q}: mean {pct(a)} (min {pct(fin_min(g))}) {what} "
                      f"{pct(base)}: {'PASS' if ok else 'FAIL'}")

    w(f"\n{fails} failed check(s).")
    text = "\n".join(out) + "\n"
    print(text, end="")
    with open(prefix + ".md", "w") as f:
        f.write(text)
    with open(prefix + ".json", "w") as f:
        json.dump({"rundir": rundir, "prior": args.prior,
                   "runs": [{"name": r["name"], "set": r["set"], "model": r["model"],
                             "quant": r["quant"], "seed": r["seed"], "done": r["done"],
                             "exit": r["exit"], "wall_s": r["wall_s"],
                             "epoch1_train_loss": (r["epochs"][0].get("train_loss")
                                                   if r["epochs"] else None),
                             "final_test_acc": (r["epochs"][-1].get("test_acc")
                                                if r["epochs"] else None),
                             "collapse_events": [e.get("kind") for e in
                                                 r["events"]]} for r in runs],
                   "prior_rows": [dict(set=k[0], model=k[1], quant=k[2], **v)
                                  for k, v in prior.items()]}, f, indent=1)
        f.write("\n")

    if not args.no_plot:
        plot(summary, keys, prefix, base)
        print(f"\nwrote {prefix}.md, {prefix}.svg, {prefix}.png", file=sys.stderr)


def plot(summary, keys, prefix, base=None):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    sets = []
    for k in keys:
        if k[0] not in sets:
            sets.append(k[0])
    fig, axes = plt.subplots(1, len(sets), figsize=(3.6 * len(sets) + 0.6, 3.8), squeeze=False)
    colours = {"fp32": "#1f77b4", "w4a4": "#2ca02c", "w2a2": "#d62728"}
    for ax, s in zip(axes[0], sets):
        ks = [k for k in keys if k[0] == s]
        labels = []
        for i, k in enumerate(ks):
            fin = [100 * a for a in summary[k]["fin"]]
            c = colours.get(k[2], "#7f7f7f")
            p = summary[k].get("prior")
            if p:
                # no per-seed values survive for a prior row: its mean +- std and its minimum
                ax.errorbar([i], [100 * p["mean"]], yerr=[100 * p["std"]], fmt="_", color="black",
                            markersize=14, capsize=4, zorder=4)
                ax.scatter([i], [100 * p["min"]], s=14, marker="v", facecolors="none",
                           edgecolors=c, zorder=3)
            elif fin:
                jit = [i + 0.12 * (j - (len(fin) - 1) / 2) / max(len(fin), 1)
                       for j in range(len(fin))]
                ax.scatter(jit, fin, s=12, color=c, alpha=0.6, zorder=3)
                ax.errorbar([i], [mean(fin)], yerr=[std(fin)], fmt="_", color="black",
                            markersize=14, capsize=4, zorder=4)
            labels.append(f"{k[1]}\n{k[2]}")
        ax.set_xticks(range(len(ks)))
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_title(s)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(axis="y", alpha=0.3)
        ax.set_xlim(-0.6, len(ks) - 0.4)
        if s == "digits" and base is not None:
            ax.axhline(100 * base, color="#555555", ls="--", lw=1)
            ax.text(-0.55, 100 * base, " logistic regression", fontsize=6, va="bottom")
    axes[0][0].set_ylabel("final test accuracy (%)")
    title = "lowbit, default options: final test accuracy per seed (mean ± std)"
    if any("prior" in summary[k] for k in keys):
        title += "; hollow triangle: a prior row's worst seed (no per-seed values kept)"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(prefix + ".svg")
    fig.savefig(prefix + ".png", dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
