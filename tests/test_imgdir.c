/* Tests of image folders: PNG/JPEG decoding (grey, RGB, alpha, palette, 16-bit, JPEG), the
 * channel conversion and area/bilinear resizing, folder layouts (train/test, a held-out split),
 * default size and channels, sample order, and every bad input the reader names. The images are
 * written here with libpng and libjpeg. Not the CLI (tests/cli/imgdir.sh). */
#include "lb_ckpt.h"
#include "lb_data.h"
#include "lb_test.h"
#include "lb_train.h"

#include <ftw.h>
#include <stdint.h>
#include <stdio.h> /* before jpeglib.h */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

static char g_dir[64];

static const char *tp(const char *name) {
    static char ring[16][512];
    static int k;
    char *p = ring[k++ % 16];
    snprintf(p, 512, "%s/%s", g_dir, name);
    return p;
}

static void mk(const char *name) {
    mkdir(tp(name), 0700);
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

/* A PNG of color type ct (PNG_COLOR_TYPE_*), depth 8 or 16, from interleaved samples px (for
 * 16-bit, big-endian pairs; for a palette, indices into a 4-entry palette); Adam7-interlaced
 * when g_interlace is set. */
static int g_interlace;
static int write_png(const char *path, int w, int h, int ct, int depth, const uint8_t *px) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        return 0;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ct,
                 g_interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (ct == PNG_COLOR_TYPE_PALETTE) {
        png_color pal[4] = {{0, 0, 0}, {255, 0, 0}, {0, 255, 0}, {10, 20, 30}};
        png_set_PLTE(png, info, pal, 4);
    }
    png_write_info(png, info);
    int ch = ct == PNG_COLOR_TYPE_RGB ? 3 : ct == PNG_COLOR_TYPE_RGBA ? 4 : ct == 4 ? 2 : 1;
    size_t rb = (size_t)w * ch * (depth / 8);
    int passes = png_set_interlace_handling(png);
    for (int pass = 0; pass < passes; pass++)
        for (int y = 0; y < h; y++) png_write_row(png, px + y * rb);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    return fclose(f) == 0;
}

static int write_jpeg(const char *path, int w, int h, int c, const uint8_t *px, int quality) {
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    struct jpeg_compress_struct ci;
    struct jpeg_error_mgr err;
    ci.err = jpeg_std_error(&err);
    jpeg_create_compress(&ci);
    jpeg_stdio_dest(&ci, f);
    ci.image_width = (JDIMENSION)w;
    ci.image_height = (JDIMENSION)h;
    ci.input_components = c;
    ci.in_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ci);
    jpeg_set_quality(&ci, quality, TRUE);
    jpeg_start_compress(&ci, TRUE);
    while (ci.next_scanline < ci.image_height) {
        JSAMPROW row = (JSAMPROW)(px + (size_t)ci.next_scanline * w * c);
        jpeg_write_scanlines(&ci, &row, 1);
    }
    jpeg_finish_compress(&ci);
    jpeg_destroy_compress(&ci);
    return fclose(f) == 0;
}

/* A grey image whose pixels encode (seed, y, x). */
static void grey_pattern(uint8_t *px, int w, int h, int seed) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) px[y * w + x] = (uint8_t)(seed * 37 + y * 11 + x * 3);
}

static int write_grey(const char *name, int w, int h, int seed) {
    uint8_t px[64 * 64];
    grey_pattern(px, w, h, seed);
    return write_png(tp(name), w, h, PNG_COLOR_TYPE_GRAY, 8, px);
}

static int copy_bytes(const char *src, const char *dst, long keep) {
    FILE *a = fopen(src, "rb"), *b = fopen(dst, "wb");
    if (!a || !b) return 0;
    int ch;
    for (long i = 0; (keep < 0 || i < keep) && (ch = fgetc(a)) != EOF; i++) fputc(ch, b);
    fclose(a);
    return fclose(b) == 0;
}

