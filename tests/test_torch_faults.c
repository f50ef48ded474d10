/* The fault module against PyTorch 1.13 (tests/torch/ref_faults.py, written from methods.md):
 * faulty and nearest reachable codes (exact), the chosen pattern of every weight (exact), the
 * fault-aware / variability-aware / combined MSE regularizer and QFALT's: loss 1e-6 relative
 * (both sum in double), dw 1e-6 relative plus 1e-7 of its largest element (C multiplies a float
 * coefficient by d in float, PyTorch in double then rounds), dR 1e-5 relative plus 1e-6 of its
 * largest (PyTorch rounds each per-weight level product to float32 before summing). Not the
 * finite-difference checks (test_faults.c). */
#include "lb_faults.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <string.h>

enum { N = 240 };

static float *load(const char *c, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "faults_%s_%s", c, what);
    return lbt_ref_load(name, n);
}

static float absmax(const float *v, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    return m;
}

/* form 0: MSE, 1: QFALT; masks/var 0: pass NULL (the reference holds zeros / ones there) */
static void run_case(const char *c, int bits, double lam, int form, double sigma, int use_masks,
                     int use_var, lb_fenc enc) {
    int nb = bits + 1;
    float *w = load(c, "w", N), *R = load(c, "R", nb), *s0 = load(c, "sa0", N);
    float *s1 = load(c, "sa1", N), *var = load(c, "var", (size_t)N * bits), *p = load(c, "p", N);
    float *loss = load(c, "loss", 1), *dw = load(c, "dw", N), *dR = load(c, "dR", nb);
    CHECK(w && R && s0 && s1 && var && p && loss && dw && dR, "%s: references present", c);
    if (w && R && s0 && s1 && var && p && loss && dw && dR) {
        uint8_t a0[N], a1[N];
        for (int i = 0; i < N; i++) a0[i] = (uint8_t)s0[i], a1[i] = (uint8_t)s1[i];
        lb_fslice mk = {use_masks ? a0 : NULL, use_masks ? a1 : NULL, use_var ? var : NULL, enc};
        float gw[N] = {0}, gR[9];
        double dRd[9] = {0};
        double L = form == 0 ? lb_freg_mse(w, N, N, R, bits, mk, lam, gw, dRd)
                             : lb_freg_qfalt(w, N, R, bits, mk, lam, sigma, gw, dRd);
        for (int j = 0; j < nb; j++) gR[j] = (float)dRd[j];
        CHECK_NEAR(L, loss[0], 0, 1e-6, c);
        char what[64];
        snprintf(what, sizeof what, "%s dw", c);
        lbt_close(gw, dw, N, 1e-7 * absmax(dw, N), 1e-6, what);
        snprintf(what, sizeof what, "%s dR", c);
        lbt_close(gR, dR, (size_t)nb, 1e-6 * absmax(dR, (size_t)nb), 1e-5, what);
        if (form == 0) {
            int bad = 0;
            for (int i = 0; i < N; i++) {
                float a[256];
                lb_fault_levels(R, bits, enc, use_var ? var + (size_t)i * bits : NULL, a);
                bad += lb_fault_nearest_level(w[i], a, bits, a0[i], a1[i]) != (int)p[i];
            }
            CHECK(bad == 0, "%s: nearest reachable pattern of every weight (%d differ)", c, bad);
        }
    }
    free(w), free(R), free(s0), free(s1), free(var), free(p), free(loss), free(dw), free(dR);
}

static void test_codes(void) {
    enum { M = 64 };
    float *t = lbt_ref_load("faults_codes", 12 * M);
    CHECK(t != NULL, "codes reference present");
    if (!t) return;
    int bad = 0;
    for (int i = 0; i < M; i++) {
        unsigned s0 = (unsigned)t[M + i], s1 = (unsigned)t[2 * M + i];
        for (int e = 0; e < LB_FENC_COUNT; e++) {
            const float *r = t + (3 + 3 * e) * M;
            int code = (int)r[i];
            bad += lb_fault_value((unsigned)t[i], 4, (lb_fenc)e) != code;
            bad += lb_fault_code(code, 4, (lb_fenc)e, s0, s1) != (int)r[M + i];
            bad += lb_fault_nearest_code(code, 4, (lb_fenc)e, s0, s1) != (int)r[2 * M + i];
        }
    }
    CHECK(bad == 0,
          "faulty and nearest reachable codes, index, two's complement and sign-magnitude (%d)",
          bad);
    free(t);
}

int main(void) {
    test_codes();
    run_case("f4", 4, 100.0, 0, 0, 1, 0, LB_FENC_INDEX);
    run_case("v3", 3, 50.0, 0, 0, 0, 1, LB_FENC_INDEX);
    run_case("fv4", 4, 200.0, 0, 0, 1, 1, LB_FENC_INDEX);
    run_case("tw4", 4, 10.0, 0, 0, 1, 0, LB_FENC_INDEX);
    run_case("q3", 3, 0.5, 1, 0.03, 1, 1, LB_FENC_INDEX);
    run_case("sm4", 4, 10.0, 0, 0, 1, 1, LB_FENC_SIGNMAG);
    run_case("smq4", 4, 0.5, 1, 0.01, 1, 1, LB_FENC_SIGNMAG);
    TEST_MAIN_END("test_torch_faults");
}
