/* Tests of lb_data: idx (raw, gzip, multi-member gzip) and CIFAR-10/100 files written here in the
 * exact formats, every kind of bad input, data directories, the real Fashion-MNIST, normalization
 * constants. The loader that reads them into batches is tested in test_loader.c. */
#include "lb_data.h"
#include "lb_test.h"

#include <ftw.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static char g_dir[64];

/* ---- file helpers -------------------------------------------------------------------------- */

/* A path under the temp dir; a ring of buffers so a few can be live at once. */
static const char *tp(const char *name) {
    static char ring[16][512];
    static int k;
    char *p = ring[k++ % 16];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void mkdir_tp(const char *name) {
    mkdir(tp(name), 0700);
}

static int write_raw(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    size_t w = n ? fwrite(p, 1, n, f) : 0;
    return (fclose(f) == 0) & (w == n);
}

/* Written with zlib's own gzip writer; mode "ab" appends a second gzip member. */
static int write_gz(const char *path, const void *p, size_t n, const char *mode) {
    gzFile g = gzopen(path, mode);
    if (!g) return 0;
    int w = n ? gzwrite(g, p, (unsigned)n) : 0;
    return (gzclose(g) == Z_OK) & (w == (int)n);
}

static uint8_t *read_all(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(sz > 0 ? (size_t)sz : 1);
    *n = p ? fread(p, 1, (size_t)(sz > 0 ? sz : 0), f) : 0;
    fclose(f);
    return p;
}

static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint8_t pix(int i, int y, int x) {
    return (uint8_t)(i * 37 + y * 11 + x * 3 + 1);
}

/* An idx images file of n h x w images, pixel(i, y, x) = pix(). */
static uint8_t *idx_images(int n, int h, int w, size_t *len) {
    *len = 16 + (size_t)n * h * w;
    uint8_t *p = malloc(*len);
    put_be32(p, 0x803);
    put_be32(p + 4, (uint32_t)n);
    put_be32(p + 8, (uint32_t)h);
    put_be32(p + 12, (uint32_t)w);
    for (int i = 0; i < n; i++)
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) p[16 + ((size_t)i * h + y) * w + x] = pix(i, y, x);
    return p;
}

/* An idx labels file, label i = (3 i + 1) % 10. */
static uint8_t *idx_labels(int n, size_t *len) {
    *len = 8 + (size_t)n;
    uint8_t *p = malloc(*len);
    put_be32(p, 0x801);
    put_be32(p + 4, (uint32_t)n);
    for (int i = 0; i < n; i++) p[8 + i] = (uint8_t)((3 * i + 1) % 10);
    return p;
}

static uint8_t cpix(int rec, int k) {
    return (uint8_t)(rec * 7 + k * 13 + (k >> 10));
}

/* CIFAR records: CIFAR-10 label (rec + lab0) % 10; CIFAR-100 coarse rec % 20, fine
 * (rec * 7 + lab0) % 100. */