static void test_decode(void) {
    uint8_t g[5 * 7], rgba[3 * 2 * 4], g16[4 * 2 * 2], pal[3 * 2] = {0, 1, 2, 3, 1, 0};
    grey_pattern(g, 5, 7, 1);
    for (int i = 0; i < 24; i++) rgba[i] = (uint8_t)(i * 10);
    for (int i = 0; i < 8; i++) {
        g16[2 * i] = (uint8_t)(i * 30);
        g16[2 * i + 1] = 0x7f; /* the low byte: 16 -> 8 bits rounds it away */
    }
    CHECK(write_png(tp("g.png"), 5, 7, PNG_COLOR_TYPE_GRAY, 8, g), "write");
    CHECK(write_png(tp("rgba.png"), 3, 2, PNG_COLOR_TYPE_RGBA, 8, rgba), "write");
    CHECK(write_png(tp("g16.png"), 4, 2, PNG_COLOR_TYPE_GRAY, 16, g16), "write");
    CHECK(write_png(tp("pal.png"), 3, 2, PNG_COLOR_TYPE_PALETTE, 8, pal), "write");
    lb_image im;
    CHECK(lb_image_load(tp("g.png"), 0, &im) == LB_OK, "%s", lb_error_msg());
    CHECK(im.w == 5 && im.h == 7 && im.c == 1 && !memcmp(im.px, g, sizeof g), "grey PNG exact");
    lb_image_free(&im);
    CHECK(lb_image_load(tp("g.png"), 1, &im) == LB_OK && im.w == 5 && im.h == 7 && !im.px,
          "header only");
    CHECK(lb_image_load(tp("rgba.png"), 0, &im) == LB_OK, "%s", lb_error_msg());
    int ok = im.c == 3 && im.w == 3 && im.h == 2;
    for (int p = 0; ok && p < 6; p++)
        for (int k = 0; k < 3; k++) ok &= im.px[p * 3 + k] == rgba[p * 4 + k];
    CHECK(ok, "RGBA PNG: alpha dropped, colour kept");
    lb_image_free(&im);
    CHECK(lb_image_load(tp("g16.png"), 0, &im) == LB_OK, "%s", lb_error_msg());
    ok = im.c == 1;
    for (int i = 0; ok && i < 8; i++) ok &= im.px[i] == i * 30;
    CHECK(ok, "16-bit grey PNG to 8 bits");
    lb_image_free(&im);
    CHECK(lb_image_load(tp("pal.png"), 0, &im) == LB_OK, "%s", lb_error_msg());
    CHECK(im.c == 3 && im.px[3] == 255 && im.px[4] == 0 && im.px[9] == 10 && im.px[11] == 30,
          "palette PNG to RGB");
    lb_image_free(&im);

    /* grey + alpha, and Adam7 interlacing (RGB) */
    uint8_t ga[5 * 7 * 2], rgb[9 * 6 * 3];
    for (int i = 0; i < 35; i++) ga[2 * i] = g[i], ga[2 * i + 1] = (uint8_t)(i * 7);
    for (int i = 0; i < 162; i++) rgb[i] = (uint8_t)(i * 13 + 5);
    CHECK(write_png(tp("ga.png"), 5, 7, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga), "write");
    g_interlace = 1;
    CHECK(write_png(tp("il.png"), 9, 6, PNG_COLOR_TYPE_RGB, 8, rgb), "write");
    g_interlace = 0;
    CHECK(lb_image_load(tp("ga.png"), 0, &im) == LB_OK && im.c == 1 && !memcmp(im.px, g, 35),
          "grey+alpha PNG: alpha dropped: %s", lb_error_msg());
    lb_image_free(&im);
    CHECK(lb_image_load(tp("il.png"), 0, &im) == LB_OK && im.c == 3 && im.w == 9 && im.h == 6 &&
              !memcmp(im.px, rgb, sizeof rgb),
          "interlaced RGB PNG exact: %s", lb_error_msg());
    lb_image_free(&im);

    /* JPEG: lossy, so a smooth image and a tolerance */
    uint8_t jg[16 * 16], jc[16 * 16 * 3];
    for (int i = 0; i < 256; i++) {
        jg[i] = (uint8_t)(100 + (i % 16) * 2);
        jc[3 * i] = 200, jc[3 * i + 1] = 50, jc[3 * i + 2] = (uint8_t)(100 + (i / 16) * 2);
    }
    CHECK(write_jpeg(tp("g.jpg"), 16, 16, 1, jg, 95), "write");
    CHECK(write_jpeg(tp("c.JPEG"), 16, 16, 3, jc, 95), "write");
    CHECK(lb_image_load(tp("g.jpg"), 0, &im) == LB_OK, "%s", lb_error_msg());
    int worst = 0;
    for (int i = 0; i < 256; i++) {
        int d = abs(im.px[i] - jg[i]);
        worst = d > worst ? d : worst;
    }
    CHECK(im.c == 1 && worst <= 3, "grey JPEG within 3 levels (worst %d)", worst);
    lb_image_free(&im);
    CHECK(lb_image_load(tp("c.JPEG"), 0, &im) == LB_OK, "%s", lb_error_msg());
    worst = 0;
    for (int i = 0; i < 768; i++) {
        int d = abs(im.px[i] - jc[i]);
        worst = d > worst ? d : worst;
    }
    CHECK(im.c == 3 && worst <= 6, "RGB JPEG within 6 levels (worst %d)", worst);
    lb_image_free(&im);

    /* bad input: every one LB_EFORMAT naming the file, nothing allocated */
    CHECK(copy_bytes(tp("g.png"), tp("trunc.png"), 60), "copy");
    CHECK(copy_bytes(tp("g.jpg"), tp("trunc.jpg"), 200), "copy");
    FILE *f = fopen(tp("text.png"), "w");
    fputs("not an image at all", f);
    fclose(f);
    fclose(fopen(tp("empty.jpg"), "w"));
    const char *bad[] = {"trunc.png", "trunc.jpg", "text.png", "empty.jpg"};
    for (int i = 0; i < 4; i++) {
        lb_status st = lb_image_load(tp(bad[i]), 0, &im);
        CHECK(st == LB_EFORMAT && strstr(lb_error_msg(), bad[i]) && !im.px, "%s: %d %s", bad[i], st,
              lb_error_msg());
    }
    CHECK(lb_image_load(tp("missing.png"), 0, &im) == LB_EIO && strstr(lb_error_msg(), "missing"),
          "missing file: %s", lb_error_msg());
    /* a corrupted byte inside the compressed data (its CRC no longer matches) */
    CHECK(copy_bytes(tp("g.png"), tp("crc.png"), -1), "copy");
    f = fopen(tp("crc.png"), "r+b");
    fseek(f, 45, SEEK_SET);
    fputc(0x55, f);
    fclose(f);
    CHECK(lb_image_load(tp("crc.png"), 0, &im) == LB_EFORMAT && strstr(lb_error_msg(), "crc.png"),
          "bad CRC: %s", lb_error_msg());
}

