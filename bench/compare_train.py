"""Training speed, lowbit against PyTorch 1.13 (the peer in ../shared/peer), side by side.

For each configuration the two programs run alternately, each in its own process, `--rounds`
times; the medians of their median step rates are compared ("ratio"), and so are the two runs of
each round ("paired": the median of the per-round ratios, which a slow phase of the shared host
that lasts a few runs moves less). Usage (from the repository root):
    /usr/bin/python3 bench/compare_train.py [--rounds 3] [--steps 20] [--threads 2]
        [--configs cnn:fp32:128,cnn:lsq:128,...] [--lowbit build/release/lowbit]
Prints a markdown table (img/s, ratio, GFLOP/s, fraction of the 193.7 GFLOP/s OpenBLAS 2-thread
sgemm ceiling measured in ../shared/peer/RESULTS.md, peak RSS of each process).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "peer", "throughput.py"))
CEILING = 193.7


def run_lowbit(exe, model, quant, batch, threads, steps):
    q = ["--quant", "fp32"] if quant == "fp32" else ["--quant", "lsq", "--wbits", "4", "--abits", "4"]
    out = subprocess.run([exe, "bench", "--model", model, "--batch", str(batch), "--threads",
                          str(threads), "--steps", str(steps), "--warmup", "5"] + q,
                         capture_output=True, text=True, check=True).stdout
    kv = dict(re.findall(r"(\w+): ([0-9.]+)", out))
    return dict(img_per_s=float(kv["train_img_per_s"]), gflops=float(kv["gflops"]),
                maxrss=float(kv["maxrss_mib"]), step_ms=float(kv["step_ms"]),
                fwd_ms=float(kv["fwd_ms"]), bwd_ms=float(kv["bwd_ms"]))


def run_peer(model, quant, batch, threads, steps):
    out = subprocess.run(["/usr/bin/python3", PEER, "--single", "--model", model, "--quant", quant,
                          "--batch", str(batch), "--threads", str(threads), "--steps", str(steps),
                          "--warmup", "5"], capture_output=True, text=True, check=True).stdout
    line = [l for l in out.splitlines() if l.startswith("RESULT ")][0]
    r = json.loads(line[7:])
    return dict(img_per_s=r["img_per_s"], gflops=r["gflops_3x"], maxrss=r["maxrss_mib"],
                step_ms=r["step_ms_median"], fwd_ms=r["fwd_ms"], bwd_ms=r["bwd_ms"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lowbit", default="build/release/lowbit")
    ap.add_argument("--configs", default="cnn:fp32:128,cnn:lsq:128,resnet20:fp32:128,"
                    "resnet20:lsq:128,cnn:fp32:32,cnn:lsq:32,resnet20:fp32:32,resnet20:lsq:32")
    a = ap.parse_args()
    rows = []
    for cfg in a.configs.split(","):
        model, quant, batch = cfg.split(":")
        lb, pt = [], []
        for _ in range(a.rounds):
            lb.append(run_lowbit(a.lowbit, model, quant, int(batch), a.threads, a.steps))
            pt.append(run_peer(model, quant, int(batch), a.threads, a.steps))
        med = lambda rs, k: statistics.median(r[k] for r in rs)
        row = dict(model=model, quant=quant, batch=int(batch),
                   lowbit=med(lb, "img_per_s"), torch=med(pt, "img_per_s"),
                   lowbit_all=[round(r["img_per_s"]) for r in lb],
                   torch_all=[round(r["img_per_s"]) for r in pt],
                   lowbit_gflops=med(lb, "gflops"), torch_gflops=med(pt, "gflops"),
                   lowbit_fwd=med(lb, "fwd_ms"), lowbit_bwd=med(lb, "bwd_ms"),
                   torch_fwd=med(pt, "fwd_ms"), torch_bwd=med(pt, "bwd_ms"),
                   lowbit_rss=max(r["maxrss"] for r in lb), torch_rss=max(r["maxrss"] for r in pt))
        row["ratio"] = row["lowbit"] / row["torch"]
        row["paired"] = statistics.median(l["img_per_s"] / t["img_per_s"] for l, t in zip(lb, pt))
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    print("| model | quant | batch | lowbit img/s | PyTorch img/s | ratio | paired ratio | lowbit GFLOP/s (% of "
          "sgemm ceiling) | PyTorch GFLOP/s | lowbit fwd/bwd ms | PyTorch fwd/bwd ms | "
          "peak RSS MiB lowbit / PyTorch | runs lowbit / PyTorch |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['model']} | {r['quant']} | {r['batch']} | {r['lowbit']:.0f} | {r['torch']:.0f} "
              f"| {r['ratio']:.2f}x | {r['paired']:.2f}x | {r['lowbit_gflops']:.1f} ({100 * r['lowbit_gflops'] / CEILING:.0f}%) "
              f"| {r['torch_gflops']:.1f} | {r['lowbit_fwd']:.1f} / {r['lowbit_bwd']:.1f} "
              f"| {r['torch_fwd']:.1f} / {r['torch_bwd']:.1f} | {r['lowbit_rss']:.0f} / "
              f"{r['torch_rss']:.0f} | {r['lowbit_all']} / {r['torch_all']} |")


if __name__ == "__main__":
    main()
