#!/usr/bin/python3
"""Builds the robustness-sweep data sets (issue 10, part 4) in the exact formats lowbit reads.

usage: make_sets.py OUTDIR [--only glyphs,digits,colour,tiny,hundred,folder]

Writes, deterministically (fixed seeds; same Pillow/FreeType/NumPy/scikit-learn -> same bytes):
  OUTDIR/glyphs/  letters A..J rendered from 21 DejaVu faces, 28x28 grey, white on black,
                  31,200 train + 5,200 test, MNIST idx (.gz)
  OUTDIR/digits/  scikit-learn load_digits() 8x8 upscaled (bilinear) to 28x28, stratified split
                  1,500 train / 297 test, MNIST idx (.gz), plus split.json (the indices into
                  load_digits() of every written record, in file order)
  OUTDIR/colour/  10 coloured shapes on textured, noisy backgrounds with distractors, 32x32x3,
                  CIFAR-10 binary: data_batch_1..5.bin (2,000 each) + test_batch.bin (2,000)
  OUTDIR/tiny/    10 grey texture classes, 28x28, 500 train + 500 test, MNIST idx (.gz)
Two more, only when named in --only (not part of the sweep's default SETS):
  OUTDIR/hundred/ 100 classes (the colour set's 10 shapes x 10 fill colours), 32x32x3,
                  CIFAR-100 binary: train.bin (20,000) + test.bin (5,000)
  OUTDIR/folder/  an image folder of JPEGs: 6 of the shapes, 48x48 (a tenth 60x40),
                  train/<class>/ 1,200 + test/<class>/ 300

Every training file is in shuffled order (lowbit's --train-limit takes the first N records).
No class is the horizontal mirror of another one, so the sets stay valid with `--flip` too
(lowbit's default augmentation is a crop after padding by 2, no flip: docs/robust.md).
"""
import gzip
import json
import math
import os
import struct
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIR = "/usr/share/fonts/truetype/dejavu"
FONTS = [
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSans-ExtraLight.ttf", "DejaVuSansCondensed.ttf",
    "DejaVuSansCondensed-Bold.ttf", "DejaVuSansCondensed-Oblique.ttf",
    "DejaVuSansCondensed-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "DejaVuSerifCondensed.ttf", "DejaVuSerifCondensed-Bold.ttf",
    "DejaVuSerifCondensed-Italic.ttf", "DejaVuSerifCondensed-BoldItalic.ttf",
]
GLYPH_CLASSES = list("ABCDEFGHIJ")
SHAPES = ["circle", "square", "triangle", "star", "plus", "ring", "diamond", "hexagon",
          "crescent", "x"]
TEXTURES = ["h-stripes", "v-stripes", "cross-hatch", "checker", "rings", "dots", "blobs",
            "clouds", "speckle", "spokes"]


# ---------------------------------------------------------------- writers
def _gz_write(path, payload):
    # mtime=0 and no file name in the header: byte-identical output on every run
    with open(path, "wb") as raw:
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as f:
            f.write(payload)


def write_idx(outdir, split, images, labels):
    """split 'train' or 't10k'; images uint8 (n, 28, 28); labels uint8 (n,)."""
    images = np.ascontiguousarray(images, dtype=np.uint8)
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    n, h, w = images.shape
    assert labels.shape == (n,) and labels.max() < 10
    _gz_write(os.path.join(outdir, f"{split}-images-idx3-ubyte.gz"),
              struct.pack(">IIII", 0x00000803, n, h, w) + images.tobytes())
    _gz_write(os.path.join(outdir, f"{split}-labels-idx1-ubyte.gz"),
              struct.pack(">II", 0x00000801, n) + labels.tobytes())


def write_cifar(path, images, labels):
    """images uint8 (n, 32, 32, 3) HWC RGB; records: label byte + R plane + G plane + B plane."""
    n = images.shape[0]
    assert images.shape[1:] == (32, 32, 3) and labels.max() < 10
    rec = np.empty((n, 3073), dtype=np.uint8)
    rec[:, 0] = labels
    rec[:, 1:] = images.transpose(0, 3, 1, 2).reshape(n, 3072)  # CHW, row-major planes
    with open(path, "wb") as f:
        f.write(rec.tobytes())