static void test_convert(void) {
    uint8_t g[5 * 7], out[5 * 7 * 3];
    grey_pattern(g, 5, 7, 2);
    lb_image im = {7, 5, 1, g};
    CHECK(lb_image_convert(&im, 1, 7, 5, out) == LB_OK && !memcmp(out, g, sizeof g),
          "same size: exact copy");
    CHECK(lb_image_convert(&im, 3, 7, 5, out) == LB_OK && !memcmp(out, g, 35) &&
              !memcmp(out + 35, g, 35) && !memcmp(out + 70, g, 35),
          "grey to RGB: copies");
    uint8_t rgb[2 * 3] = {255, 0, 0, 10, 200, 30}, y[2];
    lb_image ci = {1, 2, 3, rgb};
    CHECK(lb_image_convert(&ci, 1, 1, 2, y) == LB_OK && y[0] == (299 * 255 + 500) / 1000 &&
              y[1] == (299 * 10 + 587 * 200 + 114 * 30 + 500) / 1000,
          "luma %d %d", y[0], y[1]);
    /* area: 4x4 -> 2x2 is the mean of each 2x2 block (rounded) */
    uint8_t s4[16] = {0, 2, 10, 20, 4, 6, 30, 41, 1, 1, 1, 1, 1, 1, 1, 2}, d2[4];
    lb_image a = {4, 4, 1, s4};
    CHECK(lb_image_convert(&a, 1, 2, 2, d2) == LB_OK && d2[0] == 3 && d2[1] == 25 && d2[2] == 1 &&
              d2[3] == 1,
          "area %d %d %d %d", d2[0], d2[1], d2[2], d2[3]);
    /* bilinear: [0, 100] -> 4 samples at centres 0.25 apart, edges clamped */
    uint8_t s2[2] = {0, 100}, d4[4];
    lb_image b = {1, 2, 1, s2};
    CHECK(lb_image_convert(&b, 1, 1, 4, d4) == LB_OK && d4[0] == 0 && d4[1] == 25 && d4[2] == 75 &&
              d4[3] == 100,
          "bilinear %d %d %d %d", d4[0], d4[1], d4[2], d4[3]);
    /* odd sizes both ways keep a constant image constant */
    uint8_t c[7 * 5], o[11 * 3];
    memset(c, 77, sizeof c);
    lb_image k = {7, 5, 1, c};
    int ok = lb_image_convert(&k, 1, 3, 11, o) == LB_OK;
    for (int i = 0; ok && i < 33; i++) ok &= o[i] == 77;
    CHECK(ok, "7x5 -> 3x11 constant");
}

