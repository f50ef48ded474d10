/* Tests of the integer kernels: the rounding primitives against exact references, and the AVX2
 * and VNNI kernels against the scalar reference bit for bit over many shapes and types. Whole
 * models, errors and the export directory are in test_int.c. LOWBIT_QUICK=1 (sanitizer pass)
 * uses fewer shapes. */
#include "../src/int/int_internal.h"
#include "lb_int.h"
#include "lb_models.h"
#include "lb_test.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static int64_t rnd_in(int64_t lo, int64_t hi) {
    return lo + (int64_t)(rnd() % (uint64_t)(hi - lo + 1));
}

/* ---- primitives ------------------------------------------------------------------------------ */
/* round(num / den) with ties to even, den > 0, in 128-bit arithmetic. */
static int64_t ref_div(__int128 num, __int128 den) {
    __int128 q = num / den, r = num % den;
    if (r < 0) {
        q -= 1;
        r += den;
    }
    if (2 * r > den || (2 * r == den && (q & 1))) q += 1;
    return (int64_t)q;
}

static void test_rounding(void) {
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        int s = (int)rnd_in(1, 62);
        int64_t lim = (int64_t)1 << 61;
        int64_t t = i % 4 == 0 ? (int64_t)(rnd() % 2000) - 1000 : rnd_in(-lim, lim);
        if (i % 3 == 0) { /* an exact tie */
            int64_t u = (int64_t)1 << s;
            t = t / u * u + u / 2 * (i % 2 ? 1 : -1);
        }
        if (lb_int_rshift_rne(t, s) != ref_div(t, (__int128)1 << s)) bad++;
    }
    CHECK(bad == 0, "rshift_rne: %d of 200000 differ from the exact reference", bad);
    CHECK(lb_int_rshift_rne(1, 1) == 0 && lb_int_rshift_rne(3, 1) == 2 &&
              lb_int_rshift_rne(-1, 1) == 0 && lb_int_rshift_rne(-3, 1) == -2 &&
              lb_int_rshift_rne(5, 1) == 2 && lb_int_rshift_rne(-5, 1) == -2,
          "rshift_rne ties: 0.5->0, 1.5->2, -0.5->0, -1.5->-2, 2.5->2, -2.5->-2");
    CHECK(lb_int_rshift_rne(7, 2) == 2 && lb_int_rshift_rne(-7, 2) == -2 &&
              lb_int_rshift_rne(6, 2) == 2 && lb_int_rshift_rne(-6, 2) == -2,
          "rshift_rne: 1.75->2, -1.75->-2, 1.5->2, -1.5->-2");
    bad = 0;
    for (int i = 0; i < 100000; i++) {
        int64_t n = rnd_in(1, 5000), sum = rnd_in(-((int64_t)1 << 40), (int64_t)1 << 40);
        if (i % 5 == 0) sum = rnd_in(-50, 50) * n + (i % 2 ? n / 2 : -(n / 2)); /* ties if n even */
        if (lb_int_div_rne(sum, n) != ref_div(sum, n)) bad++;
    }
    CHECK(bad == 0, "div_rne: %d of 100000 differ", bad);
    CHECK(lb_int_div_rne(5, 2) == 2 && lb_int_div_rne(7, 2) == 4 && lb_int_div_rne(-5, 2) == -2 &&
              lb_int_div_rne(-7, 2) == -4 && lb_int_div_rne(2, 3) == 1 &&
              lb_int_div_rne(-2, 3) == -1 && lb_int_div_rne(98, 49) == 2,
          "div_rne ties and plain cases");
}

