/* Event-camera data: the .bin/.aedat readers and writers on generated files in the exact formats
 * (and damaged ones), binning on hand-made event lists, event folders, frames in the loader and
 * the DVS emulator. Not the fuzzing of the readers (fuzz/fuzz_events_*.c). */
#include "lb_data.h"
#include "lb_test.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_dir[] = "/tmp/lowbit_events_XXXXXX";

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *f) {
    (void)sb, (void)flag, (void)f;
    return remove(p);
}

static void path(char *dst, const char *rel) {
    snprintf(dst, 512, "%s/%s", g_dir, rel);
}

static void write_bytes(const char *p, const void *b, size_t n) {
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    if (n) fwrite(b, 1, n, f);
    fclose(f);
}

static void mkdirs(const char *rel) {
    char p[512], *s;
    path(p, rel);
    for (s = p + strlen(g_dir) + 1; (s = strchr(s, '/')); s++) {
        *s = 0;
        mkdir(p, 0755);
        *s = '/';
    }
    mkdir(p, 0755);
}

/* A list of n events in a sensor, times increasing by dt from t0, every field varied. */
static void make_events(lb_events *e, int n, int w, int h, int64_t t0, int64_t dt) {
    lb_events_free(e);
    e->w = w;
    e->h = h;
    for (int i = 0; i < n; i++)
        lb_events_push(e, (i * 7) % w, (i * 5 + i / w) % h, (i / 3) & 1, t0 + i * dt);
}

static int same_events(const lb_events *a, const lb_events *b) {
    if (a->n != b->n) return 0;
    for (size_t i = 0; i < a->n; i++)
        if (a->ev[i].t != b->ev[i].t || a->ev[i].x != b->ev[i].x || a->ev[i].y != b->ev[i].y ||
            a->ev[i].p != b->ev[i].p)
            return 0;
    return 1;
}

static int msg_has(const char *a, const char *b) {
    const char *m = lb_error_msg();
    int ok = strstr(m, a) && (!b || strstr(m, b));
    if (!ok) fprintf(stderr, "  message: %s\n", m);
    return ok;
}

static void test_exact_bytes(void) {
    lb_events e = {0};
    e.w = 34, e.h = 34;
    lb_events_push(&e, 3, 5, 1, 0x012345);
    lb_events_push(&e, 33, 0, 0, 0x7fffff);
    uint8_t *b;
    size_t n;
    CHECK(lb_events_encode(&e, LB_EV_BIN, &b, &n) == LB_OK && n == 10, "bin encode");
    static const uint8_t want_bin[10] = {3, 5, 0x81, 0x23, 0x45, 33, 0, 0x7f, 0xff, 0xff};
    CHECK(n == 10 && !memcmp(b, want_bin, 10), "bin bytes: x, y, p<<7 | t>>16, t>>8, t");
    free(b);
    CHECK(lb_events_encode(&e, LB_EV_AEDAT, &b, &n) == LB_OK, "aedat encode");
    static const char head[] = "#!AER-DAT2.0\r\n";
    CHECK(n > 16 && !memcmp(b, head, sizeof head - 1), "aedat header line");
    /* address (y << 8 | x << 1 | p) then time, both big-endian */
    static const uint8_t want_ae[16] = {0, 0, 0x05, 0x07, 0, 0x01, 0x23, 0x45,
                                        0, 0, 0x00, 0x42, 0, 0x7f, 0xff, 0xff};
    CHECK(n >= 16 && !memcmp(b + n - 16, want_ae, 16), "aedat bytes");
    free(b);
    lb_events_free(&e);
}