def stats(name, split, images, labels, classes):
    x = images.astype(np.float64) / 255.0
    hist = np.bincount(labels, minlength=len(classes))
    axes = (0, 1, 2) if x.ndim == 4 else None  # NHWC colour: per channel
    m = np.atleast_1d(x.mean(axis=axes))
    s = np.atleast_1d(x.std(axis=axes))
    ms = "mean " + "/".join(f"{v:.4f}" for v in m) + "  std " + "/".join(f"{v:.4f}" for v in s)
    print(f"  {name:7s} {split:5s} n={len(labels):6d} classes={len(classes)} "
          f"per-class {hist.min()}..{hist.max()}  {ms}", flush=True)
    return {"n": int(len(labels)), "per_class": hist.tolist(), "mean": m.tolist(),
            "std": s.tolist()}


def balanced_labels(rng, n, k=10):
    lab = np.repeat(np.arange(k, dtype=np.uint8), n // k)
    assert len(lab) == n
    rng.shuffle(lab)
    return lab


# ---------------------------------------------------------------- glyphs
class GlyphRenderer:
    S = 56  # 2x supersampled canvas

    def __init__(self):
        self.paths = [os.path.join(FONT_DIR, f) for f in FONTS]
        for p in self.paths:
            if not os.path.isfile(p):
                sys.exit(f"make_sets: missing font {p}")
        self.cache = {}

    def font(self, fi, size):
        key = (fi, size)
        if key not in self.cache:
            self.cache[key] = ImageFont.truetype(self.paths[fi], size)
        return self.cache[key]

    def render(self, rng, ch):
        S = self.S
        fi = int(rng.integers(len(self.paths)))
        size = int(rng.integers(30, 45))                  # 15..22 px at 28x28
        sw = int(rng.choice([0, 0, 0, 1, 1, 2]))          # extra stroke (at 2x)
        angle = float(rng.uniform(-12, 12))
        dx, dy = rng.uniform(-4, 4, size=2)               # +-2 px at 28x28
        font = self.font(fi, size)
        img = Image.new("L", (S, S), 0)
        d = ImageDraw.Draw(img)
        x0, y0, x1, y1 = d.textbbox((0, 0), ch, font=font, stroke_width=sw)
        ox = (S - (x1 - x0)) / 2 - x0 + dx
        oy = (S - (y1 - y0)) / 2 - y0 + dy
        d.text((ox, oy), ch, fill=255, font=font, stroke_width=sw, stroke_fill=255)
        img = img.rotate(angle, resample=Image.BICUBIC, center=(S / 2, S / 2))
        img = img.resize((28, 28), resample=Image.BOX)
        return np.asarray(img, dtype=np.uint8)


def make_glyphs(out, n_train=31200, n_test=5200, seed=1001):
    rng = np.random.default_rng(seed)
    r = GlyphRenderer()
    res = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = balanced_labels(rng, n)
        images = np.empty((n, 28, 28), dtype=np.uint8)
        for i, lab in enumerate(labels):
            images[i] = r.render(rng, GLYPH_CLASSES[lab])
        write_idx(out, split, images, labels)
        res[split] = stats("glyphs", split, images, labels, GLYPH_CLASSES)
    return res


# ---------------------------------------------------------------- digits
def make_digits(out, seed=2002):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    dg = load_digits()
    x8 = dg.images  # (1797, 8, 8) floats 0..16
    y = dg.target.astype(np.uint8)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=297, stratify=y, random_state=seed, shuffle=True)
    assert len(tr) == 1500 and len(te) == 297
    up = np.empty((len(y), 28, 28), dtype=np.uint8)
    for i in range(len(y)):
        a = np.clip(np.rint(x8[i] * (255.0 / 16.0)), 0, 255).astype(np.uint8)
        up[i] = np.asarray(Image.fromarray(a, mode="L").resize((28, 28), resample=Image.BILINEAR))
    res = {}
    for split, ids in (("train", tr), ("t10k", te)):
        write_idx(out, split, up[ids], y[ids])
        res[split] = stats("digits", split, up[ids], y[ids], list(range(10)))
    with open(os.path.join(out, "split.json"), "w") as f:
        json.dump({"source": "sklearn.datasets.load_digits()", "seed": seed,
                   "train_indices": [int(i) for i in tr], "test_indices": [int(i) for i in te]},
                  f)
        f.write("\n")
    return res


# ---------------------------------------------------------------- colour shapes
def _poly(cx, cy, radii, angles):
    return [(cx + r * math.cos(a), cy + r * math.sin(a)) for r, a in zip(radii, angles)]