static void test_rq_from_real(void) {
    int bad = 0, badq = 0;
    for (int i = 0; i < 20000; i++) {
        double mult = ldexp((double)(rnd() % 1000000 + 1) / 1e6, (int)rnd_in(-30, 10));
        if (i % 2) mult = -mult;
        double off = ((double)(rnd() % 2000001) - 1e6) / 997.0;
        lb_int_rq rq;
        if (lb_int_rq_from_real(mult, off, &rq) != LB_OK) {
            bad++;
            continue;
        }
        double em = fabs(ldexp((double)rq.m, -rq.s) - mult),
               eb = fabs(ldexp((double)rq.b, -rq.s) - off);
        if (em > ldexp(1.0, -rq.s) || eb > ldexp(1.0, -rq.s) || rq.s < 1 || rq.s > 62) bad++;
        /* the requantized value is the nearest integer of v*mult + off (away from ties) */
        int32_t v = (int32_t)rnd_in(-(1 << 20), 1 << 20);
        double exact = (double)v * mult + off;
        /* fixed point error: |v| * 2^-s/2 from m, 2^-s/2 from b */
        double err = ldexp(fabs((double)v) + 1.0, -rq.s - 1) + 1e-9;
        if (fabs(exact - floor(exact) - 0.5) > err) {
            int32_t q = lb_int_requant(v, &rq, INT32_MIN, INT32_MAX);
            if (q != (int32_t)rint(exact)) badq++;
        }
    }
    CHECK(bad == 0, "rq_from_real: %d constants off by more than 2^-s", bad);
    CHECK(badq == 0, "requant: %d values not the nearest integer", badq);
    lb_int_rq rq;
    CHECK(lb_int_rq_from_real(1e12, 0, &rq) == LB_EINVAL, "huge multiplier rejected");
    CHECK(lb_int_requant(1000, &(lb_int_rq){1 << 30, 30, 0}, 0, 255) == 255 &&
              lb_int_requant(-5, &(lb_int_rq){1 << 30, 30, 0}, 0, 255) == 0,
          "requant clamps");
}

/* ---- kernels: fast vs reference ------------------------------------------------------------- */
typedef struct shape {
    int cin, h, w, cout, k, s, p, g, linear;
} shape;

static void fill_rq(lb_int_op *op) {
    for (int c = 0; c < op->cout; c++) {
        op->rq[c].s = (int)rnd_in(8, 40);
        op->rq[c].m = (int32_t)rnd_in(1 << 20, INT32_MAX) * (rnd() % 4 == 0 ? -1 : 1);
        op->rq[c].b = rnd_in(-((int64_t)1 << (op->rq[c].s + 6)), (int64_t)1 << (op->rq[c].s + 6));
        if (rnd() % 8 == 0) { /* v/2 + an integer: exact ties for every odd v */
            op->rq[c].s = (int)rnd_in(2, 31);
            op->rq[c].m = (int32_t)1 << (op->rq[c].s - 1);
            op->rq[c].b = rnd_in(-100, 100) * ((int64_t)1 << op->rq[c].s);
        }
    }
}

/* wide: int16 weight codes as large as the accumulator allows (learned reg levels' tables, up to
 * about 2^12), which the VNNI path hands to AVX2 (wbits > 8). */