/* DIR/train/{cat,dog,emu}/ and DIR/test/{cat,dog}/: emu has no test images; one odd-sized
 * training image (resized to the common 6x8), names interleaved across classes. */
static void test_layout_split(void) {
    mk("s");
    mk("s/train");
    mk("s/test");
    const char *cls[] = {"cat", "dog", "emu"};
    char p[128];
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "s/train/%s", cls[c]);
        mk(p);
        for (int i = 0; i < 3; i++) {
            snprintf(p, sizeof p, "s/train/%s/%02d.png", cls[c], i * 3 + c);
            CHECK(write_grey(p, 6, 8, i * 3 + c), "write");
        }
        if (c < 2) {
            snprintf(p, sizeof p, "s/test/%s", cls[c]);
            mk(p);
            snprintf(p, sizeof p, "s/test/%s/t%d.png", cls[c], c);
            CHECK(write_grey(p, 6, 8, 50 + c), "write");
        }
    }
    CHECK(write_grey("s/train/dog/99.png", 9, 5, 9), "write");
    FILE *f = fopen(tp("s/train/cat/notes.txt"), "w"); /* skipped: not an image */
    fclose(f);
    lb_dataset d, t;
    CHECK(lb_dataset_load_dir(tp("s"), 1, &d) == LB_OK, "%s", lb_error_msg());
    CHECK(d.n == 10 && d.c == 1 && d.h == 8 && d.w == 6 && d.classes == 3, "train %d %dx%dx%d %d",
          d.n, d.c, d.h, d.w, d.classes);
    CHECK(d.class_names && !strcmp(d.class_names[0], "cat") && !strcmp(d.class_names[2], "emu"),
          "class names");
    int ok = 1;
    for (int i = 0; i < 9; i++) ok &= d.labels[i] == i % 3; /* 00 cat, 01 dog, 02 emu, ... */
    CHECK(ok && d.labels[9] == 1, "order by file name across classes");
    uint8_t g[48];
    grey_pattern(g, 6, 8, 4);
    CHECK(!memcmp(d.images + 4 * 48, g, 48), "pixels of 04.png exact");
    CHECK(lb_dataset_load_dir(tp("s"), 0, &t) == LB_OK, "%s", lb_error_msg());
    CHECK(t.n == 2 && t.h == 8 && t.w == 6 && t.classes == 3 && t.labels[0] == 0 &&
              t.labels[1] == 1,
          "test: %d, classes without test images are fine", t.n);
    lb_dataset_free(&t);
    lb_dataset_free(&d);
    /* given size and channels; RGB then JPEG in a class */
    lb_image_opts o = {16, 12, 3, 0, 0};
    CHECK(lb_imgdir_load(tp("s"), 1, &o, &d) == LB_OK && d.c == 3 && d.h == 16 && d.w == 12,
          "given size: %s", lb_error_msg());
    lb_dataset_free(&d);
    uint8_t jc[10 * 10 * 3];
    for (int i = 0; i < 300; i++) jc[i] = (uint8_t)(i % 3 == 0 ? 200 : 90);
    CHECK(write_jpeg(tp("s/train/emu/50.jpg"), 10, 10, 3, jc, 90), "write");
    CHECK(lb_dataset_load_dir(tp("s"), 1, &d) == LB_OK && d.n == 11 && d.c == 3 && d.h == 8,
          "a colour JPEG makes the default RGB: %s", lb_error_msg());
    ok = d.n == 11;
    for (int i = 0; ok && i < 48; i++) /* grey images become three equal planes */
        ok &= d.images[i] == d.images[48 + i] && d.images[i] == d.images[96 + i];
    CHECK(ok, "grey -> RGB planes");
    lb_dataset_free(&d);
}