static void test_round_trip(void) {
    lb_events e = {0}, r = {0};
    /* times past 2^23 us: the .bin writer inserts overflow markers, the reader adds 2^13 each */
    make_events(&e, 3000, 34, 34, 1000, 4000);
    char p[512];
    path(p, "rt.bin");
    CHECK(lb_events_write(p, &e, LB_EV_BIN) == LB_OK, "%s", lb_error_msg());
    CHECK(lb_events_load(p, 34, 34, &r) == LB_OK, "%s", lb_error_msg());
    CHECK(same_events(&e, &r) && r.format == LB_EV_BIN && r.w == 34 && r.h == 34, "bin round trip");
    CHECK(r.marks > 0, "overflow markers written for times past 2^23 (%zu)", r.marks);
    path(p, "rt.aedat");
    make_events(&e, 2000, 128, 128, 7, 13);
    CHECK(lb_events_write(p, &e, LB_EV_AEDAT) == LB_OK, "%s", lb_error_msg());
    CHECK(lb_events_load(p, 0, 0, &r) == LB_OK, "%s", lb_error_msg());
    CHECK(same_events(&e, &r) && r.format == LB_EV_AEDAT && r.w == 128, "aedat round trip");
    /* a hand-made marker: t 100, marker, t 50 -> 50 + 8192 */
    const uint8_t mk[15] = {1, 1, 0, 0, 100, 0, 240, 0, 0, 0, 2, 2, 0x80, 0, 50};
    CHECK(lb_events_parse_bin("m.bin", mk, 15, 0, 0, &r) == LB_OK && r.n == 2 && r.marks == 1 &&
              r.ev[1].t == 50 + 8192 && r.ev[1].p == 1 && r.w == 304 && r.h == 240,
          "overflow marker adds 2^13 us");
    /* writer refusals */
    uint8_t *b;
    size_t n;
    make_events(&e, 1, 34, 34, 0, 1);
    e.ev[0].x = 200;
    CHECK(lb_events_encode(&e, LB_EV_AEDAT, &b, &n) == LB_EINVAL && msg_has("event 0", "128"),
          "aedat writer refuses x >= 128");
    lb_events_free(&e);
    lb_events_free(&r);
}

static void test_bad_files(void) {
    lb_events r = {0}, e = {0};
    make_events(&e, 10, 34, 34, 0, 10);
    uint8_t *b;
    size_t n;
    lb_events_encode(&e, LB_EV_BIN, &b, &n);
    CHECK(lb_events_parse_bin("t.bin", b, n - 2, 34, 34, &r) == LB_EFORMAT &&
              msg_has("t.bin", "byte 45 (event 9) is truncated") && r.n == 0,
          "truncated .bin record");
    CHECK(lb_events_parse_bin("e.bin", b, 0, 34, 34, &r) == LB_EFORMAT && msg_has("e.bin", "empty"),
          "empty .bin");
    CHECK(lb_events_parse_bin("s.bin", b, n, 20, 20, &r) == LB_EFORMAT &&
              msg_has("s.bin: byte 15 (event 3)", "outside the 20x20 sensor"),
          "coordinate outside the declared sensor");
    b[4 * 5 + 4] = 0; /* event 4's time 40 -> 0: back by 30 us, within the tolerance */
    CHECK(lb_events_parse_bin("j.bin", b, n, 34, 34, &r) == LB_OK, "small step back tolerated");
    b[5 * 5 + 2] = 0x7f, b[6 * 5 + 2] = 0x00; /* event 5 far ahead, event 6 far back */
    CHECK(lb_events_parse_bin("j.bin", b, n, 34, 34, &r) == LB_EFORMAT &&
              msg_has("j.bin: byte 30 (event 6)", "steps back"),
          "time jumping back");
    CHECK(lb_events_parse_bin("x.bin", b, n, 400, 34, &r) == LB_EINVAL &&
              msg_has("x.bin", "sensor"),
          "sensor override beyond the format");
    free(b);
    lb_events_encode(&e, LB_EV_AEDAT, &b, &n);
    CHECK(lb_events_parse_aedat("a.aedat", b, n, 0, 0, &r) == LB_OK && r.n == 10, "aedat ok");
    CHECK(lb_events_parse_aedat("a.aedat", b, n - 3, 0, 0, &r) == LB_EFORMAT &&
              msg_has("a.aedat", "truncated"),
          "truncated .aedat");
    b[9] = '3'; /* "#!AER-DAT3.0" */
    CHECK(lb_events_parse_aedat("h.aedat", b, n, 0, 0, &r) == LB_EFORMAT &&
              msg_has("h.aedat: not an AEDAT 2.0 file", "#!AER-DAT3.0"),
          "wrong header");
    CHECK(lb_events_parse_aedat("h.aedat", b + 14, n - 14, 0, 0, &r) == LB_EFORMAT &&
              msg_has("h.aedat", "not an AEDAT 2.0"),
          "missing header");
    b[9] = '2';
    CHECK(lb_events_parse_aedat("n.aedat", b, 20, 0, 0, &r) == LB_EFORMAT &&
              msg_has("n.aedat", "header line without an end"),
          "header without a newline");
    const size_t hl = n - 80;
    CHECK(lb_events_parse_aedat("d.aedat", b, hl, 0, 0, &r) == LB_EFORMAT &&
              msg_has("d.aedat", "no events"),
          "header only");
    b[hl + 8 * 2] = 0x80; /* event 2's address with bit 31 */
    CHECK(lb_events_parse_aedat("d.aedat", b, n, 0, 0, &r) == LB_EFORMAT &&
              msg_has("event 2", "above 0x7fff"),
          "special-event address");
    b[hl + 8 * 2] = 0;
    CHECK(lb_events_parse_aedat("d.aedat", b, n, 10, 10, &r) == LB_EFORMAT &&
              msg_has("d.aedat", "outside the 10x10 sensor"),
          "aedat coordinate outside a declared sensor");
    free(b);
    char p[512];
    path(p, "nope.bin");
    CHECK(lb_events_load(p, 0, 0, &r) == LB_EIO && msg_has("nope.bin", "cannot open"),
          "missing file");
    lb_events_free(&e);
    lb_events_free(&r);
}

