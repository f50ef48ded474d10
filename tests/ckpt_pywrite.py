"""Independent safetensors writer and checker for tests/test_ckpt.c: pure struct + json + numpy
following the format spec, sharing no code with lowbit. Not a general safetensors library.

  ckpt_pywrite.py write PATH   writes the reference tensors below, in a layout lowbit's writer
                               never produces (data order differs from header order, JSON with
                               spaces and \\u escapes, __metadata__ last)
  ckpt_pywrite.py check PATH   verifies a file lowbit wrote from the same tensors, in this order:
                               values, header layout, padding, contiguous data, no extra entries
Exits non-zero (with a message) on any failure. The C test keeps the same table."""
import json
import struct
import sys

import numpy as np

META = {"epoch": "7", "note": "h\u00e9llo \"world\"\n"}


def tensors():
    """(name, dtype, shape, little-endian numpy array) in the order lowbit writes them."""
    return [
        ("layer.0/weight", "F32", [3, 4], (np.arange(12) * 0.25 - 1.25).astype("<f4")),
        ("counts", "I32", [5], np.array([-2**31, -1, 0, 1, 2**31 - 1], dtype="<i4")),
        ("bytes", "U8", [7], ((np.arange(7) * 37) % 256).astype("<u1")),
        ("signed", "I8", [2, 3], np.array([-128, -1, 0, 1, 127, 5], dtype="<i1")),
        ("big", "U64", [3], np.array([0, 2**64 - 1, 2**53 + 1], dtype="<u8")),
        ("scalar", "F32", [], np.array(3.5, dtype="<f4")),
        ("empty", "F32", [2, 0], np.zeros((2, 0), dtype="<f4")),
        ("\u00fcn\u00ef \"q\"", "U8", [1], np.array([42], dtype="<u1")),
    ]


def write(path):
    header, blobs, at = {}, [], 0
    for name, dtype, shape, arr in reversed(tensors()):  # data in reverse order
        raw = arr.tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    # Header keys sorted by name (not data order), metadata last.
    ordered = {k: header[k] for k in sorted(header)}
    ordered["__metadata__"] = META
    text = json.dumps(ordered, ensure_ascii=True).encode("utf-8")
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def fail(msg):
    sys.exit("ckpt_pywrite.py check: " + msg)


def check(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        fail("header size %d beyond file size %d" % (n, len(blob)))
    if (8 + n) % 8:
        fail("data section starts at %d, not 8-aligned" % (8 + n))
    text = blob[8:8 + n].decode("utf-8")
    stripped = text.rstrip(" ")
    if not stripped.endswith("}") or len(text) - len(stripped) >= 8:
        fail("header padding is not 0-7 spaces after the object")

    def no_dups(pairs):
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            fail("duplicate keys in %r" % keys)
        return dict(pairs)

    header = json.loads(stripped, object_pairs_hook=no_dups)
    data = blob[8 + n:]
    if header.pop("__metadata__", None) != META:
        fail("metadata differs")
    expect = tensors()
    if list(header) != [t[0] for t in expect]:
        fail("tensor names/order %r" % list(header))
    at = 0
    for name, dtype, shape, arr in expect:
        e = header[name]
        if e != {"dtype": dtype, "shape": shape, "data_offsets": [at, at + arr.nbytes]}:
            fail("entry %r is %r" % (name, e))
        got = np.frombuffer(data[at:at + arr.nbytes], dtype=arr.dtype).reshape(shape)
        if not np.array_equal(got, arr.reshape(shape)):
            fail("values of %r differ: %r vs %r" % (name, got, arr))
        at += arr.nbytes
    if at != len(data):
        fail("data section is %d bytes, tensors cover %d" % (len(data), at))
    print("ckpt_pywrite.py check: ok")


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("write", "check"):
        sys.exit("usage: ckpt_pywrite.py write|check PATH")
    (write if sys.argv[1] == "write" else check)(sys.argv[2])