/* DIR/<class>/ only: a held-out fraction per class, deterministic by seed. */
static void test_layout_flat(void) {
    mk("f");
    mk("f/a");
    mk("f/b");
    char p[64];
    for (int i = 0; i < 10; i++) {
        snprintf(p, sizeof p, "f/a/%02d.png", i);
        CHECK(write_grey(p, 5, 5, i), "write");
        snprintf(p, sizeof p, "f/b/%02d.png", i + 10);
        CHECK(write_grey(p, 5, 5, i + 10), "write");
    }
    lb_image_opts o = {0, 0, 0, 0.3f, 7};
    lb_dataset tr, te, tr2;
    CHECK(lb_imgdir_load(tp("f"), 1, &o, &tr) == LB_OK, "%s", lb_error_msg());
    CHECK(lb_imgdir_load(tp("f"), 0, &o, &te) == LB_OK, "%s", lb_error_msg());
    CHECK(tr.n == 14 && te.n == 6 && tr.classes == 2 && te.classes == 2, "split %d/%d", tr.n, te.n);
    /* together they are every image once: pattern k's first pixel is 37k mod 256, and
     * 37 * 173 = 1 (mod 256) gives k back */
    int seen[256] = {0};
    for (int i = 0; i < tr.n; i++) seen[tr.images[i * 25] * 173 % 256]++;
    for (int i = 0; i < te.n; i++) seen[te.images[i * 25] * 173 % 256]++;
    int ok = 1;
    for (int i = 0; i < 20; i++) ok &= seen[i] == 1;
    CHECK(ok, "train and test partition the images");
    CHECK(lb_imgdir_load(tp("f"), 1, &o, &tr2) == LB_OK && tr2.n == tr.n &&
              !memcmp(tr2.images, tr.images, (size_t)tr.n * 25),
          "same seed, same split");
    lb_dataset_free(&tr2);
    o.seed = 8;
    CHECK(lb_imgdir_load(tp("f"), 1, &o, &tr2) == LB_OK && tr2.n == tr.n &&
              memcmp(tr2.images, tr.images, (size_t)tr.n * 25),
          "another seed, another split");
    lb_dataset_free(&tr2);
    lb_dataset_free(&tr);
    lb_dataset_free(&te);
}

static void expect_fail(const char *dir, int train, const char *needle, const char *what) {
    lb_dataset d;
    lb_status st = lb_dataset_load_dir(tp(dir), train, &d);
    CHECK(st != LB_OK && strstr(lb_error_msg(), needle) && !d.images && !d.class_names,
          "%s: %d '%s'", what, st, lb_error_msg());
}