def _shape_mask(kind, S, cx, cy, r, theta, rng):
    """A mode 'L' mask (S x S) of one shape of `kind`, radius r, rotation theta (radians)."""
    m = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(m)
    deg = math.pi / 180
    if kind == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif kind == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        ri = r * rng.uniform(0.5, 0.68)
        d.ellipse([cx - ri, cy - ri, cx + ri, cy + ri], fill=0)
    elif kind == "crescent":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        a = rng.uniform(0, 2 * math.pi)
        off = r * rng.uniform(0.4, 0.6)
        ox, oy = cx + off * math.cos(a), cy + off * math.sin(a)
        d.ellipse([ox - r, oy - r, ox + r, oy + r], fill=0)
    elif kind == "square":
        d.polygon(_poly(cx, cy, [r] * 4, [theta + (45 + 90 * k) * deg for k in range(4)]), fill=255)
    elif kind == "diamond":  # vertices on the axes, taller than wide
        rx, ry = 0.75 * r, 1.1 * r
        pts = [(0, -ry), (rx, 0), (0, ry), (-rx, 0)]
        c, s = math.cos(theta), math.sin(theta)
        d.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=255)
    elif kind == "triangle":
        d.polygon(_poly(cx, cy + 0.15 * r, [1.1 * r] * 3,
                        [theta + (-90 + 120 * k) * deg for k in range(3)]), fill=255)
    elif kind == "hexagon":
        d.polygon(_poly(cx, cy, [r] * 6, [theta + (60 * k) * deg for k in range(6)]), fill=255)
    elif kind == "star":
        inner = rng.uniform(0.38, 0.5)
        d.polygon(_poly(cx, cy, [r if k % 2 == 0 else inner * r for k in range(10)],
                        [theta + (-90 + 36 * k) * deg for k in range(10)]), fill=255)
    elif kind in ("plus", "x"):
        w = r * rng.uniform(0.28, 0.4)
        pts = [(-w, -r), (w, -r), (w, -w), (r, -w), (r, w), (w, w), (w, r), (-w, r), (-w, w),
               (-r, w), (-r, -w), (-w, -w)]
        t = theta + (45 * deg if kind == "x" else 0)
        c, s = math.cos(t), math.sin(t)
        d.polygon([(cx + x * c - y * s, cy + x * s + y * c) for x, y in pts], fill=255)
    else:
        raise ValueError(kind)
    return m


def _colour_far_from(rng, ref, min_dist=110.0):
    for _ in range(100):
        c = rng.integers(0, 256, size=3)
        if np.linalg.norm(c - ref) >= min_dist:
            return c
    return 255 - ref.astype(np.int64)


def _fill_colour(rng, ref, palette):
    """The shape's fill: any colour far from the background, or near a given one."""
    if palette is None:
        return _colour_far_from(rng, ref)
    return np.clip(np.asarray(palette, np.float64) + rng.normal(0, 12, 3), 0, 255).astype(np.int64)


def render_colour(rng, kind, palette=None):
    K = 4
    S = 32 * K
    yy, xx = np.mgrid[0:S, 0:S] / S
    # background: two-colour gradient in a random direction + low-frequency texture
    c0 = rng.integers(0, 256, size=3).astype(np.float64)
    c1 = rng.integers(0, 256, size=3).astype(np.float64)
    a = rng.uniform(0, 2 * math.pi)
    t = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) + 0.5
    t = np.clip(t, 0, 1)[..., None]
    bg = c0 * (1 - t) + c1 * t
    g = rng.integers(3, 7)
    lowf = rng.normal(0, rng.uniform(10, 35), size=(g, g, 3))
    lowf = np.stack([np.asarray(Image.fromarray(lowf[..., c].astype(np.float32), mode="F")
                                .resize((S, S), resample=Image.BICUBIC)) for c in range(3)], -1)
    bg = np.clip(bg + lowf, 0, 255)
    img = Image.fromarray(bg.astype(np.uint8), mode="RGB")
    d = ImageDraw.Draw(img)
    # distractors: thin lines and small dots
    for _ in range(int(rng.integers(1, 5))):
        col = tuple(int(v) for v in rng.integers(0, 256, size=3))
        if rng.random() < 0.6:
            p = rng.uniform(0, S, size=4)
            d.line([(p[0], p[1]), (p[2], p[3])], fill=col, width=int(rng.integers(2, 5)))
        else:
            p = rng.uniform(0, S, size=2)
            rr = rng.uniform(2, 6)
            d.ellipse([p[0] - rr, p[1] - rr, p[0] + rr, p[1] + rr], fill=col)
    # the shape
    r = rng.uniform(7.5, 13.0) * K
    cx = rng.uniform(r * 0.8 + 2 * K, S - r * 0.8 - 2 * K)
    cy = rng.uniform(r * 0.8 + 2 * K, S - r * 0.8 - 2 * K)
    theta = rng.uniform(-15, 15) * math.pi / 180
    mask = _shape_mask(kind, S, cx, cy, r, theta, rng)
    ref = bg[int(np.clip(cy, 0, S - 1)), int(np.clip(cx, 0, S - 1))]
    fg = _fill_colour(rng, ref, palette)
    if rng.random() < 0.3:  # two-tone fill: stripes of a second colour
        fg2 = _fill_colour(rng, ref, palette)
        per = rng.uniform(3, 7) * K
        b = rng.uniform(0, math.pi)
        st = (np.sin((np.cos(b) * xx + np.sin(b) * yy) * S * 2 * math.pi / per) > 0)[..., None]
        fill = np.where(st, fg, fg2).astype(np.uint8)
    else:
        fill = np.broadcast_to(fg.astype(np.uint8), (S, S, 3)).copy()
    img.paste(Image.fromarray(fill, mode="RGB"), (0, 0), mask)
    small = np.asarray(img.resize((32, 32), resample=Image.LANCZOS), dtype=np.float64)
    small = small + rng.normal(0, rng.uniform(4, 20), size=small.shape)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def make_colour(out, n_train=10000, n_test=2000, seed=3003):
    rng = np.random.default_rng(seed)
    res = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = balanced_labels(rng, n)
        images = np.empty((n, 32, 32, 3), dtype=np.uint8)
        for i, lab in enumerate(labels):
            images[i] = render_colour(rng, SHAPES[lab])
        if split == "train":
            for b in range(5):
                sl = slice(b * 2000, (b + 1) * 2000)
                write_cifar(os.path.join(out, f"data_batch_{b + 1}.bin"), images[sl], labels[sl])
        else:
            write_cifar(os.path.join(out, "test_batch.bin"), images, labels)
        res[split] = stats("colour", split, images, labels, SHAPES)
    with open(os.path.join(out, "batches.meta.txt"), "w") as f:
        f.write("\n".join(SHAPES) + "\n")
    return res


