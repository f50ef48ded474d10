#!/usr/bin/python3
"""Logistic-regression baseline on raw pixels for a lowbit data directory.

usage: baseline.py DATADIR [--max-iter N] [--C C] [--json OUT]

Reads the same train/test split lowbit reads (MNIST idx .gz/raw, or CIFAR-10 binary), scales
pixels to [0, 1] (pixels/255) and fits scikit-learn's multinomial LogisticRegression (lbfgs,
L2, C=1 by default, max_iter 5000). Prints the test accuracy (and the train accuracy), and
with --json writes {"set", "test_acc", "train_acc", ...} for table.py.

For digits/ it also checks the idx labels against split.json and load_digits() (same records,
same order).
Meant for digits/ (1,500 x 784: a few seconds); on glyphs/ or colour/ it takes minutes.
"""
import argparse
import gzip
import json
import os
import struct
import sys
import time

import numpy as np


def _read(path):
    for p in (path + ".gz", path):
        if os.path.isfile(p):
            op = gzip.open if p.endswith(".gz") else open
            with op(p, "rb") as f:
                return f.read()
    raise FileNotFoundError(path + "[.gz]")


def read_idx(d, split):
    img = _read(os.path.join(d, f"{split}-images-idx3-ubyte"))
    lab = _read(os.path.join(d, f"{split}-labels-idx1-ubyte"))
    magic, n, h, w = struct.unpack(">IIII", img[:16])
    if magic != 0x803:
        sys.exit(f"baseline: {d}: bad images magic {magic:#x}")
    lmagic, ln = struct.unpack(">II", lab[:8])
    if lmagic != 0x801 or ln != n:
        sys.exit(f"baseline: {d}: bad labels header ({lmagic:#x}, {ln} vs {n})")
    x = np.frombuffer(img, dtype=np.uint8, offset=16).reshape(n, h * w)
    y = np.frombuffer(lab, dtype=np.uint8, offset=8).astype(np.int64)
    return x, y


def read_cifar10(d, train):
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    recs = [np.fromfile(os.path.join(d, n), dtype=np.uint8).reshape(-1, 3073) for n in names]
    r = np.concatenate(recs)
    return r[:, 1:], r[:, 0].astype(np.int64)


def load(d):
    if os.path.exists(os.path.join(d, "train-images-idx3-ubyte.gz")) or \
            os.path.exists(os.path.join(d, "train-images-idx3-ubyte")):
        return read_idx(d, "train") + read_idx(d, "t10k")
    if os.path.exists(os.path.join(d, "data_batch_1.bin")):
        return read_cifar10(d, True) + read_cifar10(d, False)
    sys.exit(f"baseline: {d}: no idx or CIFAR-10 files")


def check_digits_split(d, xtr, ytr, xte, yte):
    sp = os.path.join(d, "split.json")
    if not os.path.isfile(sp):
        return None
    from sklearn.datasets import load_digits
    with open(sp) as f:
        s = json.load(f)
    y = load_digits().target
    ok = (np.array_equal(y[s["train_indices"]], ytr) and np.array_equal(y[s["test_indices"]], yte)
          and len(set(s["train_indices"]) & set(s["test_indices"])) == 0)
    print(f"split.json: {len(s['train_indices'])} train / {len(s['test_indices'])} test indices, "
          f"labels match the idx files: {'yes' if ok else 'NO'}")
    if not ok:
        sys.exit("baseline: digits/ files do not match split.json")
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("datadir")
    ap.add_argument("--max-iter", type=int, default=5000)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--json", help="write the result here (JSON)")
    a = ap.parse_args()
    from sklearn.linear_model import LogisticRegression

    xtr, ytr, xte, yte = load(a.datadir)
    check_digits_split(a.datadir, xtr, ytr, xte, yte)
    xtr = xtr.astype(np.float64) / 255.0
    xte = xte.astype(np.float64) / 255.0
    t = time.time()
    clf = LogisticRegression(max_iter=a.max_iter, C=a.C)
    clf.fit(xtr, ytr)
    iters = int(np.max(clf.n_iter_))
    tr_acc = float(clf.score(xtr, ytr))
    te_acc = float(clf.score(xte, yte))
    name = os.path.basename(os.path.normpath(a.datadir))
    print(f"{name}: logistic regression on raw pixels/255 ({xtr.shape[0]} train x "
          f"{xtr.shape[1]} features, C={a.C}, {iters} lbfgs iterations of max {a.max_iter}, "
          f"{time.time() - t:.1f} s)")
    if iters >= a.max_iter:
        print("warning: lbfgs did not converge; raise --max-iter")
    print(f"train accuracy: {tr_acc:.4f}")
    print(f"test accuracy:  {te_acc:.4f}  ({int(round(te_acc * len(yte)))}/{len(yte)})")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"set": name, "model": "logreg", "C": a.C, "max_iter": a.max_iter,
                       "n_iter": iters, "train_acc": tr_acc, "test_acc": te_acc,
                       "n_train": int(len(ytr)), "n_test": int(len(yte))}, f)
            f.write("\n")


if __name__ == "__main__":
    main()
