/* Tests of the loader (lb_loader): batch order, padding, crop and flip against an explicit
 * reference, determinism for (seed, epoch), normalization, and the prefetch thread on the real
 * Fashion-MNIST. Not the file readers (test_data.c). */
#include "lb_data.h"
#include "lb_test.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

static int g_quick;

/* ---- loader -------------------------------------------------------------------------------- */

/* What the loader must produce for sample idx with draws (oy, ox, flip): the image padded with
 * zeros into an explicit (H+2P)x(W+2P) buffer, cropped at (oy, ox), then mirrored. */
static void expect_sample(const lb_dataset *d, int idx, int P, int oy, int ox, int flip,
                          const float *mean, const float *sd, float *out) {
    int H = d->h, W = d->w;
    uint8_t padded[3][40][40];
    memset(padded, 0, sizeof padded);
    for (int c = 0; c < d->c; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                padded[c][y + P][x + P] = d->images[(((size_t)idx * d->c + c) * H + y) * W + x];
    for (int c = 0; c < d->c; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                uint8_t v = padded[c][y + oy][(flip ? W - 1 - x : x) + ox];
                out[(c * H + y) * W + x] = ((float)v / 255.0f - mean[c]) / sd[c];
            }
}

static void draws(uint64_t seed, int epoch, int pos, int P, int hflip, int *oy, int *ox,
                  int *flip) {
    lb_rng r;
    lb_rng_derive(&r, seed, (uint64_t)epoch, 1 + (uint64_t)pos);
    *oy = *ox = *flip = 0;
    if (P) {
        *oy = (int)lb_rng_below(&r, 2 * (uint32_t)P + 1);
        *ox = (int)lb_rng_below(&r, 2 * (uint32_t)P + 1);
    }
    if (hflip) *flip = (int)lb_rng_below(&r, 2);
}

/* Runs one epoch, returning the number of samples; x/y get everything in order. */
static int run_epoch(lb_loader *l, int epoch, int batch, size_t chw, float *x, int32_t *y,
                     int *sizes) {
    lb_loader_start(l, epoch);
    int total = 0, b, k = 0;
    while ((b = lb_loader_next(l, x + (size_t)total * chw, y + total)) > 0) {
        if (sizes) sizes[k++] = b;
        total += b;
        if (k >= 32 || b > batch) break;
    }
    return total;
}

static void test_loader(void) {
    enum { N = 23, C = 2, H = 3, W = 4 };
    uint8_t img[N * C * H * W];
    int32_t lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = i;
        for (int k = 0; k < C * H * W; k++) img[i * C * H * W + k] = (uint8_t)(i * 13 + k * 9 + 5);
    }
    lb_dataset d = {N, C, H, W, N, img, lab, NULL, 0};
    const size_t chw = C * H * W;
    float mean[3], sd[3];
    lb_dataset_norm(&d, mean, sd);
    float *x = malloc(sizeof(float) * chw * (N + 100)),
          *x2 = malloc(sizeof(float) * chw * (N + 100));
    float *e = malloc(sizeof(float) * chw);
    int32_t y[N + 100], y2[N + 100];
    int sizes[32];
    lb_loader *l = NULL, *l2 = NULL;

    /* In order, no augmentation: batches 5,5,5,5,3 then 0, plain normalized pixels. */
    lb_loader_cfg cfg = {5, 0, 0, {0, 0}, 1, 0, {0}};
    CHECK(lb_loader_new(&d, &cfg, &l) == LB_OK, "new: %s", lb_error_msg());
    CHECK(lb_loader_batches(l) == 5 && lb_loader_samples(l) == N, "batches %d samples %d",
          lb_loader_batches(l), lb_loader_samples(l));
    int got = run_epoch(l, 0, 5, chw, x, y, sizes);
    CHECK(got == N && sizes[0] == 5 && sizes[3] == 5 && sizes[4] == 3, "sizes, last short (%d)",
          got);
    CHECK(lb_loader_next(l, x, y) == 0, "0 at the end of the epoch");
    int ok = 1;
    for (int i = 0; i < N; i++) {
        ok &= y[i] == i;
        expect_sample(&d, i, 0, 0, 0, 0, mean, sd, e);
        ok &= memcmp(e, x + i * chw, chw * sizeof *e) == 0;
    }
    CHECK(ok, "in-order values");
    lb_loader_free(l);

    /* Shuffled and augmented: order and per-sample draws exactly as documented. */
    lb_loader_cfg ac = {4, 1, 0, {1, 1}, 77, 0, {0}};
    lb_loader_cfg pc = ac;
    pc.prefetch = 1;
    CHECK(lb_loader_new(&d, &ac, &l) == LB_OK && lb_loader_new(&d, &pc, &l2) == LB_OK, "new aug");
    int seen_combo[3][3][2] = {{{0}}};
    int32_t prev[N];
    for (int ep = 0; ep < 12; ep++) {
        int g1 = run_epoch(l, ep, 4, chw, x, y, NULL), g2 = run_epoch(l2, ep, 4, chw, x2, y2, NULL);
        CHECK(g1 == N && g2 == N, "epoch %d sizes %d %d", ep, g1, g2);
        CHECK(memcmp(x, x2, chw * N * sizeof *x) == 0 && memcmp(y, y2, N * sizeof *y) == 0,
              "epoch %d: prefetch on == off bit for bit", ep);
        int count[N] = {0}, once = 1, vals = 1;
        for (int i = 0; i < N; i++) count[y[i]]++;
        for (int i = 0; i < N; i++) once &= count[i] == 1;
        CHECK(once, "epoch %d: every sample exactly once", ep);
        lb_rng r; /* the documented permutation */
        int32_t perm[N];
        for (int i = 0; i < N; i++) perm[i] = i;
        lb_rng_derive(&r, 77, (uint64_t)ep, 0);
        for (int i = N - 1; i > 0; i--) {
            int j = (int)lb_rng_below(&r, (uint32_t)i + 1), t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        CHECK(memcmp(perm, y, sizeof perm) == 0, "epoch %d: documented permutation", ep);
        for (int p = 0; p < N; p++) {
            int oy, ox, fl;
            draws(77, ep, p, 1, 1, &oy, &ox, &fl);
            seen_combo[oy][ox][fl]++;
            expect_sample(&d, y[p], 1, oy, ox, fl, mean, sd, e);
            vals &= memcmp(e, x + p * chw, chw * sizeof *e) == 0;
        }
        CHECK(vals, "epoch %d: crop/flip values", ep);
        if (ep > 0) CHECK(memcmp(prev, y, sizeof prev) != 0, "epoch %d order differs", ep);
        memcpy(prev, y, sizeof prev);
    }
    int all = 1;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) all &= seen_combo[a][b][0] > 0 && seen_combo[a][b][1] > 0;
    CHECK(all, "all 9 offsets x 2 flips drawn");
    /* same seed, fresh loader: the same batches; another seed: another order */
    lb_loader_free(l2);
    CHECK(lb_loader_new(&d, &pc, &l2) == LB_OK, "new again");
    run_epoch(l, 5, 4, chw, x, y, NULL);
    run_epoch(l2, 5, 4, chw, x2, y2, NULL);
    CHECK(memcmp(x, x2, chw * N * sizeof *x) == 0 && memcmp(y, y2, sizeof y[0] * N) == 0,
          "same seed, same batches");
    lb_loader_free(l2);
    pc.seed = 78;
    CHECK(lb_loader_new(&d, &pc, &l2) == LB_OK, "new seed 78");
    run_epoch(l2, 5, 4, chw, x2, y2, NULL);
    CHECK(memcmp(y, y2, sizeof y[0] * N) != 0, "another seed, another order");
    lb_loader_free(l2);

    /* Restarting mid-epoch while the prefetch runs, in many interleavings. */
    pc.seed = 77;
    CHECK(lb_loader_new(&d, &pc, &l2) == LB_OK, "new restart");
    int rok = 1;
    int iters = g_quick ? 100 : 400;
    for (int it = 0; it < iters; it++) {
        int e1 = it % 5, k = it % 7, e2 = (it * 3) % 11;
        lb_loader_start(l2, e1);
        run_epoch(l, e1, 4, chw, x, y, NULL);
        for (int b = 0; b < k; b++) {
            int n2 = lb_loader_next(l2, x2, y2);
            int exp = b < 6 ? (b < 5 ? 4 : 3) : 0;
            rok &= n2 == exp && (n2 == 0 || (memcmp(x2, x + b * 4 * chw, n2 * chw * 4) == 0 &&
                                             memcmp(y2, y + b * 4, n2 * 4) == 0));
        }
        run_epoch(l, e2, 4, chw, x, y, NULL);
        int g2 = run_epoch(l2, e2, 4, chw, x2, y2, NULL);
        rok &= g2 == N && memcmp(x, x2, chw * N * sizeof *x) == 0;
    }
    CHECK(rok, "restart mid-epoch under prefetch");
    lb_loader_free(l2);
    /* Freeing mid-epoch and right after creation joins the thread (ASan/valgrind see leaks). */
    for (int it = 0; it < 50; it++) {
        CHECK(lb_loader_new(&d, &pc, &l2) == LB_OK, "new/free");
        for (int b = 0; b < it % 3; b++) lb_loader_next(l2, x2, y2);
        lb_loader_free(l2);
    }
    lb_loader_free(l);
    lb_loader_free(NULL);

    /* limit, and a batch larger than the set */
    lb_loader_cfg lc = {3, 1, 7, {0, 1}, 5, 1, {0}};
    CHECK(lb_loader_new(&d, &lc, &l) == LB_OK, "new limit");
    CHECK(lb_loader_batches(l) == 3 && lb_loader_samples(l) == 7, "limit batches");
    got = run_epoch(l, 2, 3, chw, x, y, sizes);
    int lim = got == 7 && sizes[2] == 1;
    int cnt7[7] = {0};
    for (int i = 0; lim && i < 7; i++) lim &= y[i] >= 0 && y[i] < 7 && ++cnt7[y[i]] == 1;
    CHECK(lim, "limit uses the first 7 samples once each");
    lb_loader_free(l);
    lc.batch = 100;
    lc.limit = 0;
    CHECK(lb_loader_new(&d, &lc, &l) == LB_OK && lb_loader_batches(l) == 1, "big batch");
    CHECK(run_epoch(l, 0, 100, chw, x, y, sizes) == N && sizes[0] == N, "one batch of all");
    lb_loader_free(l);

    /* Hand-computed crop: one 1x2x2 image [[10,20],[30,40]], pad 1, compared in pixel units. */
    uint8_t tiny[4] = {10, 20, 30, 40};
    int32_t tl[1] = {0};
    lb_dataset td = {1, 1, 2, 2, 1, tiny, tl, NULL, 0};
    lb_dataset_norm(&td, mean, sd);
    lb_loader_cfg tc = {1, 0, 0, {1, 1}, 3, 1, {0}};
    CHECK(lb_loader_new(&td, &tc, &l) == LB_OK, "new tiny");
    static const uint8_t padded[4][4] = {
        {0, 0, 0, 0}, {0, 10, 20, 0}, {0, 30, 40, 0}, {0, 0, 0, 0}};
    int hand = 1, cases = 0;
    for (int ep = 0; ep < 400; ep++) {
        float out[4];
        lb_loader_start(l, ep);
        hand &= lb_loader_next(l, out, tl) == 1;
        int oy, ox, fl;
        draws(3, ep, 0, 1, 1, &oy, &ox, &fl);
        for (int yy = 0; yy < 2; yy++)
            for (int xx = 0; xx < 2; xx++) {
                uint8_t v = padded[oy + yy][ox + (fl ? 1 - xx : xx)];
                hand &= fabsf(out[yy * 2 + xx] - ((float)v / 255.0f - mean[0]) / sd[0]) < 1e-6f;
            }
        /* the two corners, spelled out */
        if (oy == 0 && ox == 0 && !fl) {
            cases++;
            hand &= fabsf(out[3] * sd[0] + mean[0] - 10 / 255.0f) < 1e-6f; /* [[0,0],[0,10]] */
            hand &= fabsf(out[0] * sd[0] + mean[0]) < 1e-6f;
        }
        if (oy == 2 && ox == 1 && fl) {
            cases++;
            hand &= fabsf(out[0] * sd[0] + mean[0] - 40 / 255.0f) < 1e-6f; /* [[40,30],[0,0]] */
            hand &= fabsf(out[1] * sd[0] + mean[0] - 30 / 255.0f) < 1e-6f;
        }
    }
    CHECK(hand && cases >= 2, "hand-computed crop/flip (%d corner cases)", cases);
    lb_loader_free(l);

    /* bad configurations */
    lb_loader_cfg bc = {0, 0, 0, {0, 0}, 0, 0, {0}};
    CHECK(lb_loader_new(&d, &bc, &l) == LB_EINVAL && l == NULL, "batch 0 rejected");
    bc.batch = 1;
    bc.aug.crop_pad = -1;
    CHECK(lb_loader_new(&d, &bc, &l) == LB_EINVAL, "negative pad rejected");
    lb_dataset d4 = d;
    d4.c = 4;
    bc.aug.crop_pad = 0;
    CHECK(lb_loader_new(&d4, &bc, &l) == LB_EINVAL, "4 channels rejected");
    free(x);
    free(x2);
    free(e);
}

