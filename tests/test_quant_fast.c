/* The fast paths of the slow quantizers (sliced, DoReFa, PACT, the power-of-two kinds) against
 * their scalar references: element values (y, dx) bit for bit on every ISA build and thread count,
 * the double sums behind parameter gradients within rounding (lane order). Not the formulas
 * themselves (test_sliced.c, test_dorefa_pact.c, test_po2x.c and their PyTorch twins). */
#include "../src/quant/quant_seg.h"
#include "../src/quant/sliced_atanh.h"
#include "lb_core.h"
#include "lb_quant.h"
#include "lb_test.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static int quick(void) {
    const char *e = getenv("LOWBIT_QUICK");
    return e && e[0] == '1';
}

/* Every table this CPU runs (the baseline always). */
static int tables(const lb_qseg_kernels **t) {
    int n = 0;
    t[n++] = &lb_qseg_base;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) t[n++] = &lb_qseg_avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        t[n++] = &lb_qseg_avx512;
    return n;
}

static int same_bits(const float *a, const float *b, size_t n) {
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* lb_sl_atanhf against long double atanhl over its whole domain |y| <= 0.95 (every float in it
 * when not quick), relative to the float result's scale. */
static void test_atanh(void) {
    double worst = 0;
    long n = quick() ? 20000 : 4000000;
    for (long i = 0; i <= n; i++) {
        float y = (float)(-0.95 + 1.9 * (double)i / (double)n);
        long double e = atanhl((long double)y);
        double a = lb_sl_atanhf(y), rel = e != 0 ? fabs((double)((a - e) / e)) : fabs(a);
        worst = rel > worst ? rel : worst;
    }
    CHECK(worst < 5e-7, "lb_sl_atanhf within 5e-7 relative of atanhl (worst %.3g)", worst);
    CHECK(lb_sl_atanhf(0.0f) == 0.0f && lb_sl_atanhf(-0.25f) == -lb_sl_atanhf(0.25f),
          "odd, 0 at 0");
}

/* A sliced quantizer run through its fast forward/backward (lb_quant_*) and its references, on a
 * tensor [outer][ch][inner] big enough for several chunks a slice (threads, partial sums). */
static void sliced_case(int weight, int sg, int po2, int ch, size_t outer, size_t inner,
                        int dx_acc) {
    size_t n = outer * (size_t)ch * inner;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy), *y0 = malloc(n * sizeof *y0);
    float *y1 = malloc(n * sizeof *y1), *d0 = malloc(n * sizeof *d0), *d1 = malloc(n * sizeof *d1);
    float p[64], dp0[64], dp1[64], st[1];
    lb_qcfg cfg = {.kind = LB_Q_SLICED,
                   .bits = 4,
                   .is_signed = sg,
                   .per_channel = ch > 1,
                   .po2 = po2,
                   .numel = weight ? (long)n : 0};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, ch, inner, weight ? n : n / outer, p, dp1, st) == LB_OK,
          "bind: %s", lb_error_msg());
    lb_rng r;
    lb_rng_seed(&r, 7 + (unsigned)(weight * 4 + sg * 2 + po2));
    for (size_t i = 0; i < n; i++) {
        x[i] = lb_rng_normal(&r) * (sg ? 1.0f : 0.0f) + (sg ? 0.0f : fabsf(lb_rng_normal(&r)));
        dy[i] = (i % 7 == 3) ? ((i & 8) ? -0.0f : 0.0f) : lb_rng_normal(&r); /* sign(g) = 0 */
        d0[i] = d1[i] = dx_acc ? 0.5f : 0.0f;
    }
    for (int c = 0; c < ch; c++) /* widths 2..8 bits, x beyond xmax on both sides */
        p[ch + c] = 1.5f + 0.1f * c, p[c] = p[ch + c] / (float)(1 + (c * 37) % (sg ? 127 : 255));
    st[0] = 1.0f;
    lb_quant_project(&q);
    lb_quant_forward(&q, outer, x, y1, 1);
    lb_quant_sliced_forward_ref(&q, outer, x, y0);
    lb_quant_backward(&q, outer, x, dy, d1, dx_acc);
    memcpy(dp1, q.dparam, 2 * (size_t)ch * sizeof *dp1);
    lb_quant_sliced_backward_ref(&q, outer, x, dy, d0, dx_acc);
    memcpy(dp0, q.dparam, 2 * (size_t)ch * sizeof *dp0);
    char what[96];
    snprintf(what, sizeof what, "sliced %s sg %d po2 %d ch %d acc %d", weight ? "w" : "a", sg, po2,
             ch, dx_acc);
    CHECK(same_bits(y0, y1, n), "%s: forward bit for bit", what);
    CHECK(same_bits(d0, d1, n), "%s: dx bit for bit", what);
    lbt_close(dp1, dp0, 2 * (size_t)ch, 1e-9, 1e-9, what);
    free(x), free(dy), free(y0), free(y1), free(d0), free(d1);
}