static void test_binning(void) {
    lb_events e = {0};
    e.w = 4, e.h = 4;
    const int64_t ts[6] = {0, 24, 25, 50, 74, 99}; /* D = 100, T = 4: edges 25, 50, 75 */
    for (int i = 0; i < 6; i++) lb_events_push(&e, i % 4, 0, i & 1, ts[i]);
    uint8_t f[8 * 2 * 16];
    CHECK(lb_events_bin(&e, 4, LB_EVBIN_TIME, 4, 4, f) == LB_OK, "%s", lb_error_msg());
    /* frame f, polarity p, pixel (y 0, x) */
#define AT(fr, p, x) f[((fr)*2 + (p)) * 16 + (x)]
    CHECK(AT(0, 0, 0) == 1 && AT(0, 1, 1) == 1, "t 0, 24: frame 0");
    CHECK(AT(1, 0, 2) == 1, "t 25, on an edge: frame 1");
    CHECK(AT(2, 1, 3) == 1 && AT(2, 0, 0) == 1, "t 50 (an edge), 74: frame 2");
    CHECK(AT(3, 1, 1) == 1, "t 99: the last frame");
    int total = 0;
    for (int i = 0; i < 4 * 2 * 16; i++) total += f[i];
    CHECK(total == 6, "every event counted once (%d)", total);
    CHECK(lb_events_bin(&e, 3, LB_EVBIN_TIME, 4, 4, f) == LB_OK && AT(0, 0, 2) == 1,
          "by time, T 3: t 25 in frame 0");
    CHECK(lb_events_bin(&e, 3, LB_EVBIN_COUNT, 4, 4, f) == LB_OK, "count mode");
    /* event i of 6 -> frame i*3/6: 0 0 1 1 2 2 */
    CHECK(AT(1, 0, 2) == 1 && AT(1, 1, 3) == 1 && AT(2, 0, 0) == 1 && AT(2, 1, 1) == 1 &&
              AT(0, 0, 2) == 0,
          "equal counts");
    CHECK(lb_events_bin(&e, 8, LB_EVBIN_COUNT, 4, 4, f) == LB_OK, "T > events");
    /* i*8/6: 0 1 2 4 5 6: frames 3 and 7 empty */
    int f3 = 0, f7 = 0;
    for (int i = 0; i < 32; i++) f3 += f[3 * 32 + i], f7 += f[7 * 32 + i];
    CHECK(f3 == 0 && f7 == 0 && AT(6, 1, 1) == 1, "count bins past the events stay empty");
    e.n = 1;
    CHECK(lb_events_bin(&e, 5, LB_EVBIN_TIME, 4, 4, f) == LB_OK && AT(0, 0, 0) == 1,
          "one event: frame 0");
    e.n = 0;
    for (int i = 0; i < 300; i++) lb_events_push(&e, 2, 3, 1, i);
    CHECK(lb_events_bin(&e, 1, LB_EVBIN_TIME, 4, 4, f) == LB_OK && f[16 + 3 * 4 + 2] == 255,
          "saturates at 255");
    e.n = 0;
    /* pooling: 240x180 into 64x64 -> factor 4, 60x45 centred at (2, 9) */
    e.w = 240, e.h = 180;
    lb_events_push(&e, 239, 179, 1, 0);
    lb_events_push(&e, 0, 0, 0, 1);
    lb_events_push(&e, 1, 3, 0, 2);
    static uint8_t big[2 * 64 * 64];
    CHECK(lb_events_bin(&e, 1, LB_EVBIN_TIME, 64, 64, big) == LB_OK, "pool");
    CHECK(big[4096 + 53 * 64 + 61] == 1 && big[9 * 64 + 2] == 2, "240x180 -> 64x64: k 4, centred");
    e.n = 0, e.w = 128, e.h = 128;
    lb_events_push(&e, 127, 127, 0, 0);
    CHECK(lb_events_bin(&e, 1, LB_EVBIN_TIME, 48, 48, big) == LB_OK && big[44 * 48 + 44] == 1,
          "128 -> 48: k 3, 43x43 at offset 2");
    e.n = 0, e.w = 34, e.h = 34;
    lb_events_push(&e, 0, 0, 0, 0);
    CHECK(lb_events_bin(&e, 1, LB_EVBIN_TIME, 48, 48, big) == LB_OK && big[7 * 48 + 7] == 1,
          "34 -> 48: k 1, padded by 7");
    CHECK(lb_events_bin(&e, 0, LB_EVBIN_TIME, 48, 48, big) == LB_EINVAL, "0 frames refused");
    e.ev[0].x = 40;
    CHECK(lb_events_bin(&e, 1, LB_EVBIN_TIME, 48, 48, big) == LB_EINVAL, "bad list refused");
#undef AT
    lb_events_free(&e);
}