# ---------------------------------------------------------------- tiny textures
def render_texture(rng, kind):
    n = 28
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    cx, cy = rng.uniform(8, 20, size=2)
    x, y = xx - cx, yy - cy
    t = rng.uniform(-10, 10) * math.pi / 180
    xr = x * math.cos(t) + y * math.sin(t)
    yr = -x * math.sin(t) + y * math.cos(t)
    ph = rng.uniform(0, 2 * math.pi)
    f = 2 * math.pi / rng.uniform(4, 8)  # period 4..8 px
    if kind == "h-stripes":
        v = 0.5 + 0.5 * np.cos(f * yr + ph)
    elif kind == "v-stripes":
        v = 0.5 + 0.5 * np.cos(f * xr + ph)
    elif kind == "cross-hatch":
        a = np.cos(f * (xr + yr) / math.sqrt(2) + ph)
        b = np.cos(f * (xr - yr) / math.sqrt(2) + ph)
        v = np.maximum(a, b) * 0.5 + 0.5
    elif kind == "checker":
        v = (np.cos(f * xr / 2 + ph) * np.cos(f * yr / 2 + ph) > 0).astype(np.float64)
    elif kind == "rings":
        v = 0.5 + 0.5 * np.cos(f * np.hypot(x, y) + ph)
    elif kind == "dots":
        per = rng.uniform(5, 8)
        s = rng.uniform(0.9, 1.5)
        dx = (xr + ph) % per - per / 2
        dy = (yr + ph) % per - per / 2
        v = np.exp(-(dx ** 2 + dy ** 2) / (2 * s * s))
    elif kind == "blobs":
        v = np.zeros((n, n))
        for _ in range(int(rng.integers(1, 4))):
            bx, by = rng.uniform(4, 24, size=2)
            s = rng.uniform(2.5, 5)
            v = np.maximum(v, np.exp(-((xx - bx) ** 2 + (yy - by) ** 2) / (2 * s * s)))
    elif kind == "clouds":
        g = int(rng.integers(3, 6))
        lo = rng.uniform(0, 1, size=(g, g)).astype(np.float32)
        v = np.asarray(Image.fromarray(lo, mode="F").resize((n, n), resample=Image.BICUBIC),
                       dtype=np.float64)
        v = (v - v.min()) / max(v.max() - v.min(), 1e-6)
    elif kind == "speckle":
        v = (rng.random((n, n)) < rng.uniform(0.06, 0.16)).astype(np.float64)
    elif kind == "spokes":
        k = int(rng.integers(4, 9))
        v = 0.5 + 0.5 * np.cos(k * np.arctan2(y, x) + ph)
        v *= np.clip(np.hypot(x, y) / 3, 0, 1)
    else:
        raise ValueError(kind)
    contrast = rng.uniform(0.55, 1.0)
    lo = rng.uniform(0, 1 - contrast)
    v = lo + contrast * v + rng.normal(0, rng.uniform(0.03, 0.12), size=v.shape)
    return np.clip(np.rint(v * 255), 0, 255).astype(np.uint8)