static void test_sliced(void) {
    size_t big = quick() ? 20000 : 70000; /* 70000: 5 chunks of one slice */
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        sliced_case(0, 0, 0, 1, 1, big, 0); /* activations after ReLU: the inverse tanh */
        sliced_case(0, 1, 0, 1, 2, big / 2, 1);
        sliced_case(0, 0, 1, 1, 3, 999, 0);
        sliced_case(1, 1, 0, 16, 1, 147, 0); /* per-channel weights: EWGS */
        sliced_case(1, 1, 1, 16, 1, 147, 1);
        sliced_case(1, 1, 0, 1, 1, big, 0);
    }
    /* every ISA table on every tail length, against the baseline build */
    const lb_qseg_kernels *tab[3];
    int nt = tables(tab);
    enum { N = 301 };
    float x[N], dy[N], y0[N], y1[N], dx0[N], dx1[N];
    lb_rng r;
    lb_rng_seed(&r, 3);
    for (int i = 0; i < N; i++) x[i] = 2 * lb_rng_normal(&r), dy[i] = lb_rng_normal(&r);
    dy[5] = 0.0f, dy[6] = -0.0f;
    int bad = 0;
    double kt = 0.5 / atanh(0.95);
    for (int k = 1; k < nt; k++)
        for (int len = 1; len <= N; len += len < 20 ? 1 : 37)
            for (int v = 0; v < 4; v++) {
                int ewgs = v & 1, sg = v >> 1;
                float d = 0.0625f + 0.01f * v, xm = 3.0f, lo = sg ? -xm : 0.0f;
                double o0[2] = {0, 0}, o1[2] = {0, 0};
                lb_qseg_base.sl_forward(x, y0, (size_t)len, d, lo, xm);
                tab[k]->sl_forward(x, y1, (size_t)len, d, lo, xm);
                lb_qseg_base.sl_backward(x, dy, dx0, (size_t)len, d, lo, xm, sg, ewgs, kt, 0, o0);
                tab[k]->sl_backward(x, dy, dx1, (size_t)len, d, lo, xm, sg, ewgs, kt, 0, o1);
                bad += !same_bits(y0, y1, (size_t)len) || !same_bits(dx0, dx1, (size_t)len);
                for (int j = 0; j < 2; j++) bad += fabs(o0[j] - o1[j]) > 1e-12 * (1 + fabs(o0[j]));
            }
    CHECK(bad == 0, "sliced kernels: %d of the ISA builds' runs differ from the baseline", bad);
}

/* DoReFa: tanhf once an element in threads against the reference's three passes, per tensor and
 * per channel, with a tied maximum (two equal largest weights). */