/* frames > 1 in the loader: plane k of a sample is channel k % 2, and crop/flip move every
 * plane alike. */
static void test_loader_frames(void) {
    enum { N = 3, T = 3, C = 2, H = 5, W = 6, PL = T * C };
    static uint8_t img[N * PL * H * W];
    int32_t lab[N] = {0, 1, 0};
    for (int i = 0; i < N; i++)
        for (int k = 0; k < PL; k++)
            for (int p = 0; p < H * W; p++)
                img[((size_t)i * PL + k) * H * W + p] = (uint8_t)(1 + p + 40 * k + i);
    lb_dataset d = {N, C, H, W, 2, img, lab, NULL, T};
    CHECK(lb_dataset_planes(&d) == PL, "planes");
    float mean[3], sd[3];
    lb_dataset_norm(&d, mean, sd);
    /* channel c: planes k = c, c+2, c+4 of every sample: mean of 1 + p + 40 k + i */
    double m0 = 0, m1 = 0;
    for (int i = 0; i < N; i++)
        for (int f = 0; f < T; f++)
            for (int p = 0; p < H * W; p++)
                m0 += 1 + p + 40 * (2 * f) + i, m1 += 1 + p + 40 * (2 * f + 1) + i;
    m0 /= 255.0 * N * T * H * W, m1 /= 255.0 * N * T * H * W;
    CHECK_NEAR(mean[0], m0, 1e-6, 0, "polarity 0 mean over frames");
    CHECK_NEAR(mean[1], m1, 1e-6, 0, "polarity 1 mean over frames");
    lb_loader_cfg cfg = {0};
    cfg.batch = N;
    cfg.norm.set = 1;
    cfg.norm.mean[0] = 0, cfg.norm.mean[1] = 1.0f, cfg.norm.mean[2] = 0;
    cfg.norm.std[0] = cfg.norm.std[1] = cfg.norm.std[2] = 1;
    lb_loader *l;
    CHECK(lb_loader_new(&d, &cfg, &l) == LB_OK, "%s", lb_error_msg());
    static float x[N * PL * H * W];
    int32_t y[N];
    CHECK(lb_loader_next(l, x, y) == N, "one batch");
    int ok = 1;
    for (size_t k = 0; k < (size_t)N * PL * H * W; k++) {
        const int plane = (int)(k / (H * W)) % PL;
        ok &= x[k] == (float)img[k] / 255.0f - (plane % 2 ? 1.0f : 0.0f);
    }
    CHECK(ok, "planes in order, channel k %% 2's constants");
    lb_loader_free(l);
    cfg.norm.mean[1] = 0;
    cfg.aug.crop_pad = 2;
    cfg.aug.hflip = 1;
    cfg.seed = 5;
    CHECK(lb_loader_new(&d, &cfg, &l) == LB_OK, "%s", lb_error_msg());
    CHECK(lb_loader_next(l, x, y) == N, "augmented batch");
    ok = 1;
    int moved = 0;
    for (int i = 0; i < N; i++) {
        const float *s0 = x + (size_t)i * PL * H * W;
        for (int k = 1; k < PL; k++)
            for (int p = 0; p < H * W; p++) {
                const float a = s0[p] * 255.0f, b = s0[(size_t)k * H * W + p] * 255.0f;
                /* the same source pixel in every plane: b - a = 40 k, or both padding */
                ok &= (a == 0 && b == 0) || fabsf(b - a - 40.0f * k) < 1e-3f;
            }
        for (int p = 0; p < H * W; p++) moved |= s0[p] * 255.0f != (float)img[i * PL * H * W + p];
    }
    CHECK(ok, "crop and flip identical on every plane");
    CHECK(moved, "the augmentation did something");
    lb_loader_free(l);
}

