#!/usr/bin/env python3
"""Exponent reversals of the cells of bench/compare/run.sh (issue 13, seed 003's oscillation):
for each metrics file with "scales" lines (--log-scales N), per quantizer channel, how often the
logged integer exponent turns (moves up after moving down, or down after up); summed over the
weight channels and over the activation tensors. usage: reversals.py RUN.metrics.jsonl ..."""
import json
import sys


def turns(seq):
    d = [b - a for a, b in zip(seq, seq[1:]) if b != a]
    return sum(1 for a, b in zip(d, d[1:]) if (a > 0) != (b > 0))


def main():
    for path in sys.argv[1:]:
        tr = {}
        with open(path) as f:
            for line in f:
                d = json.loads(line)
                if d.get("event") != "scales":
                    continue
                for x in d["layers"]:
                    tr.setdefault((x["layer"], x["q"]), []).append(x["log2_step"])
        out = {"w": [0, 0, 0], "a": [0, 0, 0]}  # reversals, channels, max
        for (_, q), seqs in tr.items():
            for c in range(len(seqs[0])):
                r = turns([round(v[c]) for v in seqs])
                o = out["w" if q == "w" else "a"]
                o[0] += r
                o[1] += 1
                o[2] = max(o[2], r)
        print("%s: weight exponents %d reversals over %d channels (max %d); activation exponents "
              "%d over %d (max %d)" % ((path,) + tuple(out["w"]) + tuple(out["a"])))


if __name__ == "__main__":
    main()