static void dorefa_case(int ch, size_t inner, int bits) {
    size_t n = (size_t)ch * inner;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy), *y0 = malloc(n * sizeof *y0);
    float *y1 = malloc(n * sizeof *y1), *d0 = malloc(n * sizeof *d0), *d1 = malloc(n * sizeof *d1);
    lb_qcfg cfg = {.kind = LB_Q_DOREFA, .bits = bits, .is_signed = 1, .per_channel = ch > 1};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, ch, inner, n, NULL, NULL, NULL) == LB_OK, "bind: %s",
          lb_error_msg());
    lb_rng r;
    lb_rng_seed(&r, 11 + (unsigned)ch);
    for (size_t i = 0; i < n; i++) x[i] = 0.2f * lb_rng_normal(&r), dy[i] = lb_rng_normal(&r);
    x[3] = 2.0f, x[n - 2] = 2.0f; /* a tie at the maximum (channel 0 and the last) */
    lb_quant_forward(&q, 1, x, y1, 1);
    lb_quant_dorefa_forward_ref(&q, 1, x, y0);
    lb_quant_backward(&q, 1, x, dy, d1, 0);
    lb_quant_dorefa_backward_ref(&q, 1, x, dy, d0, 0);
    CHECK(same_bits(y0, y1, n), "dorefa ch %d: forward bit for bit", ch);
    CHECK(same_bits(d0, d1, n), "dorefa ch %d: dx bit for bit", ch);
    for (size_t i = 0; i < n; i++) d0[i] = d1[i] = 1.0f;
    lb_quant_backward(&q, 1, x, dy, d1, 1); /* accumulating: the reference's loops */
    lb_quant_dorefa_backward_ref(&q, 1, x, dy, d0, 1);
    CHECK(same_bits(d0, d1, n), "dorefa ch %d: dx accumulated bit for bit", ch);
    free(x), free(dy), free(y0), free(y1), free(d0), free(d1);
}

/* PACT: the fused backward (mask and alpha sum in one SIMD pass) against the two passes. */
static void pact_case(size_t outer, size_t inner, int dx_acc) {
    size_t n = outer * inner;
    float *x = malloc(n * sizeof *x), *dy = malloc(n * sizeof *dy);
    float *d0 = malloc(n * sizeof *d0), *d1 = malloc(n * sizeof *d1), p[1], dp[1], st[2];
    lb_qcfg cfg = {.kind = LB_Q_PACT, .bits = 3};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, 1, inner, n, p, dp, st) == LB_OK, "bind: %s", lb_error_msg());
    lb_rng r;
    lb_rng_seed(&r, 5);
    for (size_t i = 0; i < n; i++) {
        x[i] = 3 * lb_rng_normal(&r), dy[i] = lb_rng_normal(&r);
        d0[i] = d1[i] = dx_acc ? 0.25f : 0.0f;
    }
    p[0] = 2.8f, st[0] = 1.0f, st[1] = 2.8f;
    x[7] = p[0]; /* on the clip: x/s = 7 = hi, inside */
    lb_quant_backward(&q, outer, x, dy, d1, dx_acc);
    float g1 = dp[0];
    lb_quant_pact_backward_ref(&q, outer, x, dy, d0, dx_acc);
    CHECK(same_bits(d0, d1, n), "pact %zu x %zu acc %d: dx bit for bit", outer, inner, dx_acc);
    CHECK_NEAR(g1, dp[0], 1e-9, 1e-9, "pact alpha gradient");
    free(x), free(dy), free(d0), free(d1);
}

/* The uniform kernels multiply by 1/s when s is a power of two: the same bits as the division,
 * on every ISA build, with subnormal and huge quotients, signed and unsigned bounds. */