def make_tiny(out, n_train=500, n_test=500, seed=4004):
    rng = np.random.default_rng(seed)
    res = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        labels = balanced_labels(rng, n)
        images = np.stack([render_texture(rng, TEXTURES[lab]) for lab in labels])
        write_idx(out, split, images, labels)
        res[split] = stats("tiny", split, images, labels, TEXTURES)
    return res


# ---------------------------------------------------------------- extra sets (--only)
# Not in the sweep's four: sets of other shapes of data, for checks beyond it (bench/RESULTS.md,
# "Two more kinds of data").
PALETTE = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
           (145, 30, 180), (70, 240, 240), (240, 50, 230), (250, 250, 250), (0, 0, 128)]
FOLDER_CLASSES = SHAPES[:6]
HUNDRED_CLASSES = [f"{s}_{c}" for s in SHAPES for c in range(10)]


def make_hundred(out, n_train=20000, n_test=5000, seed=77):
    """CIFAR-100 binary (coarse label byte, fine label byte, R/G/B planes): class = shape x one
    of 10 fill colours."""
    rng = np.random.default_rng(seed)
    res = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.repeat(np.arange(100), n // 100)
        rng.shuffle(labels)
        images = np.empty((n, 32, 32, 3), dtype=np.uint8)
        for i, lab in enumerate(labels):
            images[i] = render_colour(rng, SHAPES[lab // 10], PALETTE[lab % 10])
        rec = np.empty((n, 3074), dtype=np.uint8)
        rec[:, 0] = labels // 5
        rec[:, 1] = labels
        rec[:, 2:] = images.transpose(0, 3, 1, 2).reshape(n, 3072)
        with open(os.path.join(out, f"{split}.bin"), "wb") as f:
            f.write(rec.tobytes())
        res[split] = stats("hundred", split, images, labels, HUNDRED_CLASSES)
    return res


def make_folder(out, n_train=1200, n_test=300, seed=5):
    """An image folder (train/<class>/*.jpg, test/<class>/*.jpg): 6 of the colour set's shapes,
    JPEG quality 90, 48x48 but a tenth 60x40 (lowbit resizes to the most common size)."""
    rng = np.random.default_rng(seed)
    res = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = np.arange(n) % len(FOLDER_CLASSES)
        images = np.empty((n, 32, 32, 3), dtype=np.uint8)
        for i, lab in enumerate(labels):
            images[i] = render_colour(rng, FOLDER_CLASSES[lab])
            size = (60, 40) if rng.random() < 0.1 else (48, 48)
            d = os.path.join(out, split, FOLDER_CLASSES[lab])
            os.makedirs(d, exist_ok=True)
            Image.fromarray(images[i]).resize(size, Image.BILINEAR).save(
                os.path.join(d, f"{i:05d}.jpg"), quality=90)
        res[split] = stats("folder", split, images, labels, FOLDER_CLASSES)  # before resizing
    return res


SETS = {"glyphs": (make_glyphs, GLYPH_CLASSES), "digits": (make_digits, list(range(10))),
        "colour": (make_colour, SHAPES), "tiny": (make_tiny, TEXTURES)}
EXTRA = {"hundred": (make_hundred, HUNDRED_CLASSES), "folder": (make_folder, FOLDER_CLASSES)}


def main(argv):
    if len(argv) < 2 or argv[1].startswith("-"):
        sys.exit(__doc__)
    root = argv[1]
    only = list(SETS)
    if len(argv) >= 4 and argv[2] == "--only":
        only = argv[3].split(",")
        bad = [s for s in only if s not in SETS and s not in EXTRA]
        if bad:
            sys.exit(f"make_sets: unknown set(s) {bad}; known: {list(SETS) + list(EXTRA)}")
    os.makedirs(root, exist_ok=True)
    for name in only:
        fn, classes = SETS[name] if name in SETS else EXTRA[name]
        out = os.path.join(root, name)
        os.makedirs(out, exist_ok=True)
        print(f"{name}: writing {out}", flush=True)
        res = fn(out)
        with open(os.path.join(out, "stats.json"), "w") as f:
            json.dump({"set": name, "classes": [str(c) for c in classes], **res}, f, indent=1)
            f.write("\n")


if __name__ == "__main__":
    main(sys.argv)
