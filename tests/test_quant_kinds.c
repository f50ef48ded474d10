/* Tests of lb_quant's kinds and builds: LSQ's init and its step floor, FIXED steps, NONE,
 * thread-count independence, and the AVX2 / AVX-512 builds of the segment kernels against the
 * baseline build, bit for bit. The grid, rounding and STE against the scalar reference are in
 * test_quant.c. */
#include "../src/quant/quant_seg.h"
#include "quant_ref.h"

#include <float.h>

/* LSQ init: s = 2*mean|v|/sqrt(Qp) per channel on the first training forward only; eval never
 * initializes; all-zero input clamps to 1e-8; reset re-arms it. */
static void test_lsq_init(int quick) {
    lb_rng r;
    lb_rng_seed(&r, 3);
    /* per-tensor unsigned activations and per-channel signed weights; the large ones take the
     * chunked (several partials per channel) path */
    struct {
        int pc, ch;
        size_t outer, inner;
    } cases[] = {{0, 5, 6, 37}, {1, 5, 1, 37}, {0, 1, 64, 4096}, {1, 20, 5, 4096}};
    for (size_t ci = 0; ci < 4; ci++) {
        if (quick && ci >= 2) continue;
        int pc = cases[ci].pc, ch = cases[ci].ch, sg = pc;
        size_t outer = cases[ci].outer, inner = cases[ci].inner, n = outer * (size_t)ch * inner;
        tq t;
        tq_bind(&t, cfg_of(LB_Q_LSQ, 4, sg, pc), ch, inner, pc ? inner : (size_t)ch * inner);
        float *x = fvec(n), *y = fvec(n);
        fill_normal(&r, x, n, 0.3f + pc);
        lb_quant_forward(&t.q, outer, x, y, 0);
        CHECK(t.st[0] == 0 && t.p[0] == 1.0f, "eval does not initialize");
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK(t.st[0] == 1.0f, "flag set");
        int nch = t.q.ch;
        size_t inr = t.q.inner;
        for (int c = 0; c < nch; c++) {
            double sum = 0;
            for (size_t o = 0; o < outer; o++)
                for (size_t i = 0; i < inr; i++) sum += fabs(x[idx(o, c, nch, inr, i)]);
            double want = 2 * sum / (double)(outer * inr) / sqrt((double)t.q.qp);
            CHECK_NEAR(t.p[c], want, 0, 1e-6, pc ? "per-channel init" : "per-tensor init");
        }
        float s0 = t.p[0];
        for (size_t k = 0; k < n; k++) x[k] *= 3;
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK(t.p[0] == s0, "no second init");
        lb_quant_reset(&t.q);
        CHECK(t.p[0] == 1.0f && t.st[0] == 0, "reset");
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK_NEAR(t.p[0], 3 * s0, 0, 1e-6, "re-initialized after reset");
        lb_quant_reset(&t.q);
        memset(x, 0, n * sizeof *x);
        lb_quant_forward(&t.q, outer, x, y, 1);
        CHECK(t.p[0] == 1e-8f, "all-zero init clamps to 1e-8: %g", t.p[0]);
        free(x);
        free(y);
        tq_free(&t);
    }
}

/* LSQ's projection: nothing before the init; afterwards every step stays >= LB_LSQ_FLOOR times
 * the step it was initialized with (a negative, zero or NaN step lands exactly on the floor), a
 * step above the floor is untouched (bit for bit), and the count of channels at the floor is
 * returned. */