static void test_pow2_kernels(void) {
    const lb_qseg_kernels *tab[3];
    int nt = tables(tab);
    enum { N = 203 };
    float x[N], dy[N], y0[N], y1[N], dx0[N], dx1[N];
    lb_rng r;
    lb_rng_seed(&r, 9);
    for (int i = 0; i < N; i++) x[i] = 4 * lb_rng_normal(&r), dy[i] = lb_rng_normal(&r);
    x[0] = 1e-40f, x[1] = -3e-39f, x[2] = 3e38f, x[3] = -0.0f;
    const float steps[] = {0.125f, 1.0f, 0x1p-60f, 0x1p60f, 0.1f, 3.0f};
    int bad = 0;
    for (int k = 0; k < nt; k++)
        for (size_t si = 0; si < sizeof steps / sizeof steps[0]; si++)
            for (int sg = 0; sg < 2; sg++) {
                float s = steps[si], lo = sg ? -8.0f : 0.0f, hi = sg ? 7.0f : 15.0f;
                for (int i = 0; i < N; i++) { /* the division, element by element */
                    float t = x[i] / s, c = t < lo ? lo : t;
                    c = c > hi ? hi : c;
                    y0[i] = rintf(c) * s;
                    dx0[i] = dy[i] * (float)((t >= lo) & (t <= hi));
                }
                tab[k]->forward(x, y1, N, s, lo, hi);
                bad += !same_bits(y0, y1, N);
                tab[k]->backward(x, dy, dx1, N, s, lo, hi, 0);
                bad += !same_bits(dx0, dx1, N);
                tab[k]->backward_ds(x, dy, dx1, N, s, lo, hi, 0);
                bad += !same_bits(dx0, dx1, N);
                tab[k]->backward_above(x, dy, dx1, N, s, lo, hi, 0);
                bad += !same_bits(dx0, dx1, N);
            }
    CHECK(bad == 0, "uniform kernels at power-of-two steps: %d runs differ from the division", bad);
}

/* The fused error kernel of the po2 line search against po2_err one candidate at a time: the
 * same bits (the search compares these sums, so a last-bit change could move an exponent). */
static void test_po2_errs(void) {
    const lb_qseg_kernels *tab[3];
    int nt = tables(tab);
    enum { N = 517 };
    float x[N], mom[N];
    lb_rng r;
    lb_rng_seed(&r, 21);
    for (int i = 0; i < N; i++) x[i] = 0.7f * lb_rng_normal(&r), mom[i] = 2 * lb_rng_uniform(&r);
    const float s6[6] = {0x1p-8f, 0x1p-7f, 0x1p-6f, 0x1p-4f, 0x1p-3f, 0x1p-2f};
    int bad = 0;
    for (int k = 0; k < nt; k++)
        for (int len = 1; len <= N; len += len < 24 ? 1 : 41)
            for (int v = 0; v < 8; v++) {
                int nc = v & 1 ? 6 : 2, sg = (v >> 1) & 1, hm = v >> 2;
                float lo = sg ? -7.0f : -0.5f, hi = sg ? 7.0f : 15.0f, thr = 1.2f;
                double one[6], all[6] = {0, 0, 0, 0, 0, 0};
                for (int j = 0; j < nc; j++) {
                    double o[3] = {0, 0, 0};
                    tab[k]->po2_err(x, hm ? mom : NULL, (size_t)len, s6[j], lo, hi, thr, o);
                    one[j] = o[0];
                }
                tab[k]->po2_errs(x, hm ? mom : NULL, (size_t)len, s6, nc, lo, hi, thr, all);
                for (int j = 0; j < nc; j++) bad += memcmp(&one[j], &all[j], sizeof one[j]) != 0;
            }
    CHECK(bad == 0, "fused po2 errors: %d sums differ from po2_err's", bad);
}

int main(void) {
    test_atanh();
    test_sliced();
    test_pow2_kernels();
    test_po2_errs();
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        dorefa_case(1, quick() ? 3000 : 20000, 4);
        dorefa_case(16, 144, 2);
        pact_case(4, quick() ? 5000 : 20000, 0);
        pact_case(3, 999, 1);
    }
    TEST_MAIN_END("test_quant_fast");
}