static int compare_conv(const shape *sh, lb_int_type xt, lb_int_type yt, lb_int_impl impl,
                        int wide) {
    lb_int_op op;
    memset(&op, 0, sizeof op);
    op.kind = LB_IOP_CONV;
    op.linear = sh->linear;
    op.cin = sh->cin;
    op.ih = sh->linear ? 1 : sh->h;
    op.iw = sh->linear ? 1 : sh->w;
    op.cout = sh->cout;
    op.k = sh->linear ? 1 : sh->k;
    op.stride = sh->linear ? 1 : sh->s;
    op.pad = sh->linear ? 0 : sh->p;
    op.groups = sh->linear ? 1 : sh->g;
    op.oh = (op.ih + 2 * op.pad - op.k) / op.stride + 1;
    op.ow = (op.iw + 2 * op.pad - op.k) / op.stride + 1;
    int K = op.cin / op.groups * op.k * op.k;
    size_t nx = (size_t)op.cin * op.ih * op.iw, ny = (size_t)op.cout * op.oh * op.ow;
    op.w = malloc((size_t)op.cout * K * sizeof *op.w);
    op.rq = malloc((size_t)op.cout * sizeof *op.rq);
    int wmax = xt == LB_IT_S16 ? 7 : 127;
    op.wbits = 8;
    if (wide) {
        double xmax = xt == LB_IT_U8 ? 255 : xt == LB_IT_S8 ? 128 : 32767;
        double lim = floor(2147483647.0 / (xmax * K)) - 1;
        wmax = lim < 4100 ? (int)lim : 4100;
        op.wbits = 16;
    }
    for (size_t i = 0; i < (size_t)op.cout * K; i++) op.w[i] = (int16_t)rnd_in(-wmax - 1, wmax);
    if (rnd() % 2)
        for (size_t i = 0; i < (size_t)op.cout * K; i += 3) op.w[i] = 0; /* zero codes */
    fill_rq(&op);
    op.lo = yt == LB_IT_U8 ? 0 : yt == LB_IT_S8 ? -128 : INT32_MIN;
    op.hi = yt == LB_IT_U8 ? 255 : yt == LB_IT_S8 ? 127 : INT32_MAX;
    if (yt == LB_IT_U8 && rnd() % 2) op.hi = 15;
    if (yt == LB_IT_S32 && rnd() % 2) op.lo = 0;
    lb_int_op_pack(&op);
    size_t xs = nx * lb_int_type_size(xt) + 64, ys = ny * lb_int_type_size(yt);
    void *x = calloc(1, xs);
    void *y0 = calloc(1, ys + 64), *y1 = calloc(1, ys + 64);
    for (size_t i = 0; i < nx; i++) {
        int32_t v = xt == LB_IT_U8   ? (int32_t)rnd_in(0, rnd() % 2 ? 255 : 15)
                    : xt == LB_IT_S8 ? (int32_t)rnd_in(-128, 127)
                                     : (int32_t)rnd_in(-32767, 32767);
        lb_int_store(x, xt, i, v);
    }
    size_t sb = lb_int_conv_scratch(&op);
    unsigned char *scratch = aligned_alloc(64, (sb + 63) / 64 * 64);
    memset(scratch, 0xA5, (sb + 63) / 64 * 64); /* stale scratch must not matter */
    lb_int_kernels_ref.conv(&op, xt, x, yt, y0, scratch);
    if (impl == LB_INT_AVX2 || wide)
        lb_int_conv_avx2(&op, xt, x, yt, y1, scratch);
    else
        lb_int_conv_vnni(&op, xt, x, yt, y1, scratch);
    int same = memcmp(y0, y1, ys) == 0;
    if (!same)
        fprintf(stderr, "  conv %s: cin %d %dx%d cout %d k %d s %d p %d g %d lin %d xt %d yt %d\n",
                lb_int_impl_name(impl), sh->cin, sh->h, sh->w, sh->cout, sh->k, sh->s, sh->p, sh->g,
                sh->linear, xt, yt);
    free(op.w);
    free(op.rq);
    free(op.w4);
    free(op.w2);
    free(op.wsum);
    free(x);
    free(y0);
    free(y1);
    free(scratch);
    return same;
}