static void test_lsq_floor(void) {
    tq t;
    size_t inner = 50;
    tq_bind(&t, cfg_of(LB_Q_LSQ, 4, 1, 1), 4, inner, inner);
    float x[200], y[200];
    for (int k = 0; k < 200; k++) x[k] = (float)((k * 37) % 101 - 50) * (0.01f + 0.01f * (k / 50));
    t.p[0] = -3.0f;
    CHECK(lb_quant_project(&t.q) == 0 && t.p[0] == -3.0f, "no projection before the init");
    lb_quant_forward(&t.q, 1, x, y, 1);
    float s0[4];
    for (int c = 0; c < 4; c++) {
        s0[c] = t.p[c];
        CHECK(t.st[1 + c] == s0[c] && s0[c] > 0, "initial step %d recorded", c);
    }
    CHECK(lb_quant_project(&t.q) == 0, "fresh steps are inside");
    t.p[0] = -3.88f;       /* the issue-10 collapse: a negative step */
    t.p[1] = 0.0f;         /* zero */
    t.p[2] = NAN;          /* a broken update */
    t.p[3] = s0[3] * 0.5f; /* lower, but above the floor */
    CHECK(lb_quant_project(&t.q) == 3, "three channels at the floor");
    for (int c = 0; c < 3; c++)
        CHECK(t.p[c] == LB_LSQ_FLOOR * s0[c], "channel %d on its floor: %g", c, t.p[c]);
    CHECK(t.p[3] == s0[3] * 0.5f, "a valid step is untouched");
    CHECK(lb_quant_project(&t.q) == 3, "a step sitting on its floor still counts");
    /* a step at its floor quantizes with a positive grid: codes keep the sign of the input */
    lb_quant_forward(&t.q, 1, x, y, 0);
    int sign_ok = 1;
    for (size_t k = 0; k < inner; k++)
        sign_ok &= !(x[k] > 0 && y[k] < 0) && !(x[k] < 0 && y[k] > 0);
    CHECK(sign_ok, "grid keeps the sign at the floor");
    /* the fixed and none kinds have nothing to project */
    tq f;
    tq_bind(&f, cfg_of(LB_Q_FIXED, 4, 1, 0), 1, inner, inner);
    CHECK(lb_quant_project(&f.q) == 0, "fixed: no projection");
    tq_free(&f);
    tq_free(&t);
}

/* FIXED: step = max|v|/Qp per channel on every training forward, kept by eval; the largest
 * element stays inside the range (keeps its gradient); no parameters. */
static void test_fixed(void) {
    lb_rng r;
    lb_rng_seed(&r, 5);
    for (int pc = 0; pc <= 1; pc++) {
        for (int sg = 0; sg <= 1; sg++) {
            for (int bits = 2; bits <= 8; bits += 3) {
                int ch = 4;
                size_t outer = 3, inner = 50, n = outer * (size_t)ch * inner;
                tq t;
                tq_bind(&t, cfg_of(LB_Q_FIXED, bits, sg, pc), ch, inner, 1);
                CHECK(t.q.nparam == 0 && t.q.nstate == t.q.ch && t.st[0] == 1.0f,
                      "fixed counts and default");
                float *x = fvec(n), *y = fvec(n), *dy = fvec(n), *dx = fvec(n);
                fill_normal(&r, x, n, 1.0f + (float)bits);
                fill_normal(&r, dy, n, 1.0f);
                lb_quant_forward(&t.q, outer, x, y, 1);
                int nch = t.q.ch, ok = 1;
                size_t inr = t.q.inner;
                lb_quant_backward(&t.q, outer, x, dy, dx, 0);
                for (int c = 0; c < nch; c++) {
                    float m = 0;
                    size_t km = 0;
                    for (size_t o = 0; o < outer; o++)
                        for (size_t i = 0; i < inr; i++) {
                            size_t k = idx(o, c, nch, inr, i);
                            if (fabsf(x[k]) > m) m = fabsf(x[k]), km = k;
                        }
                    float s = lb_quant_step(&t.q, c);
                    ok &= fabs(s - (double)m / t.q.qp) <= 2.4e-7 * s && m / s <= t.q.qp;
                    /* a positive max keeps its gradient (a negative one is clipped unsigned) */
                    if (x[km] > 0) ok &= dx[km] == dy[km];
                }
                CHECK(ok, "pc %d sg %d b %d: step = max/Qp, max inside", pc, sg, bits);
                char what[64];
                snprintf(what, sizeof what, "fixed pc %d sg %d b %d", pc, sg, bits);
                check_against_ref(&t, outer, x, dy, what);
                float s0 = t.st[0];
                for (size_t k = 0; k < n; k++) x[k] *= 2;
                lb_quant_forward(&t.q, outer, x, y, 0);
                CHECK(t.st[0] == s0, "eval keeps the step");
                lb_quant_forward(&t.q, outer, x, y, 1);
                CHECK(t.st[0] == 2 * s0, "training recomputes: %g vs %g", t.st[0], 2 * s0);
                memset(x, 0, n * sizeof *x);
                lb_quant_forward(&t.q, outer, x, y, 1);
                CHECK(t.st[0] == 1e-8f, "all-zero step 1e-8");
                free(x);
                free(y);
                free(dy);
                free(dx);
                tq_free(&t);
            }
        }
    }
}