/* Explicit normalization constants (the model's) replace the data set's own statistics. */
static void test_loader_norm(void) {
    enum { N = 6, C = 2, H = 3, W = 3 };
    uint8_t img[N * C * H * W];
    int32_t lab[N];
    for (int i = 0; i < N; i++) {
        lab[i] = i % 2;
        for (int k = 0; k < C * H * W; k++) img[i * C * H * W + k] = (uint8_t)(i * 40 + k * 7);
    }
    lb_dataset d = {N, C, H, W, 2, img, lab, NULL, 0};
    const size_t chw = C * H * W;
    float own_mean[3], own_sd[3], x[N * C * H * W], e[C * H * W];
    int32_t y[N];
    lb_dataset_norm(&d, own_mean, own_sd);
    const lb_norm nm = {1, {0.5f, 0.25f, 0.125f}, {0.25f, 0.5f, 2.0f}};
    CHECK(own_mean[0] != nm.mean[0] && own_sd[1] != nm.std[1],
          "the constants differ from the data's");

    lb_loader_cfg cfg = {4, 0, 0, {0, 0}, 1, 0, nm};
    lb_loader *l = NULL;
    CHECK(lb_loader_new(&d, &cfg, &l) == LB_OK, "new with norm: %s", lb_error_msg());
    int got = run_epoch(l, 0, 4, chw, x, y, NULL), ok = got == N;
    for (int i = 0; ok && i < N; i++) {
        expect_sample(&d, i, 0, 0, 0, 0, nm.mean, nm.std, e);
        ok &= memcmp(e, x + i * chw, sizeof e) == 0;
    }
    CHECK(ok, "loader values use the given mean/std, not the data's");
    lb_loader_free(l);

    /* lb_norm_resolve: the model's when set, else the data's */
    float m[3], sd[3];
    lb_norm_resolve(&nm, &d, m, sd);
    CHECK(memcmp(m, nm.mean, sizeof m) == 0 && memcmp(sd, nm.std, sizeof sd) == 0, "resolve set");
    lb_norm unset = {0, {9, 9, 9}, {9, 9, 9}};
    lb_norm_resolve(&unset, &d, m, sd);
    CHECK(memcmp(m, own_mean, sizeof m) == 0 && memcmp(sd, own_sd, sizeof sd) == 0,
          "resolve unset falls back to lb_dataset_norm");
    lb_norm_resolve(NULL, &d, m, sd);
    CHECK(memcmp(m, own_mean, sizeof m) == 0, "resolve NULL falls back to lb_dataset_norm");
    CHECK(lb_norm_check(&unset, "x") == LB_OK && lb_norm_check(NULL, "x") == LB_OK,
          "unset is valid");

    /* invalid constants are refused, naming the channel */
    static const struct {
        int ch;
        float mean, sd;
    } bad[] = {{0, 0.5f, 0.0f},     {1, 0.5f, -0.25f},    {2, NAN, 1.0f},
               {1, 0.5f, INFINITY}, {0, -INFINITY, 1.0f}, {2, 0.5f, NAN}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        lb_loader_cfg bc = cfg;
        bc.norm.mean[bad[k].ch] = bad[k].mean;
        bc.norm.std[bad[k].ch] = bad[k].sd;
        l = (lb_loader *)&bc; /* must be reset to NULL */
        lb_status st = lb_loader_new(&d, &bc, &l);
        char ch[16];
        snprintf(ch, sizeof ch, "channel %d", bad[k].ch);
        CHECK(st == LB_EINVAL && l == NULL && strstr(lb_error_msg(), "normalization") &&
                  strstr(lb_error_msg(), ch),
              "bad norm %zu rejected: %s", k, lb_error_msg());
        if (st == LB_OK) lb_loader_free(l);
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The real set through the loader: prefetch on == off, and the loader's own speed. */
static void test_loader_fashion(const lb_dataset *train) {
    if (train->n != 60000) return;
    lb_loader_cfg cfg = {128, 1, g_quick ? 4096 : 0, {2, 1}, 11, 0, {0}};
    lb_loader *a, *b;
    CHECK(lb_loader_new(train, &cfg, &a) == LB_OK, "fashion loader");
    cfg.prefetch = 1;
    CHECK(lb_loader_new(train, &cfg, &b) == LB_OK, "fashion loader prefetch");
    float *x1 = malloc(128 * 784 * sizeof(float)), *x2 = malloc(128 * 784 * sizeof(float));
    int32_t y1[128], y2[128];
    lb_loader_start(a, 3);
    lb_loader_start(b, 3);
    int same = 1, n1, n2, total = 0;
    double t0 = now();
    do {
        n1 = lb_loader_next(a, x1, y1);
        n2 = lb_loader_next(b, x2, y2);
        same &= n1 == n2 && memcmp(x1, x2, (size_t)n1 * 784 * 4) == 0 &&
                memcmp(y1, y2, (size_t)n1 * 4) == 0;
        total += n1;
    } while (n1 > 0 && n2 > 0);
    double t1 = now();
    CHECK(same && total == lb_loader_samples(a), "fashion epoch prefetch on == off (%d)", total);
    /* prefetch alone: the time per epoch the caller waits */
    lb_loader_start(b, 4);
    double t2 = now();
    while (lb_loader_next(b, x2, y2) > 0) {
    }
    double t3 = now();
    printf("fashion loader (crop 2 + flip, batch 128): %d samples, both loaders %.0f ms, "
           "prefetch alone %.0f ms (%.2f us/sample)\n",
           total, (t1 - t0) * 1e3, (t3 - t2) * 1e3, (t3 - t2) * 1e6 / total);
    lb_loader_free(a);
    lb_loader_free(b);
    free(x1);
    free(x2);
}

int main(void) {
    const char *q = getenv("LOWBIT_QUICK");
    g_quick = q && q[0] && q[0] != '0';
    test_loader();
    test_loader_norm();
    lb_dataset train;
    lb_status st = lb_dataset_load_dir(FASHION_DIR, 1, &train);
    CHECK(st == LB_OK, "fashion train: %s", lb_error_msg());
    if (st == LB_OK) {
        test_loader_fashion(&train);
        lb_dataset_free(&train);
    }
    TEST_MAIN_END("test_loader");
}
