#!/usr/bin/env bash
# CLI error handling: every bad input (broken data files, bad checkpoints, bad option values) must
# end with a non-zero exit below 128 (no crash), exactly one line on stderr that names the file or
# option and the problem, and no sanitizer report; every --help exits 0. Not a test of training
# itself (tests/cli/train.sh). Usage: errors.sh path/to/lowbit (release or ASan build). All files
# are made here, in a temporary directory; the one checkpoint is a 1-step training run.
set -u
L=${1:?usage: errors.sh path/to/lowbit}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
T=$(mktemp -d "${TMPDIR:-/tmp}/lowbit_errors.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
pass=0 fail=0

ok() { pass=$((pass + 1)); }
bad() { # name, why
    fail=$((fail + 1))
    echo "FAIL $1: $2"
    sed 's/^/    stderr: /' "$T/err" | head -5
}

# expect_error NAME WHAT PROBLEM CMD...: WHAT (a fixed string: the file or option) and PROBLEM
# (an extended regex) must both be on the single stderr line.
expect_error() {
    local name=$1 what=$2 problem=$3 rc lines
    shift 3
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    lines=$(awk 'END { print NR }' "$T/err")
    if grep -qE 'Sanitizer|runtime error' "$T/err"; then
        bad "$name" "sanitizer report (exit $rc)"
    elif [ "$rc" -eq 0 ]; then
        bad "$name" "exit 0, expected an error"
    elif [ "$rc" -ge 128 ]; then
        bad "$name" "exit $rc: crashed"
    elif [ "$lines" -ne 1 ]; then
        bad "$name" "$lines lines on stderr, expected 1"
    elif ! grep -qF -- "$what" "$T/err"; then
        bad "$name" "message does not name '$what'"
    elif ! grep -qE -- "$problem" "$T/err"; then
        bad "$name" "message does not say /$problem/"
    else
        ok
    fi
}

expect_help() { # name, cmd...: exit 0, usage on stdout, nothing on stderr
    local name=$1 rc
    shift
    "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" -ne 0 ]; then
        bad "$name" "exit $rc"
    elif ! grep -q 'usage' "$T/out" || [ -s "$T/err" ]; then
        bad "$name" "no usage on stdout, or output on stderr"
    else
        ok
    fi
}

# ---- data files: a small valid idx set, and broken variants of it ----------------------------
"$PY" - "$T" <<'EOF' || { echo "FAIL could not create test files"; echo "errors.sh: 0 passed, 1 failed"; exit 1; }
import gzip, os, random, struct, sys

out = sys.argv[1]
rng = random.Random(7)
protos = [rng.randbytes(784) for _ in range(10)]  # one pattern per class: compressible


def idx(ntrain, ntest):
    files = {}
    for split, n in (("train", ntrain), ("t10k", ntest)):
        labels = [rng.randrange(10) for _ in range(n)]
        files[f"{split}-images-idx3-ubyte"] = struct.pack(">IIII", 0x803, n, 28, 28) + b"".join(
            protos[k] for k in labels)
        files[f"{split}-labels-idx1-ubyte"] = struct.pack(">II", 0x801, n) + bytes(labels)
    return files


def write_dir(d, files, gz):
    os.makedirs(os.path.join(out, d))
    for name, data in files.items():
        with open(os.path.join(out, d, name + (".gz" if gz else "")), "wb") as f:
            f.write(gzip.compress(data, mtime=0) if gz else data)