static void test_none(void) {
    tq t;
    CHECK(tq_bind(&t, cfg_of(LB_Q_NONE, 0, 0, 1), 3, 5, 0) == LB_OK, "bind none");
    float x[30], y[30], dy[30], dx[30];
    for (int i = 0; i < 30; i++) x[i] = 0.37f * i - 3, dy[i] = 1.0f + i, dx[i] = 2;
    lb_quant_forward(&t.q, 2, x, y, 1);
    CHECK(memcmp(x, y, sizeof x) == 0, "identity");
    lb_quant_backward(&t.q, 2, x, dy, dx, 1);
    int ok = 1;
    for (int i = 0; i < 30; i++) ok &= dx[i] == 3.0f + i;
    CHECK(ok, "none dx_acc");
    lb_quant_backward(&t.q, 2, x, dy, dx, 0);
    CHECK(memcmp(dx, dy, sizeof dx) == 0, "none dx");
    CHECK(lb_quant_step(&t.q, 0) == 0.0f, "none step");
    tq_free(&t);
}

/* Bitwise identical results for 1, 2 and 3 threads: chunks depend on the shape only. */
static void test_threads(int quick) {
    lb_rng r;
    lb_rng_seed(&r, 9);
    struct {
        int ch, pc;
        size_t outer, inner;
    } cases[] = {{1, 0, 64, 4096}, {100, 1, 8, 4096}, {300, 1, 1, 512}};
    for (size_t ci = 0; ci < 3; ci++) {
        size_t outer = quick ? cases[ci].outer / 2 + 1 : cases[ci].outer;
        size_t n = outer * (size_t)cases[ci].ch * cases[ci].inner;
        float *x = fvec(n), *dy = fvec(n), *y = fvec(n), *dx = fvec(n);
        fill_normal(&r, x, n, 1);
        fill_normal(&r, dy, n, 1);
        float base[300][3];
        int same = 1;
        for (int th = 1; th <= 3; th++) {
            lb_threads_set(th);
            tq t;
            tq_bind(&t, cfg_of(LB_Q_LSQ, 4, 1, cases[ci].pc), cases[ci].ch, cases[ci].inner,
                    cases[ci].inner);
            tq f;
            tq_bind(&f, cfg_of(LB_Q_FIXED, 4, 1, cases[ci].pc), cases[ci].ch, cases[ci].inner, 1);
            lb_quant_forward(&t.q, outer, x, y, 1);
            lb_quant_backward(&t.q, outer, x, dy, dx, 0);
            lb_quant_forward(&f.q, outer, x, y, 1);
            for (int c = 0; c < t.q.ch; c++) {
                float v[3] = {t.p[c], t.dp[c], f.st[c]};
                if (th == 1) memcpy(base[c], v, sizeof v);
                same &= memcmp(base[c], v, sizeof v) == 0;
            }
            tq_free(&t);
            tq_free(&f);
        }
        lb_threads_set(1);
        CHECK(same, "case %zu: init, dstep and fixed step identical for 1..3 threads", ci);
        free(x);
        free(dy);
        free(y);
        free(dx);
    }
}

/* The ISA builds of the segment kernels (only those this CPU runs) give the baseline's bits for
 * every element, on a mix of in-range, bound, tie, signed-zero and far-out values and lengths
 * that leave every vector tail; the double step sum may differ in lane order only. */
