/* Tests of conv2d and linear: descriptor errors, finite-difference gradients of the references,
 * the fast kernels against the references on many shapes and thread counts, dx_acc, NULL
 * gradients, determinism. PyTorch comparisons are in test_torch_conv.c. */
#include "lb_ops.h"
#include "lb_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static lb_rng rng;

static float *randn(size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    for (size_t i = 0; i < n; i++) p[i] = lb_rng_normal(&rng);
    return p;
}

static float *copyf(const float *a, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    memcpy(p, a, n * sizeof *p);
    return p;
}

static double dotd(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double maxabs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* Scratch is exactly the planned size (so ASan sees overruns) and filled with NaN (so a kernel
 * that reads scratch it did not write shows up). */
static float *scratch_for(const lb_conv2d_desc *d, int nt) {
    size_t n = lb_conv2d_scratch_floats(d, nt);
    float *s = malloc((n ? n : 1) * sizeof *s);
    for (size_t i = 0; i < n; i++) s[i] = NAN;
    return s;
}

static void test_desc(void) {
    lb_conv2d_desc d;
    CHECK(lb_conv2d_desc_init(&d, 2, 3, 5, 7, 4, 3, 1, 1, 1) == LB_OK, "valid");
    CHECK(d.oh == 5 && d.ow == 7, "oh %d ow %d", d.oh, d.ow);
    CHECK(lb_conv2d_desc_init(&d, 1, 4, 28, 28, 8, 3, 2, 1, 2) == LB_OK, "valid s2 g2");
    CHECK(d.oh == 14 && d.ow == 14, "s2 oh %d ow %d", d.oh, d.ow);
    CHECK(lb_conv2d_desc_init(&d, 1, 1, 5, 5, 1, 5, 1, 0, 1) == LB_OK && d.oh == 1 && d.ow == 1,
          "kernel = input");
    struct {
        int n, cin, h, w, cout, k, s, p, g;
    } bad[] = {
        {0, 3, 5, 5, 4, 3, 1, 1, 1},  {1, 0, 5, 5, 4, 3, 1, 1, 1},  {1, 3, 0, 5, 4, 3, 1, 1, 1},
        {1, 3, 5, -1, 4, 3, 1, 1, 1}, {1, 3, 5, 5, 0, 3, 1, 1, 1},  {1, 3, 5, 5, 4, 0, 1, 1, 1},
        {1, 3, 5, 5, 4, 3, 0, 1, 1},  {1, 3, 5, 5, 4, 3, 1, -1, 1}, {1, 3, 5, 5, 4, 3, 1, 1, 2},
        {1, 4, 5, 5, 6, 3, 1, 1, 4},  {1, 4, 5, 5, 4, 3, 1, 1, 0},  {1, 3, 2, 5, 4, 5, 1, 1, 1},
        {1, 3, 5, 2, 4, 5, 1, 0, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lb_error_set(LB_OK, "%s", "");
        lb_status st = lb_conv2d_desc_init(&d, bad[i].n, bad[i].cin, bad[i].h, bad[i].w,
                                           bad[i].cout, bad[i].k, bad[i].s, bad[i].p, bad[i].g);
        CHECK(st == LB_EINVAL && strstr(lb_error_msg(), "conv2d"), "bad case %zu: %d %s", i, st,
              lb_error_msg());
    }
}

/* Loss L = sum(y * r). Its gradients are the backward pass with dy = r; the conv is linear in x,
 * w and b, so central differences are exact up to float rounding of y. */
static double conv_loss(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                        const float *r, float *y) {
    lb_conv2d_forward_ref(d, x, w, b, y);
    return dotd(y, r, (size_t)d->n * d->cout * d->oh * d->ow);
}

static void fd_check(const float *grad, float *param, size_t n, const lb_conv2d_desc *d,
                     const float *x, const float *w, const float *b, const float *r, float *y,
                     const char *what) {
    const float eps = 0.5f; /* L is linear in each entry: a large step only shrinks rounding */
    double worst = 0;
    size_t step = n > 40 ? n / 40 : 1; /* a spread sample of entries keeps it fast */
    for (size_t i = 0; i < n; i += step) {
        const float old = param[i];
        param[i] = old + eps;
        const double lp = conv_loss(d, x, w, b, r, y);
        param[i] = old - eps;
        const double lm = conv_loss(d, x, w, b, r, y);
        param[i] = old;
        const double num = (lp - lm) / (2.0 * eps);
        const double err = fabs(num - grad[i]) / (1e-2 + fabs(num));
        if (err > worst) worst = err;
    }
    CHECK(worst < 2e-3, "%s: finite-difference relative error %g", what, worst);
}

static void test_fd(void) {
    struct {
        int n, cin, h, w, cout, k, s, p, g;
    } sh[] = {
        {2, 3, 5, 6, 4, 3, 1, 1, 1}, {1, 4, 7, 5, 6, 3, 2, 1, 2}, {2, 4, 6, 6, 4, 3, 1, 1, 4},
        {1, 3, 7, 7, 3, 3, 2, 1, 3}, {2, 3, 5, 5, 2, 1, 1, 0, 1}, {1, 2, 8, 7, 3, 5, 1, 2, 1},
        {1, 2, 6, 6, 2, 5, 2, 2, 2}, {2, 3, 5, 4, 4, 3, 1, 0, 1}, {1, 2, 4, 5, 3, 3, 2, 2, 1},
    };
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        lb_conv2d_desc d;
        if (lb_conv2d_desc_init(&d, sh[i].n, sh[i].cin, sh[i].h, sh[i].w, sh[i].cout, sh[i].k,
                                sh[i].s, sh[i].p, sh[i].g) != LB_OK) {
            CHECK(0, "fd desc %zu: %s", i, lb_error_msg());
            continue;
        }
        const size_t nx = (size_t)d.n * d.cin * d.h * d.w, ny = (size_t)d.n * d.cout * d.oh * d.ow;
        const size_t nw = (size_t)d.cout * (d.cin / d.groups) * d.kh * d.kw;
        float *x = randn(nx), *w = randn(nw), *b = randn(d.cout), *r = randn(ny), *y = randn(ny);
        float *dx = randn(nx), *dw = randn(nw), *db = randn(d.cout);
        lb_conv2d_backward_ref(&d, x, w, r, dx, 0, dw, db);
        char what[64];
        snprintf(what, sizeof what, "fd shape %zu dx", i);
        fd_check(dx, x, nx, &d, x, w, b, r, y, what);
        snprintf(what, sizeof what, "fd shape %zu dw", i);
        fd_check(dw, w, nw, &d, x, w, b, r, y, what);
        snprintf(what, sizeof what, "fd shape %zu db", i);
        fd_check(db, b, d.cout, &d, x, w, b, r, y, what);
        free(x), free(w), free(b), free(r), free(y), free(dx), free(dw), free(db);
    }
}

/* One shape: the fast kernels against the reference with nt workers, all gradient combinations. */
static void fast_vs_ref(const lb_conv2d_desc *d, int nt, const char *tag0) {
    lb_threads_set(nt);
    char tag[200];
    const char *e = getenv("LOWBIT_CONV_SIMD");
    snprintf(tag, sizeof tag, "%s%s", tag0, e && e[0] == '0' ? " (no SIMD)" : "");
    const size_t nx = (size_t)d->n * d->cin * d->h * d->w,
                 ny = (size_t)d->n * d->cout * d->oh * d->ow;
    const size_t nw = (size_t)d->cout * (d->cin / d->groups) * d->kh * d->kw;
    float *x = randn(nx), *w = randn(nw), *b = randn(d->cout), *dy = randn(ny);
    float *y0 = randn(ny), *y1 = randn(ny), *sc = scratch_for(d, nt);
    char what[320];
    /* |fast - ref| <= 1e-4 * (max|ref| + 1) elementwise: float sums of the same terms in another
     * order, relative to the magnitude of the tensor */
#define CMP(a, ref, n, name)                                                                       \
    do {                                                                                           \
        snprintf(what, sizeof what, "%s nt%d %s", tag, nt, name);                                  \
        lbt_close(a, ref, n, 1e-4 * (maxabs(ref, n) + 1), 1e-4, what);                             \
    } while (0)
    for (int withb = 0; withb < 2; withb++) {
        lb_conv2d_forward_ref(d, x, w, withb ? b : NULL, y0);
        lb_conv2d_forward(d, x, w, withb ? b : NULL, y1, sc);
        CMP(y1, y0, ny, withb ? "forward+bias" : "forward");
    }
    /* moments for a following BN: exactly lb_bn_plane_moments of each output plane, and the
     * output itself unchanged */
    {
        lb_conv2d_desc dm = *d;
        const size_t planes = (size_t)d->n * d->cout, ohw = (size_t)d->oh * d->ow;
        double *mo = malloc(planes * 2 * sizeof *mo), *mr = malloc(planes * 2 * sizeof *mr);
        float *y2 = randn(ny);
        for (size_t i = 0; i < planes * 2; i++) mo[i] = NAN;
        dm.moments = mo;
        lb_conv2d_forward(&dm, x, w, b, y2, sc);
        for (size_t pl = 0; pl < planes; pl++) lb_bn_plane_moments(y2 + pl * ohw, ohw, mr + 2 * pl);
        snprintf(what, sizeof what, "%s nt%d", tag, nt);
        CHECK(!memcmp(y2, y1, ny * sizeof *y1), "%s: forward with moments changed y", what);
        CHECK(!memcmp(mo, mr, planes * 2 * sizeof *mo), "%s: conv moments differ", what);
        for (size_t i = 0; i < planes * 2; i++) mo[i] = NAN;
        lb_conv2d_forward_ref(&dm, x, w, b, y0);
        for (size_t pl = 0; pl < planes; pl++) lb_bn_plane_moments(y0 + pl * ohw, ohw, mr + 2 * pl);
        CHECK(!memcmp(mo, mr, planes * 2 * sizeof *mo), "%s: reference conv moments differ", what);
        free(mo), free(mr), free(y2);
    }
    float *dx0 = randn(nx), *dw0 = randn(nw), *db0 = randn(d->cout);
    float *dx1 = randn(nx), *dw1 = randn(nw), *db1 = randn(d->cout);
    lb_conv2d_backward_ref(d, x, w, dy, dx0, 0, dw0, db0);
    lb_conv2d_backward(d, x, w, dy, dx1, 0, dw1, db1, sc);
    CMP(dx1, dx0, nx, "dx");
    CMP(dw1, dw0, nw, "dw");
    CMP(db1, db0, (size_t)d->cout, "db");
    /* determinism: the same call again gives identical bits */
    float *dx2 = copyf(dx1, nx), *dw2 = copyf(dw1, nw);
    lb_conv2d_backward(d, x, w, dy, dx2, 0, dw2, NULL, sc);
    snprintf(what, sizeof what, "%s nt%d", tag, nt);
    CHECK(!memcmp(dx2, dx1, nx * sizeof *dx1) && !memcmp(dw2, dw1, nw * sizeof *dw1),
          "%s: backward not bitwise repeatable", what);
    /* dx_acc: dx += grad, and dw/db still overwritten */
    float *base = randn(nx), *acc0 = copyf(base, nx), *acc1 = copyf(base, nx);
    for (size_t i = 0; i < nx; i++) acc0[i] += dx0[i];
    float *dw3 = randn(nw);
    lb_conv2d_backward(d, x, w, dy, acc1, 1, dw3, NULL, sc);
    CMP(acc1, acc0, nx, "dx_acc");
    CMP(dw3, dw0, nw, "dw with dx_acc");
    /* NULL dx (first layer), NULL db, NULL dw: the others are unaffected */
    float *dw4 = randn(nw), *db4 = randn(d->cout), *dx4 = randn(nx);
    lb_conv2d_backward(d, x, w, dy, NULL, 0, dw4, db4, sc);
    CMP(dw4, dw0, nw, "dw with NULL dx");
    CMP(db4, db0, (size_t)d->cout, "db with NULL dx");
    lb_conv2d_backward(d, x, w, dy, dx4, 0, NULL, NULL, sc);
    CMP(dx4, dx0, nx, "dx with NULL dw, db");
    float *db5 = randn(d->cout);
    lb_conv2d_backward(d, x, w, dy, NULL, 0, NULL, db5, sc);
    CMP(db5, db0, (size_t)d->cout, "db alone");
#undef CMP
    free(x), free(w), free(b), free(dy), free(y0), free(y1), free(sc);
    free(dx0), free(dw0), free(db0), free(dx1), free(dw1), free(db1), free(dx2), free(dw2);
    free(base), free(acc0), free(acc1), free(dw3), free(dw4), free(db4), free(dx4), free(db5);
}

static void test_fast(int quick) {
    /* named shapes: every path (GEMM, 1x1, depthwise, flipped-conv dX, col2im dX, blocking) */
    struct {
        int n, cin, h, w, cout, k, s, p, g;
        const char *name;
    } sh[] = {
        {3, 1, 28, 28, 8, 3, 1, 1, 1, "first layer cin=1"},
        {2, 16, 14, 14, 16, 3, 1, 1, 1, "3x3 s1 p1"},
        {3, 16, 14, 14, 32, 3, 2, 1, 1, "3x3 s2 p1"},
        {2, 8, 9, 11, 12, 1, 1, 0, 1, "1x1"},
        {2, 8, 9, 11, 12, 1, 2, 0, 1, "1x1 s2"},
        {2, 8, 10, 10, 6, 3, 1, 1, 2, "groups 2"},
        {3, 12, 13, 13, 12, 3, 1, 1, 12, "depthwise s1"},
        {3, 12, 13, 12, 12, 3, 2, 1, 12, "depthwise s2"},
        {2, 5, 9, 9, 5, 5, 1, 2, 5, "depthwise 5x5"},
        {2, 8, 11, 11, 8, 5, 2, 2, 8, "depthwise 5x5 s2"},
        {2, 4, 7, 37, 4, 5, 1, 2, 4, "depthwise 5x5 wide rows"},
        {2, 3, 9, 40, 3, 5, 2, 2, 3, "depthwise 5x5 s2 wide rows"},
        {2, 4, 9, 8, 4, 3, 2, 0, 4, "depthwise s2 p0"},
        {2, 5, 11, 9, 5, 3, 1, 0, 5, "depthwise 3x3 p0"},
        {2, 5, 6, 7, 5, 3, 1, 2, 5, "depthwise 3x3 p2"},
        {2, 3, 9, 37, 3, 3, 1, 1, 3, "depthwise wide rows"},
        {3, 40, 7, 7, 40, 3, 1, 1, 40, "depthwise 16 channels at a time, tail block"},
        {2, 33, 4, 4, 33, 3, 2, 1, 33, "depthwise 16 at a time s2"},
        {2, 20, 6, 5, 20, 5, 1, 2, 20, "depthwise 16 at a time 5x5"},
        {3, 64, 2, 2, 64, 3, 1, 1, 64, "depthwise 16 at a time 2x2 planes"},
        {2, 17, 8, 8, 17, 7, 1, 3, 17, "depthwise 16 at a time 7x7 kernel"},
        {2, 32, 8, 9, 32, 3, 1, 1, 32, "depthwise rows of 9: the plane kernels"},
        {4, 8, 28, 28, 8, 3, 2, 1, 8, "depthwise 16 at a time, 8 channels, 28 -> 14"},
        {3, 24, 2, 2, 24, 3, 2, 1, 24, "depthwise 16 at a time 2x2 -> 1x1"},
        {3, 20, 1, 1, 20, 3, 1, 1, 20, "depthwise 16 at a time 1x1 planes"},
        {2, 4, 8, 8, 8, 3, 1, 1, 4, "grouped cout=2cin"},
        {2, 4, 7, 7, 6, 3, 1, 3, 1, "pad > k-1 (col2im dX)"},
        {3, 6, 7, 9, 10, 3, 2, 1, 1, "3x3 s2 odd sizes"},
        {2, 5, 10, 8, 7, 5, 2, 2, 1, "5x5 s2 p2"},
        {3, 6, 9, 7, 4, 1, 2, 0, 2, "1x1 s2 groups 2"},
        {5, 12, 7, 7, 20, 3, 1, 1, 1, "7x7 packed blocks, tail block"},
        {2, 9, 16, 16, 17, 3, 1, 1, 1, "cout not a multiple of 8"},
        {2, 11, 16, 16, 9, 3, 1, 1, 1, "cin odd"},
        {5, 8, 16, 16, 8, 3, 1, 1, 1, "unpacked dW blocks of images"},
        {1, 3, 70, 66, 8, 3, 1, 1, 1, "large image: position chunks"},
        {2, 4, 50, 47, 6, 3, 2, 1, 1, "large image stride 2"},
        {1, 3, 9, 9, 4, 5, 1, 0, 1, "5x5 p0"},
        {5, 3, 3, 3, 2, 3, 1, 1, 1, "tiny 3x3"},
        {2, 2, 1, 1, 3, 1, 1, 0, 1, "1x1 image"},
        {1, 32, 20, 20, 6, 5, 1, 2, 1, "blocked forward/dW columns"},
        {1, 6, 20, 20, 32, 5, 1, 2, 1, "blocked dX columns"},
        {1, 64, 36, 36, 6, 5, 2, 2, 1, "blocked col2im"},
        {3, 8, 7, 15, 16, 3, 1, 1, 1, "winograd odd sizes"},
        {2, 16, 5, 35, 8, 3, 1, 1, 1, "winograd tile rows past 16 tiles"},
        {11, 24, 3, 13, 8, 3, 1, 1, 1, "winograd many images per block, tail"},
        {2, 8, 1, 14, 8, 3, 1, 1, 1, "winograd one-row image"},
        {3, 32, 28, 28, 16, 3, 1, 1, 1, "winograd 28x28"},
        {5, 16, 7, 7, 24, 3, 1, 1, 1, "winograd 7x7 side by side, empty slots"},
        {9, 8, 2, 1, 8, 3, 1, 1, 1, "winograd 1-wide images side by side"},
    };
    char tag[128];
    for (size_t i = 0; i < sizeof sh / sizeof sh[0]; i++) {
        lb_conv2d_desc d;
        if (lb_conv2d_desc_init(&d, sh[i].n, sh[i].cin, sh[i].h, sh[i].w, sh[i].cout, sh[i].k,
                                sh[i].s, sh[i].p, sh[i].g) != LB_OK) {
            CHECK(0, "%s: %s", sh[i].name, lb_error_msg());
            continue;
        }
        for (int nt = 1; nt <= 2; nt++) fast_vs_ref(&d, nt, sh[i].name);
        /* the direct kernels where Winograd would run */
        setenv("LOWBIT_CONV_WINOGRAD", "0", 1);
        fast_vs_ref(&d, 2, sh[i].name);
        unsetenv("LOWBIT_CONV_WINOGRAD");
        /* the GEMM formulation and the baseline depthwise loops, whatever this CPU has */
        setenv("LOWBIT_CONV_SIMD", "0", 1);
        for (int nt = 1; nt <= 2; nt++) fast_vs_ref(&d, nt, sh[i].name);
        unsetenv("LOWBIT_CONV_SIMD");
    }
    /* random shapes */
    const int count = quick ? 30 : 120;
    for (int it = 0; it < count; it++) {
        const int g = 1 + (int)lb_rng_below(&rng, 3);
        const int dwise = lb_rng_below(&rng, 4) == 0;
        const int cin =
            dwise ? 1 + (int)lb_rng_below(&rng, 6) : g * (1 + (int)lb_rng_below(&rng, 4));
        const int cout = dwise ? cin : g * (1 + (int)lb_rng_below(&rng, 4));
        const int k = 1 + 2 * (int)lb_rng_below(&rng, 3), s = 1 + (int)lb_rng_below(&rng, 2);
        const int p = (int)lb_rng_below(&rng, 3);
        const int h = 1 + (int)lb_rng_below(&rng, 13), w = 1 + (int)lb_rng_below(&rng, 13);
        const int n = 1 + (int)lb_rng_below(&rng, 5);
        lb_conv2d_desc d;
        if (lb_conv2d_desc_init(&d, n, cin, h, w, cout, k, s, p, dwise ? cin : g) != LB_OK)
            continue; /* kernel larger than the padded input */
        snprintf(tag, sizeof tag, "random n%d c%d->%d %dx%d k%d s%d p%d g%d", n, cin, cout, h, w, k,
                 s, p, d.groups);
        if (it % 3 == 2) setenv("LOWBIT_CONV_SIMD", "0", 1);
        fast_vs_ref(&d, 1 + it % 2, tag);
        unsetenv("LOWBIT_CONV_SIMD");
    }
}

static void test_linear(void) {
    const int n = 5, in = 37, out = 11;
    float *x = randn((size_t)n * in), *w = randn((size_t)out * in), *b = randn(out);
    float *dy = randn((size_t)n * out), *y0 = randn((size_t)n * out), *y1 = randn((size_t)n * out);
    lb_linear_forward_ref(n, in, out, x, w, b, y0);
    lb_linear_forward(n, in, out, x, w, b, y1);
    lbt_close(y1, y0, (size_t)n * out, 1e-4, 1e-4, "linear forward");
    lb_linear_forward_ref(n, in, out, x, w, NULL, y0);
    lb_linear_forward(n, in, out, x, w, NULL, y1);
    lbt_close(y1, y0, (size_t)n * out, 1e-4, 1e-4, "linear forward no bias");
    float *dx0 = randn((size_t)n * in), *dw0 = randn((size_t)out * in), *db0 = randn(out);
    float *dx1 = randn((size_t)n * in), *dw1 = randn((size_t)out * in), *db1 = randn(out);
    lb_linear_backward_ref(n, in, out, x, w, dy, dx0, 0, dw0, db0);
    lb_linear_backward(n, in, out, x, w, dy, dx1, 0, dw1, db1);
    lbt_close(dx1, dx0, (size_t)n * in, 1e-4, 1e-4, "linear dx");
    lbt_close(dw1, dw0, (size_t)out * in, 1e-4, 1e-4, "linear dw");
    lbt_close(db1, db0, out, 1e-4, 1e-4, "linear db");
    float *base = randn((size_t)n * in), *a0 = copyf(base, (size_t)n * in),
          *a1 = copyf(base, (size_t)n * in), *a2 = copyf(base, (size_t)n * in);
    lb_linear_backward(n, in, out, x, w, dy, a1, 1, NULL, NULL);
    lb_linear_backward_ref(n, in, out, x, w, dy, a2, 1, NULL, NULL);
    for (int i = 0; i < n * in; i++) a0[i] += dx0[i];
    lbt_close(a1, a0, (size_t)n * in, 1e-4, 1e-4, "linear dx_acc");
    lbt_close(a2, a0, (size_t)n * in, 1e-4, 1e-4, "linear ref dx_acc");
    /* finite differences of L = sum(y * dy) (linear in every argument) */
    const float eps = 0.5f; /* L is linear in each entry: a large step only shrinks rounding */
    double worst = 0;
    float *params[3] = {x, w, b}, *grads[3] = {dx0, dw0, db0};
    const int sizes[3] = {n * in, out * in, out};
    for (int q = 0; q < 3; q++)
        for (int i = 0; i < sizes[q]; i += 7) {
            const float old = params[q][i];
            params[q][i] = old + eps;
            lb_linear_forward_ref(n, in, out, x, w, b, y0);
            const double lp = dotd(y0, dy, (size_t)n * out);
            params[q][i] = old - eps;
            lb_linear_forward_ref(n, in, out, x, w, b, y0);
            const double lm = dotd(y0, dy, (size_t)n * out);
            params[q][i] = old;
            const double num = (lp - lm) / (2.0 * eps);
            worst = fmax(worst, fabs(num - grads[q][i]) / (1e-2 + fabs(num)));
        }
    CHECK(worst < 2e-3, "linear finite differences: relative error %g", worst);
    free(x), free(w), free(b), free(dy), free(y0), free(y1), free(dx0), free(dw0), free(db0);
    free(dx1), free(dw1), free(db1), free(base), free(a0), free(a1), free(a2);
}

/* The Winograd path runs where it should: on an AVX-512 CPU a 3x3 stride-1 conv gives other last
 * bits than the direct kernels (fewer products, other sums) while both stay within the reference
 * tolerance (fast_vs_ref), narrow images included (laid side by side); channels that are not
 * a multiple of 8 stay direct (same bits either way). */
static void test_winograd_taken(void) {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512dq"))
        return;
    const int shapes[3][3] = {{28, 16, 1}, {7, 16, 1}, {14, 12, 0}}; /* size, channels, expected */
    for (int i = 0; i < 3; i++) {
        lb_conv2d_desc d;
        const int hw = shapes[i][0], c = shapes[i][1];
        if (lb_conv2d_desc_init(&d, 2, c, hw, hw, c, 3, 1, 1, 1) != LB_OK) {
            CHECK(0, "winograd desc: %s", lb_error_msg());
            continue;
        }
        lb_threads_set(2);
        const size_t nx = (size_t)2 * c * hw * hw, nw = (size_t)c * c * 9;
        float *x = randn(nx), *w = randn(nw), *dy = randn(nx), *sc = scratch_for(&d, 2);
        float *y0 = randn(nx), *y1 = randn(nx), *dx0 = randn(nx), *dx1 = randn(nx);
        float *dw0 = randn(nw), *dw1 = randn(nw);
        lb_conv2d_forward(&d, x, w, NULL, y0, sc);
        lb_conv2d_backward(&d, x, w, dy, dx0, 0, NULL, NULL, sc);
        lb_conv2d_backward(&d, x, w, dy, NULL, 0, dw0, NULL, sc);
        setenv("LOWBIT_CONV_WINOGRAD", "0", 1);
        lb_conv2d_forward(&d, x, w, NULL, y1, sc);
        lb_conv2d_backward(&d, x, w, dy, dx1, 0, NULL, NULL, sc);
        lb_conv2d_backward(&d, x, w, dy, NULL, 0, dw1, NULL, sc);
        unsetenv("LOWBIT_CONV_WINOGRAD");
        const char *what[3] = {"forward", "dx", "dw"};
        const int same[3] = {!memcmp(y0, y1, nx * sizeof *y0), !memcmp(dx0, dx1, nx * sizeof *dx0),
                             !memcmp(dw0, dw1, nw * sizeof *dw0)};
        for (int k = 0; k < 3; k++)
            CHECK(same[k] != shapes[i][2], "%dx%d %d->%d %s: Winograd %s", hw, hw, c, c, what[k],
                  shapes[i][2] ? "expected but not taken" : "taken for channels not /8");
        free(x), free(w), free(dy), free(sc), free(y0), free(y1), free(dx0), free(dx1);
        free(dw0), free(dw1);
    }
}

int main(void) {
    const char *q = getenv("LOWBIT_QUICK");
    const int quick = q && q[0] && q[0] != '0';
    lb_rng_seed(&rng, 1234);
    test_desc();
    test_fd();
    test_fast(quick);
    test_winograd_taken();
    test_linear();
    lb_threads_set(1);
    TEST_MAIN_END("test_conv");
}