static void test_bad(void) {
    mk("e1");
    mk("e1/train");
    mk("e1/train/a");
    mk("e1/train/b");
    CHECK(write_grey("e1/train/a/1.png", 4, 4, 1), "write");
    expect_fail("e1", 1, "e1/train/b: empty class folder", "empty class folder");
    CHECK(write_grey("e1/train/b/2.png", 4, 4, 2), "write");
    CHECK(copy_bytes(tp("g.png"), tp("e1/train/b/3.png"), 45), "copy");
    expect_fail("e1", 1, "e1/train/b/3.png: corrupt PNG", "image that does not decode");
    /* several broken files: the first in sample order is named, for any thread timing */
    CHECK(copy_bytes(tp("g.png"), tp("e1/train/a/9.png"), 45), "copy");
    CHECK(copy_bytes(tp("g.png"), tp("e1/train/a/0.png"), 30), "copy");
    for (int k = 0; k < 4; k++)
        expect_fail("e1", 1, "e1/train/a/0.png: corrupt PNG", "first broken file named");
    remove(tp("e1/train/a/0.png"));
    remove(tp("e1/train/a/9.png"));
    remove(tp("e1/train/b/3.png"));
    mk("e1/test");
    mk("e1/test/zebra");
    CHECK(write_grey("e1/test/zebra/1.png", 4, 4, 1), "write");
    expect_fail("e1", 0, "class 'zebra' has no training folder", "test class not in train");
    expect_fail("e1", 1, "class 'zebra' has no training folder", "also when loading train");
    mk("e2");
    mk("e2/train");
    mk("e2/test");
    CHECK(write_grey("e2/stray.png", 4, 4, 1), "write");
    expect_fail("e2", 1, "no class folders", "folder with no images");
    mk("e4");
    mk("e4/caf\xe9"); /* Latin-1, not UTF-8 */
    CHECK(write_grey("e4/caf\xe9/1.png", 4, 4, 1), "write");
    expect_fail("e4", 1, "class folder name is not UTF-8", "non-UTF-8 class name");
    mk("e5");
    mk("e5/caf\xc3\xa9"); /* UTF-8 is fine */
    CHECK(write_grey("e5/caf\xc3\xa9/1.png", 4, 4, 1), "write");
    CHECK(write_grey("e5/caf\xc3\xa9/2.png", 4, 4, 1), "write");
    lb_dataset u;
    CHECK(lb_dataset_load_dir(tp("e5"), 1, &u) == LB_OK && u.n == 2, "UTF-8 class: %s",
          lb_error_msg());
    lb_dataset_free(&u);
    mk("e3");
    expect_fail("e3", 1, "no training data set found", "empty folder");
    lb_image_opts o = {0, 0, 2, 0, 0};
    lb_dataset d;
    CHECK(lb_imgdir_load(tp("e1"), 1, &o, &d) == LB_EINVAL, "2 channels refused");
}

/* lowbit.data in a checkpoint: class names back in order; malformed fields named. */
static void test_ckpt_names(void) {
    const char *model = "{\"arch\":\"cnn\",\"in_c\":1,\"in_h\":28,\"in_w\":28,\"classes\":3}";
    const char *datas[] = {
        "{\"format\":\"imgdir\",\"classes\":[\"cat\",\"dog\",\"emu\"],\"test_split\":0.25}",
        "{\"classes\":[\"cat\",\"dog\"]}",
        "{\"classes\":[\"cat\",\"dog\",3]}",
        "{\"classes\":[\"a\",\"b\",\"c\"],\"test_split\":1.5}",
        "[1]",
        NULL};
    float one = 1;
    lb_st_tensor t = {"w", LB_F32, 1, {1}, &one};
    for (int k = 0; k < 6; k++) {
        lb_st_meta meta[3] = {
            {"lowbit.format", "1"}, {"lowbit.model", model}, {"lowbit.data", datas[k]}};
        CHECK(lb_st_write(tp("m.safetensors"), &t, 1, meta, datas[k] ? 3 : 2) == LB_OK, "%s",
              lb_error_msg());
        char **names = NULL;
        int n = -1;
        lb_status st = lb_ckpt_class_names(tp("m.safetensors"), &names, &n);
        if (k == 0) {
            CHECK(st == LB_OK && n == 3 && names && !strcmp(names[0], "cat") &&
                      !strcmp(names[2], "emu"),
                  "names: %s", lb_error_msg());
            lb_ckpt_info info;
            CHECK(lb_ckpt_peek(tp("m.safetensors"), &info) == LB_OK &&
                      info.train.img.test_split == 0.25f,
                  "test_split read back");
        } else if (k == 5) {
            CHECK(st == LB_OK && !names && n == 0, "no lowbit.data: no names");
        } else {
            CHECK(st == LB_EFORMAT && strstr(lb_error_msg(), "m.safetensors") &&
                      strstr(lb_error_msg(), "lowbit.data") && !names,
                  "bad lowbit.data %d: %s", k, lb_error_msg());
        }
        free(names);
    }
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lbimgXXXXXX", tmp && strlen(tmp) < 40 ? tmp : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_decode();
    test_convert();
    test_layout_split();
    test_layout_flat();
    test_bad();
    test_ckpt_names();
    nftw(g_dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    TEST_MAIN_END("test_imgdir");
}