static void test_emulator(void) {
    enum { H = 28, W = 28 };
    static uint8_t img[H * W];
    lb_events a = {0}, b = {0};
    lb_dvs_opts o = {0};
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 0, &a) == LB_OK && a.n == 0 && a.w == 34 && a.h == 34,
          "blank image: no events, 34x34 sensor");
    /* a bright vertical bar in the middle rows: the first saccade moves the image right */
    for (int y = 0; y < H; y++)
        for (int x = 12; x < 16; x++) img[y * W + x] = 200;
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 0, &a) == LB_OK && a.n > 100, "bar: events (%zu)", a.n);
    int on_right = 0, on_left = 0, off_right = 0, off_left = 0, sorted = 1;
    for (size_t i = 0; i < a.n; i++) {
        const lb_event *v = &a.ev[i];
        if (i) sorted &= v->t >= a.ev[i - 1].t;
        if (v->t >= 100000 || v->y < 10 || v->y > 24) continue; /* first saccade, middle rows */
        const int right = v->x > 3 + 14;                        /* bar centre on the sensor */
        if (v->p)
            right ? on_right++ : on_left++;
        else
            right ? off_right++ : off_left++;
    }
    CHECK(sorted, "time order");
    CHECK(on_right > 0 && off_left > 0 && on_left == 0 && off_right == 0,
          "moving right: ON at the leading edge, OFF at the trailing (%d %d %d %d)", on_right,
          on_left, off_right, off_left);
    CHECK(a.ev[a.n - 1].t <= 300000, "three 100 ms saccades");
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 0, &b) == LB_OK && same_events(&a, &b), "deterministic");
    static uint8_t rgb[3 * H * W]; /* grey in all three channels: the luma is the grey */
    for (int k = 0; k < 3; k++) memcpy(rgb + k * H * W, img, sizeof img);
    CHECK(lb_dvs_emulate(rgb, 3, H, W, &o, 0, &b) == LB_OK && same_events(&a, &b),
          "RGB through the luma");
    o.noise = 0.05f;
    o.seed = 1;
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 3, &a) == LB_OK, "noisy");
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 3, &b) == LB_OK && same_events(&a, &b), "noise seeded");
    o.seed = 2;
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 3, &b) == LB_OK && !same_events(&a, &b),
          "another seed, other thresholds");
    /* the emulated stream is a valid .bin file of the 34x34 sensor */
    uint8_t *buf;
    size_t n;
    CHECK(lb_events_encode(&a, LB_EV_BIN, &buf, &n) == LB_OK &&
              lb_events_parse_bin("emu.bin", buf, n, 34, 34, &b) == LB_OK && same_events(&a, &b),
          "emulated events round-trip through .bin");
    free(buf);
    o.threshold = -1;
    CHECK(lb_dvs_emulate(img, 1, H, W, &o, 0, &a) == LB_EINVAL && msg_has("threshold", NULL),
          "bad option");
    lb_events_free(&a);
    lb_events_free(&b);

    /* a data set: the same bytes for 1 and 2 threads */
    enum { N = 6 };
    static uint8_t imgs[N * H * W];
    int32_t lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = i % 3;
        for (int p = 0; p < H * W; p++)
            imgs[i * H * W + p] = (uint8_t)((p % W > 6 + i && p / W > 5 && p / W < 20) ? 180 : 0);
    }
    lb_dataset src = {N, 1, H, W, 3, imgs, lab, NULL, 0}, d1, d2, d3;
    lb_dvs_opts dv = {0};
    dv.noise = 0.03f;
    lb_event_opts bo = {0};
    bo.frames = 5;
    int th = lb_threads_get();
    lb_threads_set(1);
    CHECK(lb_dvs_dataset(&src, &dv, &bo, &d1) == LB_OK, "%s", lb_error_msg());
    lb_threads_set(2);
    CHECK(lb_dvs_dataset(&src, &dv, &bo, &d2) == LB_OK, "%s", lb_error_msg());
    lb_threads_set(th);
    CHECK(d1.n == N && d1.frames == 5 && d1.c == 2 && d1.h == 34 && d1.w == 34 && d1.classes == 3,
          "shape");
    CHECK(!memcmp(d1.images, d2.images, (size_t)N * 5 * 2 * 34 * 34) &&
              !memcmp(d1.labels, lab, sizeof lab),
          "thread count does not change the frames");
    size_t sum = 0;
    for (size_t i = 0; i < (size_t)N * 5 * 2 * 34 * 34; i++) sum += d1.images[i];
    CHECK(sum > 0, "events in the frames");
    /* the file path gives the same frames: each image emulated, written as N-MNIST's
     * Train/<class>/<n>.bin (with Test/ beside it), read back by the folder loader */
    lb_events ev = {0};
    for (int i = 0; i < N; i++) {
        char rel[64], p[512];
        snprintf(rel, sizeof rel, "emu/Train/%d", lab[i]);
        mkdirs(rel);
        snprintf(rel, sizeof rel, "emu/Train/%d/%05d.bin", lab[i], i);
        path(p, rel);
        CHECK(lb_dvs_emulate(imgs + i * H * W, 1, H, W, &dv, (uint64_t)i, &ev) == LB_OK &&
                  lb_events_write(p, &ev, LB_EV_BIN) == LB_OK,
              "%s", lb_error_msg());
    }
    mkdirs("emu/Test/0");
    char p[512];
    path(p, "emu/Test/0/00000.bin");
    lb_events_write(p, &ev, LB_EV_BIN);
    path(p, "emu");
    CHECK(lb_events_load_dir(p, 1, &bo, &d3) == LB_OK, "%s", lb_error_msg());
    CHECK(d3.n == N && d3.h == 34 && !memcmp(d1.images, d3.images, (size_t)N * 5 * 2 * 34 * 34) &&
              !memcmp(d3.labels, lab, sizeof lab),
          "emulated files read back as the in-memory frames");
    lb_events_free(&ev);
    lb_dataset_free(&d3);
    lb_dataset_free(&d1);
    lb_dataset_free(&d2);
}