static void test_kernels(int quick) {
    static const shape shapes[] = {
        {3, 9, 11, 8, 3, 1, 1, 1, 0},    {5, 12, 12, 12, 3, 2, 1, 1, 0},
        {16, 7, 7, 16, 3, 1, 1, 16, 0},  {8, 10, 10, 20, 1, 1, 0, 1, 0},
        {4, 15, 13, 6, 5, 2, 2, 2, 0},   {32, 14, 14, 64, 3, 2, 1, 1, 0},
        {7, 6, 33, 9, 3, 1, 0, 1, 0},    {3, 5, 140, 5, 3, 1, 1, 1, 0},
        {6, 9, 9, 4, 3, 3, 1, 1, 0},     {1, 28, 28, 32, 3, 1, 1, 1, 0},
        {32, 28, 28, 32, 3, 1, 1, 1, 0}, {2, 4, 4, 3, 3, 1, 2, 1, 0},
        {100, 1, 1, 10, 1, 1, 0, 1, 1},  {3136, 1, 1, 10, 1, 1, 0, 1, 1},
        {64, 1, 1, 17, 1, 1, 0, 1, 1},   {5, 1, 1, 1, 1, 1, 0, 1, 1},
    };
    const lb_int_type xts[] = {LB_IT_U8, LB_IT_S8, LB_IT_S16};
    const lb_int_type yts[] = {LB_IT_U8, LB_IT_S8, LB_IT_S32};
    for (lb_int_impl impl = LB_INT_AVX2; impl <= LB_INT_VNNI; impl++) {
        if (!lb_int_impl_available(impl)) {
            printf("test_int: %s not available on this CPU, its kernels untested\n",
                   lb_int_impl_name(impl));
            continue;
        }
        int bad = 0, n = 0;
        /* quick (sanitizers): three type pairs per shape, the largest shapes once */
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
            for (int a = 0; a < 3; a++)
                for (int b = 0; b < 3; b++) {
                    int big = shapes[i].cin * shapes[i].h * shapes[i].w * shapes[i].cout > 400000;
                    if (quick && (a != b || (big && a != 0))) continue;
                    bad += !compare_conv(&shapes[i], xts[a], yts[b], impl, 0);
                    n++;
                }
        CHECK(bad == 0, "%s conv/linear: %d of %d cases differ from the reference",
              lb_int_impl_name(impl), bad, n);
        if (impl == LB_INT_AVX2) {
            bad = n = 0;
            for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
                for (int a = 0; a < 3; a++) {
                    if (quick && a != 0) continue;
                    bad += !compare_conv(&shapes[i], xts[a], yts[a], impl, 1);
                    n++;
                }
            CHECK(bad == 0, "avx2 conv/linear, int16 weight codes: %d of %d cases differ", bad, n);
        }
        /* requantization rows: every length around the vector widths */
        bad = 0;
        for (int len = 1; len < 70; len++)
            for (int b = 0; b < 3; b++) {
                lb_int_op op = {.cout = 1};
                lb_int_rq rq;
                op.rq = &rq;
                fill_rq(&op);
                int32_t x[70], lo = b == 0 ? 0 : b == 1 ? -128 : INT32_MIN;
                int32_t hi = b == 0 ? 255 : b == 1 ? 127 : INT32_MAX;
                for (int i = 0; i < len; i++) x[i] = (int32_t)rnd_in(INT32_MIN, INT32_MAX);
                if (len % 3 == 0) {
                    rq = (lb_int_rq){1 << 30, 31, 0}; /* x/2: many exact ties */
                    for (int i = 0; i < len; i++) x[i] = (int32_t)rnd_in(-1000, 1000);
                }
                int32_t y0[72] = {0}, y1[72] = {0};
                lb_int_kernels_ref.requant_row(x, (size_t)len, &rq, lo, hi, yts[b], y0);
                if (impl == LB_INT_AVX2)
                    lb_int_requant_row_avx2(x, (size_t)len, &rq, lo, hi, yts[b], y1);
                else
                    lb_int_requant_row_vnni(x, (size_t)len, &rq, lo, hi, yts[b], y1);
                bad += memcmp(y0, y1, sizeof y0) != 0;
            }
        CHECK(bad == 0, "%s requant rows: %d cases differ", lb_int_impl_name(impl), bad);
    }
}

int main(void) {
    const char *q = getenv("LOWBIT_QUICK");
    int quick = q && *q && strcmp(q, "0") != 0;
    test_rounding();
    test_rq_from_real();
    test_kernels(quick);
    TEST_MAIN_END("test_int_kernels");
}