static uint8_t *cifar_file(int nrec, int cifar100, int lab0, size_t *len) {
    size_t rs = cifar100 ? 3074 : 3073;
    *len = nrec * rs;
    uint8_t *p = malloc(*len);
    for (int r = 0; r < nrec; r++) {
        uint8_t *q = p + r * rs;
        if (cifar100) {
            q[0] = (uint8_t)(r % 20);
            q[1] = (uint8_t)((r * 7 + lab0) % 100);
        } else {
            q[0] = (uint8_t)((r + lab0) % 10);
        }
        for (int k = 0; k < 3072; k++) q[rs - 3072 + k] = cpix(r + lab0, k);
    }
    return p;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* Expects a failure whose message contains `needle` (a path) and, if given, `what`. */
static void expect_err(lb_status st, lb_status want, const char *needle, const char *what,
                       const char *label) {
    const char *m = lb_error_msg();
    CHECK(st != LB_OK && (want == LB_OK || st == want), "%s: status %s (%s)", label,
          lb_status_name(st), m);
    CHECK(strstr(m, needle) != NULL, "%s: message lacks '%s': %s", label, needle, m);
    if (what) CHECK(strstr(m, what) != NULL, "%s: message lacks '%s': %s", label, what, m);
}

/* ---- idx ----------------------------------------------------------------------------------- */

static void check_idx_set(const lb_dataset *d, int n, int h, int w, const char *what) {
    int top = 1; /* idx names no class count: classes run to the largest label (at least 2) */
    for (int i = 0; i < n; i++) top = (3 * i + 1) % 10 > top ? (3 * i + 1) % 10 : top;
    CHECK(d->n == n && d->c == 1 && d->h == h && d->w == w && d->classes == top + 1,
          "%s: shape %d %d %d %d classes %d (want %d)", what, d->n, d->c, d->h, d->w, d->classes,
          top + 1);
    if (d->n != n || d->h != h || d->w != w) return;
    int ok = 1;
    for (int i = 0; i < n; i++) {
        ok &= d->labels[i] == (3 * i + 1) % 10;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                ok &= d->images[((size_t)i * h + y) * w + x] == pix(i, y, x);
    }
    CHECK(ok, "%s: contents", what);
}

static void test_idx_good(void) {
    size_t il, ll;
    uint8_t *img = idx_images(5, 4, 3, &il), *lab = idx_labels(5, &ll);
    lb_dataset d;
    CHECK(write_raw(tp("i.raw"), img, il) && write_raw(tp("l.raw"), lab, ll), "write raw");
    CHECK(write_gz(tp("i.gz"), img, il, "wb") && write_gz(tp("l.gz"), lab, ll, "wb"), "write gz");
    lb_status st = lb_idx_load(tp("i.raw"), tp("l.raw"), &d);
    CHECK(st == LB_OK, "raw idx: %s", lb_error_msg());
    check_idx_set(&d, 5, 4, 3, "raw idx");
    lb_dataset_free(&d);
    st = lb_idx_load(tp("i.gz"), tp("l.gz"), &d);
    CHECK(st == LB_OK, "gzip idx: %s", lb_error_msg());
    check_idx_set(&d, 5, 4, 3, "gzip idx");
    lb_dataset_free(&d);
    st = lb_idx_load(tp("i.gz"), tp("l.raw"), &d); /* mixed */
    CHECK(st == LB_OK, "mixed idx: %s", lb_error_msg());
    check_idx_set(&d, 5, 4, 3, "mixed idx");
    lb_dataset_free(&d);
    /* gzip detected by content, not name; two gzip members (zlib's "ab" appends one). */
    CHECK(write_gz(tp("i2"), img, 20, "wb") && write_gz(tp("i2"), img + 20, il - 20, "ab"),
          "write 2-member gz");
    st = lb_idx_load(tp("i2"), tp("l.gz"), &d);
    CHECK(st == LB_OK, "2-member gzip idx: %s", lb_error_msg());
    check_idx_set(&d, 5, 4, 3, "2-member gzip idx");
    lb_dataset_free(&d);
    /* from memory */
    st = lb_idx_parse_mem("mi", img, il, "ml", lab, ll, &d);
    CHECK(st == LB_OK, "mem idx: %s", lb_error_msg());
    check_idx_set(&d, 5, 4, 3, "mem idx");
    lb_dataset_free(&d);
    free(img);
    free(lab);
}

/* One bad images file against good labels: fails, and the message names it and the problem. */
static void bad_images(const char *name, const uint8_t *p, size_t n, int gz, const char *what) {
    const char *path = tp(name);
    CHECK(gz ? write_gz(path, p, n, "wb") : write_raw(path, p, n), "write %s", name);
    lb_dataset d;
    lb_status st = lb_idx_load(path, tp("l.raw"), &d);
    expect_err(st, LB_EFORMAT, path, what, name);
    CHECK(d.images == NULL && d.labels == NULL && d.n == 0, "%s: out zeroed", name);
}

static void test_idx_bad(void) {
    size_t il, ll, gl = 0;
    uint8_t *img = idx_images(5, 4, 3, &il), *lab = idx_labels(5, &ll);
    lb_dataset d;
    char msg[64];

    bad_images("trunc.raw", img, il - 7, 0, "truncated: expected 60 pixel bytes, got 53");
    bad_images("trunc_hdr.raw", img, 10, 0, "truncated");
    bad_images("empty.raw", img, 0, 0, "empty");
    bad_images("trunc_content.gz", img, il - 1, 1, "truncated: expected 60 pixel bytes, got 59");
    uint8_t *longer = malloc(il + 3);
    memcpy(longer, img, il);
    memset(longer + il, 0xab, 3);
    bad_images("trail.raw", longer, il + 3, 0, "trailing garbage: 3 bytes");
    bad_images("trail.gz", longer, il + 3, 1, "trailing garbage");
    free(longer);

    uint8_t *bad = malloc(il);
    memcpy(bad, img, il);
    put_be32(bad, 0xdeadbeef);
    bad_images("magic.raw", bad, il, 0, "wrong magic 0xdeadbeef");
    put_be32(bad, 0x03080000);
    bad_images("swapped.raw", bad, il, 0, "byte-swapped");
    bad_images("labels_as_images.raw", lab, ll, 0, "magic");
    memcpy(bad, img, il);
    put_be32(bad + 8, 0);
    bad_images("zero_rows.raw", bad, il, 0, "dimension 1 is 0");
    put_be32(bad + 4, 0);
    put_be32(bad + 8, 4);
    bad_images("zero_n.raw", bad, il, 0, "dimension 0 is 0");
    put_be32(bad + 4, 0x7fffffff);
    put_be32(bad + 8, 4096);
    put_be32(bad + 12, 4096);
    bad_images("huge.raw", bad, il, 0, "declares");
    put_be32(bad + 12, 5000);
    bad_images("wide.raw", bad, il, 0, "implausible");
    put_be32(bad + 4, 100000); /* plausible header, tiny file: no big allocation, just truncated */
    put_be32(bad + 8, 28);
    put_be32(bad + 12, 28);
    bad_images("short.raw", bad, il, 0, "truncated: expected 78400000");
    free(bad);

    /* Gzip damage: a stream cut short, bytes flipped, garbage after the stream. */
    size_t bl = 16 + 50 * 28 * 28;
    uint8_t *big = malloc(bl);
    put_be32(big, 0x803);
    put_be32(big + 4, 50);
    put_be32(big + 8, 28);
    put_be32(big + 12, 28);
    uint32_t s = 1;
    for (size_t i = 16; i < bl; i++)
        big[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 24 & 0x3f);
    CHECK(write_gz(tp("big.gz"), big, bl, "wb"), "write big.gz");
    uint8_t *gzb = read_all(tp("big.gz"), &gl);
    CHECK(gzb && gl > 200, "read big.gz");
    const char *path = tp("cut.gz");
    for (int k = 1; k <= 3; k++) {
        write_raw(path, gzb, gl * k / 4);
        snprintf(msg, sizeof msg, "gzip cut at %d/4", k);
        expect_err(lb_idx_load(path, tp("l.raw"), &d), LB_EFORMAT, path, "truncated", msg);
    }
    write_raw(path, gzb, gl - 4); /* only the trailer's size field missing */
    expect_err(lb_idx_load(path, tp("l.raw"), &d), LB_EFORMAT, path, "truncated gzip", "no size");
    path = tp("corrupt.gz");
    for (int k = 1; k <= 6; k++) {
        size_t at = 20 + (gl - 30) * k / 7;
        gzb[at] ^= 0x5a;
        write_raw(path, gzb, gl);
        gzb[at] ^= 0x5a;
        snprintf(msg, sizeof msg, "gzip byte %zu flipped", at);
        expect_err(lb_idx_load(path, tp("l.raw"), &d), LB_EFORMAT, path, NULL, msg);
    }
    uint8_t *gzt = malloc(gl + 5);
    memcpy(gzt, gzb, gl);
    memcpy(gzt + gl, "junk!", 5);
    path = tp("gztrail.gz");
    write_raw(path, gzt, gl + 5);
    expect_err(lb_idx_load(path, tp("l.raw"), &d), LB_EFORMAT, path, "trailing garbage after",
               "garbage after gzip");
    /* and the undamaged stream does load (labels to match) */
    size_t l50n;
    uint8_t *l50 = idx_labels(50, &l50n);
    write_raw(tp("l50.raw"), l50, l50n);
    CHECK(lb_idx_load(tp("big.gz"), tp("l50.raw"), &d) == LB_OK && d.n == 50 &&
              memcmp(d.images, big + 16, bl - 16) == 0,
          "big.gz loads: %s", lb_error_msg());
    lb_dataset_free(&d);
    free(l50);
    free(gzt);
    free(gzb);
    free(big);

    /* Labels: count mismatch (both files named), any label up to 255, missing file. */
    size_t l4n;
    uint8_t *l4 = idx_labels(4, &l4n);
    write_raw(tp("l4.raw"), l4, l4n);
    lb_status st = lb_idx_load(tp("i.raw"), tp("l4.raw"), &d);
    expect_err(st, LB_EFORMAT, tp("l4.raw"), "5 images", "count mismatch");
    CHECK(strstr(lb_error_msg(), tp("i.raw")) != NULL, "mismatch names images: %s", lb_error_msg());
    free(l4);
    lab[8 + 3] = 255; /* e.g. EMNIST's 26 letters or 62 classes: the labels say how many */
    write_raw(tp("l255.raw"), lab, ll);
    st = lb_idx_load(tp("i.raw"), tp("l255.raw"), &d);
    CHECK(st == LB_OK && d.classes == 256 && d.labels[3] == 255, "label 255: %s, %d classes",
          lb_error_msg(), d.classes);
    if (st == LB_OK) lb_dataset_free(&d);
    lab[8 + 3] = 0;
    expect_err(lb_idx_load(tp("nope.gz"), tp("l.raw"), &d), LB_EIO, tp("nope.gz"), "cannot open",
               "missing images file");
    expect_err(lb_idx_load(tp("i.raw"), tp("nope"), &d), LB_EIO, tp("nope"), "cannot open",
               "missing labels file");
    expect_err(lb_idx_parse_mem("memimg", img, il - 1, "memlab", lab, ll, &d), LB_EFORMAT, "memimg",
               "truncated", "mem truncated");
    expect_err(lb_idx_parse_mem("memimg", img, il, "memlab", NULL, 0, &d), LB_EFORMAT, "memlab",
               "empty", "mem no labels");
    free(img);
    free(lab);
}

/* ---- CIFAR --------------------------------------------------------------------------------- */

static void test_cifar(void) {
    size_t n10, n100;
    uint8_t *f10 = cifar_file(3, 0, 4, &n10), *f100 = cifar_file(4, 1, 95, &n100);
    lb_dataset d;
    write_raw(tp("c10.bin"), f10, n10);
    write_raw(tp("c100.bin"), f100, n100);
    const char *p10 = tp("c10.bin"), *p100 = tp("c100.bin");
    CHECK(lb_cifar_load(&p10, 1, 0, &d) == LB_OK, "cifar10: %s", lb_error_msg());
    int ok = d.n == 3 && d.c == 3 && d.h == 32 && d.w == 32 && d.classes == 10;
    for (int r = 0; ok && r < 3; r++) {
        ok &= d.labels[r] == (r + 4) % 10;
        for (int k = 0; k < 3072; k++) ok &= d.images[r * 3072 + k] == cpix(r + 4, k);
    }
    CHECK(ok, "cifar10 contents");
    lb_dataset_free(&d);
    CHECK(lb_cifar_load(&p100, 1, 1, &d) == LB_OK, "cifar100: %s", lb_error_msg());
    ok = d.n == 4 && d.c == 3 && d.classes == 100;
    for (int r = 0; ok && r < 4; r++) {
        ok &= d.labels[r] == (r * 7 + 95) % 100; /* the fine label */
        for (int k = 0; k < 3072; k++) ok &= d.images[r * 3072 + k] == cpix(r + 95, k);
    }
    CHECK(ok, "cifar100 contents (fine labels)");
    lb_dataset_free(&d);
    const char *two[2] = {p10, p10};
    CHECK(lb_cifar_load(two, 2, 0, &d) == LB_OK && d.n == 6 && d.labels[3] == 4 &&
              d.images[5 * 3072 + 7] == cpix(2 + 4, 7),
          "two cifar10 files: %s", lb_error_msg());
    lb_dataset_free(&d);

    const char *p = tp("c10odd.bin");
    write_raw(p, f10, n10 - 5);
    expect_err(lb_cifar_load(&p, 1, 0, &d), LB_EFORMAT, p, "not a multiple", "cifar size");
    expect_err(lb_cifar_load(&p10, 1, 1, &d), LB_EFORMAT, p10, "3074-byte", "cifar10 as 100");
    p = tp("c10empty.bin");
    write_raw(p, f10, 0);
    expect_err(lb_cifar_load(&p, 1, 0, &d), LB_EFORMAT, p, "empty", "cifar empty");
    p = tp("c10lab.bin");
    f10[3073] = 10;
    write_raw(p, f10, n10);
    expect_err(lb_cifar_load(&p, 1, 0, &d), LB_EFORMAT, p, "record 1: label 10", "cifar10 label");
    const char *mixed[2] = {p10, p}; /* the bad one second: still an error, nothing leaked */
    expect_err(lb_cifar_load(mixed, 2, 0, &d), LB_EFORMAT, p, "record 1", "cifar10 2nd file");
    p = tp("c100lab.bin");
    f100[2 * 3074 + 1] = 100;
    write_raw(p, f100, n100);
    expect_err(lb_cifar_load(&p, 1, 1, &d), LB_EFORMAT, p, "record 2: label 100", "fine label");
    f100[2 * 3074 + 1] = 5;
    f100[0] = 20;
    write_raw(p, f100, n100);
    expect_err(lb_cifar_load(&p, 1, 1, &d), LB_EFORMAT, p, "coarse label 20", "coarse label");
    p = tp("nope.bin");
    expect_err(lb_cifar_load(&p, 1, 0, &d), LB_EIO, p, "cannot open", "cifar missing");
    expect_err(lb_cifar_parse_mem("memc", f10, 100, 0, &d), LB_EFORMAT, "memc", "multiple",
               "cifar mem");
    CHECK(lb_cifar_parse_mem("memc", f10, 3073, 0, &d) == LB_OK && d.n == 1, "cifar mem ok");
    lb_dataset_free(&d);
    free(f10);
    free(f100);
}

/* ---- directories --------------------------------------------------------------------------- */

static void test_dirs(void) {
    lb_dataset d;
    size_t il, ll, tl, tll;
    uint8_t *img = idx_images(5, 4, 3, &il), *lab = idx_labels(5, &ll);
    uint8_t *timg = idx_images(3, 4, 3, &tl), *tlab = idx_labels(3, &tll);
    mkdir_tp("idx");
    write_raw(tp("idx/train-images-idx3-ubyte"), img, il);
    write_raw(tp("idx/train-labels-idx1-ubyte"), lab, ll);
    write_gz(tp("idx/t10k-images-idx3-ubyte.gz"), timg, tl, "wb");
    write_gz(tp("idx/t10k-labels-idx1-ubyte.gz"), tlab, tll, "wb");
    CHECK(lb_dataset_load_dir(tp("idx"), 1, &d) == LB_OK, "idx dir train: %s", lb_error_msg());
    check_idx_set(&d, 5, 4, 3, "idx dir train");
    lb_dataset_free(&d);
    CHECK(lb_dataset_load_dir(tp("idx"), 0, &d) == LB_OK, "idx dir test: %s", lb_error_msg());
    check_idx_set(&d, 3, 4, 3, "idx dir test");
    lb_dataset_free(&d);

    mkdir_tp("half");
    write_raw(tp("half/train-images-idx3-ubyte.gz"), img, il); /* raw content, .gz name */
    expect_err(lb_dataset_load_dir(tp("half"), 1, &d), LB_EIO, tp("half"), "labels-idx1",
               "idx labels missing");
    write_raw(tp("half/train-labels-idx1-ubyte"), lab, ll);
    CHECK(lb_dataset_load_dir(tp("half"), 1, &d) == LB_OK, "raw content under .gz name: %s",
          lb_error_msg());
    lb_dataset_free(&d);

    mkdir_tp("c10");
    mkdir_tp("c10/cifar-10-batches-bin");
    for (int b = 1; b <= 5; b++) {
        char name[64];
        size_t n;
        uint8_t *f = cifar_file(2, 0, b, &n);
        snprintf(name, sizeof name, "c10/cifar-10-batches-bin/data_batch_%d.bin", b);
        write_raw(tp(name), f, n);
        free(f);
    }
    size_t n;
    uint8_t *f = cifar_file(3, 0, 0, &n);
    write_raw(tp("c10/cifar-10-batches-bin/test_batch.bin"), f, n);
    free(f);
    CHECK(lb_dataset_load_dir(tp("c10"), 1, &d) == LB_OK, "cifar10 dir: %s", lb_error_msg());
    int ok = d.n == 10 && d.classes == 10;
    for (int i = 0; ok && i < 10; i++) ok &= d.labels[i] == (i % 2 + i / 2 + 1) % 10;
    CHECK(ok && d.images[9 * 3072 + 100] == cpix(1 + 5, 100), "cifar10 dir: batches in order");
    lb_dataset_free(&d);
    CHECK(lb_dataset_load_dir(tp("c10/cifar-10-batches-bin"), 0, &d) == LB_OK && d.n == 3,
          "cifar10 test split: %s", lb_error_msg());
    lb_dataset_free(&d);
    remove(tp("c10/cifar-10-batches-bin/data_batch_4.bin"));
    expect_err(lb_dataset_load_dir(tp("c10"), 1, &d), LB_EIO, "data_batch_4.bin", "incomplete",
               "cifar10 batch missing");

    mkdir_tp("c100");
    mkdir_tp("c100/cifar-100-binary");
    f = cifar_file(4, 1, 0, &n);
    write_raw(tp("c100/cifar-100-binary/train.bin"), f, n);
    write_raw(tp("c100/cifar-100-binary/test.bin"), f, 3074);
    free(f);
    CHECK(lb_dataset_load_dir(tp("c100"), 1, &d) == LB_OK && d.n == 4 && d.classes == 100,
          "cifar100 dir: %s", lb_error_msg());
    lb_dataset_free(&d);
    CHECK(lb_dataset_load_dir(tp("c100"), 0, &d) == LB_OK && d.n == 1, "cifar100 test: %s",
          lb_error_msg());
    lb_dataset_free(&d);

    mkdir_tp("empty");
    expect_err(lb_dataset_load_dir(tp("empty"), 1, &d), LB_EIO, tp("empty"), "looked for",
               "empty dir");
    CHECK(strstr(lb_error_msg(), "train-images-idx3-ubyte") &&
              strstr(lb_error_msg(), "data_batch_1..5.bin") && strstr(lb_error_msg(), "train.bin"),
          "empty dir message lists the names: %s", lb_error_msg());
    expect_err(lb_dataset_load_dir(tp("missing"), 1, &d), LB_EIO, tp("missing"), "cannot open",
               "missing dir");
    expect_err(lb_dataset_load_dir(tp("c10.bin"), 1, &d), LB_EIO, tp("c10.bin"), "not a directory",
               "file as dir");
    free(img);
    free(lab);
    free(timg);
    free(tlab);
}

/* ---- the real Fashion-MNIST ---------------------------------------------------------------- */

static void test_fashion(lb_dataset *train) {
    lb_dataset t;
    lb_status st = lb_dataset_load_dir(FASHION_DIR, 1, train);
    CHECK(st == LB_OK, "fashion train: %s", lb_error_msg());
    if (st) return;
    CHECK(train->n == 60000 && train->c == 1 && train->h == 28 && train->w == 28 &&
              train->classes == 10,
          "fashion train shape %d %d %d %d", train->n, train->c, train->h, train->w);
    CHECK(train->labels[0] == 9, "first label %d", train->labels[0]);
    int hist[10] = {0}, hok = 1;
    for (int i = 0; i < train->n; i++) hist[train->labels[i]]++;
    for (int k = 0; k < 10; k++) hok &= hist[k] == 6000;
    CHECK(hok, "train histogram %d %d ... %d", hist[0], hist[1], hist[9]);
    /* pixel sums computed with numpy from the same files */
    uint64_t s0 = 0, slast = 0, all = 0;
    for (int k = 0; k < 784; k++) {
        s0 += train->images[k];
        slast += train->images[59999 * 784 + k];
    }
    for (size_t k = 0; k < (size_t)60000 * 784; k++) all += train->images[k];
    CHECK(s0 == 76247 && slast == 16684 && all == 3431114169ull, "pixel sums %llu %llu %llu",
          (unsigned long long)s0, (unsigned long long)slast, (unsigned long long)all);
    float mean[3], sd[3];
    lb_dataset_norm(train, mean, sd);
    CHECK(mean[0] == 0.2860f && sd[0] == 0.3530f, "fashion norm %g %g", mean[0], sd[0]);

    st = lb_dataset_load_dir(FASHION_DIR, 0, &t);
    CHECK(st == LB_OK && t.n == 10000 && t.h == 28, "fashion test: %s", lb_error_msg());
    if (st) return;
    static const int first10[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    int lok = 1;
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < t.n; i++) hist[t.labels[i]]++;
    for (int k = 0; k < 10; k++) lok &= hist[k] == 1000 && t.labels[k] == first10[k];
    s0 = 0;
    for (int k = 0; k < 784; k++) s0 += t.images[k];
    CHECK(lok && s0 == 33456, "test labels/histogram/first image sum %llu", (unsigned long long)s0);
    lb_dataset_norm(&t, mean, sd);
    CHECK(mean[0] == 0.2860f && sd[0] == 0.3530f, "fashion test norm %g %g", mean[0], sd[0]);
    lb_dataset_free(&t);
}

/* ---- normalization ------------------------------------------------------------------------- */

static void test_norm(void) {
    float mean[3], sd[3];
    uint8_t img[2 * 784];
    int32_t lab[2] = {0, 1};
    lb_dataset d = {2, 1, 28, 28, 10, img, lab, NULL, 0};
    /* a 28x28 grey set with Fashion-MNIST's (or MNIST's) mean keeps its own statistics: only the
     * exact Fashion-MNIST splits are recognised (test_fashion) */
    memset(img, 73, sizeof img);
    lb_dataset_norm(&d, mean, sd);
    CHECK(mean[0] == (float)(73.0 / 255) && sd[0] == 1 && mean[1] == 0 && sd[1] == 1,
          "no rule by mean: %g %g", mean[0], sd[0]);
    memset(img, 0, 784); /* 0 and 200: computed, mean 100/255, std 100/255 */
    memset(img + 784, 200, 784);
    lb_dataset_norm(&d, mean, sd);
    CHECK_NEAR(mean[0], 100.0 / 255, 1e-6, 0, "computed mean");
    CHECK_NEAR(sd[0], 100.0 / 255, 1e-6, 0, "computed std");
    d.h = 2, d.w = 2, d.c = 2; /* two channels of 2x2, per channel; a constant channel gets std 1 */
    static const uint8_t p2[16] = {0, 0, 255, 255, 7, 7, 7, 7, 255, 255, 0, 0, 7, 7, 7, 7};
    memcpy(img, p2, 16);
    lb_dataset_norm(&d, mean, sd);
    CHECK_NEAR(mean[0], 0.5, 1e-6, 0, "2ch mean0");
    CHECK_NEAR(sd[0], 0.5, 1e-6, 0, "2ch std0");
    CHECK_NEAR(mean[1], 7.0 / 255, 1e-6, 0, "2ch mean1");
    CHECK(sd[1] == 1 && mean[2] == 0 && sd[2] == 1, "constant channel std 1");
    /* a 3x32x32 ten-class set is not taken for CIFAR-10: its own statistics */
    uint8_t cimg[3072];
    for (int k = 0; k < 3072; k++) cimg[k] = (uint8_t)(k < 1024 ? 51 : k < 2048 ? 102 : 204);
    lb_dataset c = {1, 3, 32, 32, 10, cimg, lab, NULL, 0};
    lb_dataset_norm(&c, mean, sd);
    CHECK(mean[0] == 0.2f && mean[1] == 0.4f && mean[2] == 0.8f && sd[0] == 1,
          "colour set: own statistics %g %g %g", mean[0], mean[1], mean[2]);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lbdataXXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_idx_good();
    test_idx_bad();
    test_cifar();
    test_dirs();
    test_norm();
    lb_dataset train;
    test_fashion(&train);
    lb_dataset_free(&train);
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    TEST_MAIN_END("test_data");
}