base = idx(128, 64)
write_dir("good", base, True)
# truncated: the gzip stream cut in half; the raw pixels cut short
files = dict(base)
files["train-images-idx3-ubyte"] = gzip.compress(base["train-images-idx3-ubyte"], mtime=0)
write_dir("trunc_gz", {k: v for k, v in base.items() if k != "train-images-idx3-ubyte"}, True)
with open(os.path.join(out, "trunc_gz", "train-images-idx3-ubyte.gz"), "wb") as f:
    z = files["train-images-idx3-ubyte"]
    f.write(z[: len(z) // 2])
files = dict(base)
files["train-images-idx3-ubyte"] = base["train-images-idx3-ubyte"][:5000]
write_dir("trunc_raw", files, False)
# corrupt gzip: garbage in the middle of the deflate data
write_dir("corrupt_gz", base, True)
p = os.path.join(out, "corrupt_gz", "train-images-idx3-ubyte.gz")
z = bytearray(open(p, "rb").read())
for i in range(len(z) // 3, len(z) // 3 + 16):
    z[i] ^= 0xA5
open(p, "wb").write(bytes(z))
# wrong magic (0x804 is no idx type lowbit reads)
files = dict(base)
files["train-images-idx3-ubyte"] = struct.pack(">I", 0x804) + base["train-images-idx3-ubyte"][4:]
write_dir("magic", files, False)
# 8x8 images (scikit-learn's digits size): too small for the zoo's models
files = {}
for split, n in (("train", 16), ("t10k", 8)):
    files[f"{split}-images-idx3-ubyte"] = struct.pack(">IIII", 0x803, n, 8, 8) + rng.randbytes(64 * n)
    files[f"{split}-labels-idx1-ubyte"] = struct.pack(">II", 0x801, n) + bytes(i % 10 for i in range(n))
write_dir("small", files, False)
# CIFAR-100: train.bin of 2 records and 5 bytes; test.bin one valid record
os.makedirs(os.path.join(out, "cifar"))
open(os.path.join(out, "cifar", "train.bin"), "wb").write(rng.randbytes(3074 * 2 + 5))
open(os.path.join(out, "cifar", "test.bin"), "wb").write(bytes([1, 10]) + rng.randbytes(3072))
EOF

TR=(train --out "$T/x.ckpt" --epochs 1 --batch 64 --train-limit 64 --test-limit 64 --threads 1)
expect_error "truncated idx (gzip)" "$T/trunc_gz/train-images-idx3-ubyte.gz" 'truncated' \
    "$L" "${TR[@]}" --data "$T/trunc_gz"
expect_error "truncated idx (raw)" "$T/trunc_raw/train-images-idx3-ubyte" 'truncated' \
    "$L" "${TR[@]}" --data "$T/trunc_raw"
expect_error "corrupt gzip" "$T/corrupt_gz/train-images-idx3-ubyte.gz" 'corrupt|invalid' \
    "$L" "${TR[@]}" --data "$T/corrupt_gz"
expect_error "wrong magic" "$T/magic/train-images-idx3-ubyte" 'magic' \
    "$L" "${TR[@]}" --data "$T/magic"
expect_error "missing data dir" "$T/nonexistent" 'cannot open|No such' \
    "$L" "${TR[@]}" --data "$T/nonexistent"
expect_error "CIFAR file of wrong size" "$T/cifar/train.bin" 'size|multiple' \
    "$L" "${TR[@]}" --data "$T/cifar"
expect_error "8x8 images" "--image-size 28" 'at least 28x28, got 8x8' \
    "$L" "${TR[@]}" --data "$T/small"

# ---- checkpoints: one tiny real one, and broken variants -------------------------------------
if ! "$L" "${TR[@]}" --out "$T/cnn.ckpt" --data "$T/good" >"$T/out" 2>"$T/err"; then
    bad "tiny training run for the checkpoint cases" "failed"
else
    ok
    "$PY" - "$T/cnn.ckpt" "$T" 2>"$T/err" <<'EOF' || bad "checkpoint variants" "python failed"
import json, struct, sys

src, out = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head, data = json.loads(raw[8:8 + n]), raw[8 + n:]


def save(name, h):
    s = json.dumps(h, separators=(",", ":")).encode()
    s += b" " * (-len(s) % 8)
    open(f"{out}/{name}", "wb").write(struct.pack("<Q", len(s)) + s + data)


h = json.loads(json.dumps(head))
h["fc.bias_renamed"] = h.pop("fc.bias")
save("renamed.ckpt", h)
h = json.loads(json.dumps(head))
m = json.loads(h["__metadata__"]["lowbit.model"])
m["arch"] = "resnet20"
h["__metadata__"]["lowbit.model"] = json.dumps(m)
save("claims_resnet20.ckpt", h)
h = json.loads(json.dumps(head))
m = json.loads(h["__metadata__"]["lowbit.model"])
m["norm_std"] = [0.0]
h["__metadata__"]["lowbit.model"] = json.dumps(m)
save("bad_norm.ckpt", h)
open(f"{out}/hdr_size.ckpt", "wb").write(struct.pack("<Q", 2 * len(raw)) + raw[8:])
open(f"{out}/hdr_json.ckpt", "wb").write(raw[:8] + b"[" + raw[9:])
EOF
    expect_error "checkpoint header size beyond the file" "$T/hdr_size.ckpt" 'header' \
        "$L" eval "$T/hdr_size.ckpt" --data "$T/good"
    expect_error "checkpoint header not JSON" "$T/hdr_json.ckpt" 'header' \
        "$L" info "$T/hdr_json.ckpt"
    expect_error "checkpoint with a renamed tensor" "$T/renamed.ckpt" "fc.bias.*(missing|not part)" \
        "$L" eval "$T/renamed.ckpt" --data "$T/good"
    expect_error "cnn checkpoint claiming resnet20" "$T/claims_resnet20.ckpt" 'shape|missing' \
        "$L" info "$T/claims_resnet20.ckpt"
    expect_error "checkpoint with a malformed normalization" "$T/bad_norm.ckpt" 'norm_std' \
        "$L" info "$T/bad_norm.ckpt"
    expect_error "resume from a checkpoint that does not fit" "$T/claims_resnet20.ckpt" \
        'shape|missing' "$L" "${TR[@]}" --data "$T/good" --resume "$T/claims_resnet20.ckpt"
    expect_error "data that does not fit the checkpoint" "$T/cifar" '3x32x32 with 100 classes' \
        "$L" eval "$T/cnn.ckpt" --data "$T/cifar"
fi
expect_error "missing checkpoint (eval)" "$T/none.ckpt" 'cannot open' \
    "$L" eval "$T/none.ckpt" --data "$T/good"
expect_error "missing checkpoint (info)" "$T/none.ckpt" 'cannot open' "$L" info "$T/none.ckpt"

# ---- option values ---------------------------------------------------------------------------
G=(--data "$T/good")
expect_error "--epochs 0" "--epochs" "'0'" "$L" "${TR[@]}" "${G[@]}" --epochs 0
expect_error "--batch abc" "--batch" "'abc'" "$L" "${TR[@]}" "${G[@]}" --batch abc
expect_error "--lr -1" "--lr" "'-1'" "$L" "${TR[@]}" "${G[@]}" --lr -1
expect_error "--wbits 9" "--wbits" "'9'" "$L" "${TR[@]}" "${G[@]}" --wbits 9
expect_error "--crop-pad 17" "--crop-pad" "'17'" "$L" "${TR[@]}" "${G[@]}" --crop-pad 17
expect_error "--model foo" "--model" "'foo'" "$L" "${TR[@]}" "${G[@]}" --model foo
expect_error "--quant bar" "--quant" "'bar'" "$L" "${TR[@]}" "${G[@]}" --quant bar
expect_error "unknown option" "--frobnicate" 'unknown option' "$L" "${TR[@]}" "${G[@]}" --frobnicate
expect_error "option without its value" "--epochs" 'needs a value' "$L" "${TR[@]}" "${G[@]}" --epochs
expect_error "--layer-bits garbage" "--layer-bits" 'garbage' \
    "$L" "${TR[@]}" "${G[@]}" --quant lsq --layer-bits garbage
expect_error "--layer-bits naming no layer" "--layer-bits" 'conv9' \
    "$L" "${TR[@]}" "${G[@]}" --quant lsq --layer-bits conv9=2/4
expect_error "--po2 without a learned scale" "--po2" 'no learned scale' \
    "$L" "${TR[@]}" "${G[@]}" --po2
expect_error "--po2 with reg" "--po2" 'reg' "$L" "${TR[@]}" "${G[@]}" --quant reg --po2
expect_error "--width-mult on a resnet" "--width-mult" 'MobileNets' \
    "$L" "${TR[@]}" "${G[@]}" --model resnet20 --width-mult 0.5
expect_error "--width-mult 0.1" "--width-mult" "'0.1'" "$L" "${TR[@]}" "${G[@]}" --width-mult 0.1
expect_error "train without --out" "--out" 'required' "$L" train "${G[@]}"
# --quant reg's options (docs/reg.md)
expect_error "--levels without --quant reg" "--levels" 'needs --quant reg' \
    "$L" "${TR[@]}" "${G[@]}" --quant lsq --levels fixed
expect_error "--reg-lambda without --quant" "--reg-lambda" 'needs --quant reg' \
    "$L" "${TR[@]}" "${G[@]}" --reg-lambda 10
expect_error "--levels foo" "--levels" "'foo'" "$L" "${TR[@]}" "${G[@]}" --quant reg --levels foo
expect_error "--reg-kind l1" "--reg-kind" "'l1'" "$L" "${TR[@]}" "${G[@]}" --quant reg --reg-kind l1
expect_error "--reg-lambda -1" "--reg-lambda" "'-1'" "$L" "${TR[@]}" "${G[@]}" --quant reg \
    --reg-lambda -1
expect_error "--reg-lambda-max nan" "--reg-lambda-max" "'nan'" "$L" "${TR[@]}" "${G[@]}" \
    --quant reg --reg-lambda-max nan
expect_error "--levels-lr inf" "--levels-lr" "'inf'" "$L" "${TR[@]}" "${G[@]}" --quant reg \
    --levels learned --levels-lr inf
expect_error "--levels-lr -1e-6" "--levels-lr" "'-1e-6'" "$L" "${TR[@]}" "${G[@]}" --quant reg \
    --levels-lr -1e-6
expect_error "--reg-ramp-start 1.5" "--reg-ramp-start" "'1.5'" "$L" "${TR[@]}" "${G[@]}" \
    --quant reg --reg-ramp-start 1.5
expect_error "--quant reg --wbits 1" "--wbits" "'1'" "$L" "${TR[@]}" "${G[@]}" --quant reg \
    --wbits 1
expect_error "bench --levels without --quant reg" "--levels" 'needs --quant reg' \
    "$L" bench --levels step
expect_error "--on-collapse maybe" "--on-collapse" "'maybe'" "$L" "${TR[@]}" "${G[@]}" \
    --on-collapse maybe
expect_error "--warmup longer than the run" "--warmup" 'not shorter than the run' \
    "$L" "${TR[@]}" "${G[@]}" --warmup 2
expect_error "--step-epochs that never steps" "--step-epochs" 'never lower' \
    "$L" "${TR[@]}" "${G[@]}" --sched step --step-epochs 3 --epochs 2
if [ -s "$T/cnn.ckpt" ]; then
    expect_error "--resume with another --model" "--model resnet20" 'contradicts the checkpoint' \
        "$L" train --resume "$T/cnn.ckpt" --out "$T/r.ckpt" "${G[@]}" --model resnet20
    expect_error "--resume with another --lr" "--lr 0.5" 'contradicts' \
        "$L" train --resume "$T/cnn.ckpt" --out "$T/r.ckpt" "${G[@]}" --lr 0.5
    expect_error "--resume with --init" "--init" 'cannot be combined' \
        "$L" train --resume "$T/cnn.ckpt" --out "$T/r.ckpt" "${G[@]}" --init "$T/cnn.ckpt"
fi
expect_error "bench --model foo" "--model" "'foo'" "$L" bench --model foo
expect_error "bench --steps 0" "--steps" "'0'" "$L" bench --steps 0
expect_error "eval --batch abc" "--batch" "'abc'" "$L" eval "$T/x.ckpt" --batch abc
expect_error "eval without a file" "FILE" 'no checkpoint' "$L" eval

for c in train eval info bench; do expect_help "$c --help" "$L" "$c" --help; done
expect_help "lowbit --help" "$L" --help

echo "errors.sh: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