static void test_folders(void) {
    char p[512];
    lb_events e = {0};
    /* N-MNIST: Train/<digit>/<n>.bin, Test/<digit>/<n>.bin */
    const char *files[] = {"nm/Train/0/00001.bin", "nm/Train/1/00002.bin", "nm/Train/0/00003.bin",
                           "nm/Test/1/00001.bin", "nm/Test/0/00002.bin"};
    mkdirs("nm/Train/0"), mkdirs("nm/Train/1"), mkdirs("nm/Test/0"), mkdirs("nm/Test/1");
    for (int i = 0; i < 5; i++) {
        make_events(&e, 50 + 10 * i, 34, 34, 0, 100 + i);
        path(p, files[i]);
        CHECK(lb_events_write(p, &e, LB_EV_BIN) == LB_OK, "%s", lb_error_msg());
    }
    lb_dataset d;
    lb_event_opts o = {0};
    o.frames = 4;
    path(p, "nm");
    CHECK(lb_events_load_dir(p, 1, &o, &d) == LB_OK, "%s", lb_error_msg());
    CHECK(d.n == 3 && d.frames == 4 && d.c == 2 && d.h == 34 && d.w == 34 && d.classes == 2 &&
              d.class_names && !strcmp(d.class_names[1], "1"),
          "N-MNIST layout");
    CHECK(d.labels[0] == 0 && d.labels[1] == 1 && d.labels[2] == 0, "sorted by file name");
    static uint8_t want[4 * 2 * 34 * 34];
    make_events(&e, 60, 34, 34, 0, 101); /* 00002.bin */
    lb_events_bin(&e, 4, LB_EVBIN_TIME, 34, 34, want);
    CHECK(!memcmp(d.images + sizeof want, want, sizeof want), "sample 1 = its events binned");
    lb_dataset_free(&d);
    CHECK(lb_events_load_dir(p, 0, &o, &d) == LB_OK && d.n == 2 && d.labels[0] == 1, "Test split");
    lb_dataset_free(&d);
    /* a damaged file is named */
    path(p, "nm/Test/0/00002.bin");
    write_bytes(p, "\1\2\3\4\5\6", 6);
    path(p, "nm");
    CHECK(lb_events_load_dir(p, 0, &o, &d) == LB_EFORMAT &&
              msg_has("Test/0/00002.bin", "truncated") && !d.images,
          "truncated file in a folder");

    /* CIFAR10-DVS: <class>/<n>.aedat, held out per class */
    const char *cls[] = {"airplane", "cat"};
    for (int c = 0; c < 2; c++) {
        char rel[64];
        snprintf(rel, sizeof rel, "cd/%s", cls[c]);
        mkdirs(rel);
        for (int i = 0; i < 10; i++) {
            snprintf(rel, sizeof rel, "cd/%s/%d.aedat", cls[c], i);
            make_events(&e, 20 + i, 128, 128, 0, 50);
            path(p, rel);
            lb_events_write(p, &e, LB_EV_AEDAT);
        }
    }
    lb_dataset tr, te;
    o.h = o.w = 48;
    o.test_split = 0.3f;
    o.seed = 9;
    path(p, "cd");
    CHECK(lb_events_load_dir(p, 1, &o, &tr) == LB_OK, "%s", lb_error_msg());
    CHECK(lb_events_load_dir(p, 0, &o, &te) == LB_OK, "%s", lb_error_msg());
    CHECK(tr.n == 14 && te.n == 6 && tr.h == 48 && !strcmp(tr.class_names[0], "airplane"),
          "held-out split, 3 of 10 per class (%d, %d)", tr.n, te.n);
    lb_dataset_free(&tr);
    lb_dataset_free(&te);
    path(p, "cd/cat/x.bin");
    write_bytes(p, "\1\2\3\4\5", 5);
    path(p, "cd");
    CHECK(lb_events_load_dir(p, 1, &o, &tr) == LB_EFORMAT && msg_has("mixes .bin and .aedat", NULL),
          "mixed formats");
    mkdirs("cd/empty");
    path(p, "cd/cat/x.bin");
    remove(p);
    path(p, "cd");
    CHECK(lb_events_load_dir(p, 1, &o, &tr) == LB_EFORMAT && msg_has("cd/empty", "empty class"),
          "empty class folder");
    path(p, "none");
    CHECK(lb_events_load_dir(p, 1, &o, &tr) == LB_EIO && msg_has("none", "cannot open"),
          "missing folder");
    lb_events_free(&e);
}

int main(void) {
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_exact_bytes();
    test_round_trip();
    test_bad_files();
    test_binning();
    test_loader_frames();
    test_emulator();
    test_folders();
    nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    TEST_MAIN_END("test_events");
}