static void test_isa_tables(void) {
    const lb_qseg_kernels *tabs[2] = {NULL, NULL};
    const char *names[2] = {"avx2", "avx512"};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) tabs[0] = &lb_qseg_avx2;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
        tabs[1] = &lb_qseg_avx512;
    const lb_qseg_kernels *b = &lb_qseg_base;
    enum { N = 1000 };
    float *x = malloc(N * sizeof *x), *dy = malloc(N * sizeof *dy);
    float *y0 = malloc(N * sizeof *y0), *y1 = malloc(N * sizeof *y1);
    uint64_t st = 7;
    for (int i = 0; i < N; i++) {
        st = st * 6364136223846793005ull + 1442695040888963407ull;
        const float u = (float)((st >> 40) % 100000) / 100000.0f;
        const int kind = (int)((st >> 20) % 8);
        x[i] = kind == 0   ? 0.25f * (float)((int)((st >> 30) % 40) - 20) /* ties at s = 0.5 */
               : kind == 1 ? -0.0f
               : kind == 2 ? 1e6f * (u - 0.5f)
                           : 8.0f * u - 4.0f;
        dy[i] = (float)((st >> 10) % 2001) / 1000.0f - 1.0f;
    }
    const int lens[] = {1, 7, 15, 16, 17, 63, 64, 65, 999, 1000};
    for (int t = 0; t < 2; t++) {
        if (!tabs[t]) continue;
        const lb_qseg_kernels *k = tabs[t];
        int same_f = 1, same_b = 1, same_ds = 1, same_stat = 1, sum_ok = 1;
        for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
            const size_t n = (size_t)lens[li];
            for (int sg = 0; sg < 2; sg++) {
                const float s = sg ? 0.5f : 0.37f, lo = sg ? -8.0f : 0.0f, hi = sg ? 7.0f : 15.0f;
                b->forward(x, y0, n, s, lo, hi);
                k->forward(x, y1, n, s, lo, hi);
                same_f &= memcmp(y0, y1, n * sizeof *y0) == 0;
                for (int acc = 0; acc < 2; acc++) {
                    for (size_t i = 0; i < n; i++) y0[i] = y1[i] = dy[(i + 3) % N];
                    b->backward(x, dy, y0, n, s, lo, hi, acc);
                    k->backward(x, dy, y1, n, s, lo, hi, acc);
                    same_b &= memcmp(y0, y1, n * sizeof *y0) == 0;
                    for (size_t i = 0; i < n; i++) y0[i] = y1[i] = dy[(i + 3) % N];
                    const double s0 = b->backward_ds(x, dy, y0, n, s, lo, hi, acc);
                    const double s1 = k->backward_ds(x, dy, y1, n, s, lo, hi, acc);
                    same_ds &= memcmp(y0, y1, n * sizeof *y0) == 0;
                    double mag = 0;
                    for (size_t i = 0; i < n; i++) mag += fabs((double)dy[i]) * 16.0;
                    sum_ok &= fabs(s0 - s1) <= 1e-12 * (mag + 1.0);
                }
            }
            same_stat &= b->absmax(x, n) == k->absmax(x, n);
            same_stat &= fabs(b->abssum(x, n) - k->abssum(x, n)) <= 1e-9 * b->abssum(x, n);
        }
        CHECK(same_f, "%s forward differs from the baseline", names[t]);
        CHECK(same_b, "%s backward differs from the baseline", names[t]);
        CHECK(same_ds, "%s backward_ds dx differs from the baseline", names[t]);
        CHECK(sum_ok, "%s step sum differs from the baseline beyond rounding", names[t]);
        CHECK(same_stat, "%s absmax/abssum differ from the baseline", names[t]);
    }
    /* the dispatcher picks one of the three */
    const lb_qseg_kernels *g = lb_qseg_get();
    CHECK(g == &lb_qseg_base || g == &lb_qseg_avx2 || g == &lb_qseg_avx512, "lb_qseg_get");
    free(x), free(dy), free(y0), free(y1);
}

int main(void) {
    const char *qe = getenv("LOWBIT_QUICK");
    int quick = qe && qe[0] && qe[0] != '0';
    test_lsq_init(quick);
    test_lsq_floor();
    test_fixed();
    test_none();
    test_threads(quick);
    test_isa_tables();
    TEST_MAIN_END("test_quant_kinds");
}
