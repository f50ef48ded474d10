/* msqe-po2 and grad-po2 against their PyTorch 1.13 twins (tests/torch/ref_po2x.py, written from
 * methods.md 1b): the chosen exponents exactly (MSQE's search from its init, grad-po2's floor/ceil
 * choice), the forward and dx the same bits (powers of two, exact quotients, a mask times dy), the
 * updated second moments within 1 float ulp-ish (1e-6 relative), e's gradient and init within
 * stated tolerances (float sums in different orders on the two sides). */
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static float *ref(const char *tag, const char *k, size_t n) {
    char b[64];
    snprintf(b, sizeof b, "px_%s_%s", tag, k);
    return lbt_ref_load(b, n);
}

/* ch channels of n (per_channel when ch > 1); weights (moments kept) when numel */
static void run(const char *tag, lb_qkind kind, int bits, int sg, int ch, int n, int flags,
                int round, int weights) {
    size_t tot = (size_t)ch * n;
    float *x = ref(tag, "x", tot), *mom = ref(tag, "mom", tot), *dy = ref(tag, "dy", tot),
          *rE = ref(tag, "E", (size_t)ch), *ry = ref(tag, "y", tot), *rdx = ref(tag, "dx", tot),
          *rm = ref(tag, "mom1", tot);
    int grad = kind == LB_Q_GRAD_PO2;
    float *e = grad ? ref(tag, "e", (size_t)ch) : NULL,
          *rde = grad ? ref(tag, "de", (size_t)ch) : NULL,
          *re0 = grad ? ref(tag, "e0", (size_t)ch) : NULL;
    float *y = calloc(tot, sizeof *y), *dx = calloc(tot, sizeof *dx);
    float *st = calloc(4 + 2 * (size_t)ch + tot, sizeof *st), p[8], dp[8];
    int have = x && mom && dy && rE && ry && rdx && rm && (!grad || (e && rde && re0)) && y && dx;
    CHECK(have, "%s: references present", tag);
    if (have) {
        lb_qcfg cfg = {.kind = kind,
                       .bits = bits,
                       .is_signed = sg,
                       .per_channel = ch > 1,
                       .po2_flags = flags,
                       .po2_round = round,
                       .numel = weights ? (long)tot : 0};
        lb_quant q;
        CHECK(lb_quant_bind(&q, &cfg, ch, (size_t)n, (size_t)n, p, dp, st) == LB_OK, "%s: bind: %s",
              tag, lb_error_msg());
        int mom_on = weights && !(flags & LB_PO2X_NO_MOMENTS);
        float *qm = st + (grad ? 2 + 2 * ch : 1 + ch);
        if (mom_on) memcpy(qm, mom, tot * sizeof *qm);
        if (grad) {
            lb_quant_forward(&q, 1, x, y, 1); /* the init from x */
            for (int c = 0; c < ch; c++)
                CHECK(fabsf(p[c] - re0[c]) <= 1e-6f * (1 + fabsf(re0[c])),
                      "%s: e0[%d] %.9g vs %.9g", tag, c, (double)p[c], (double)re0[c]);
            if (mom_on) memcpy(qm, mom, tot * sizeof *qm);
            memcpy(p, e, (size_t)ch * sizeof *p);
        }
        lb_quant_forward(&q, 1, x, y, 1);
        for (int c = 0; c < ch; c++)
            CHECK(lb_quant_step(&q, c) == ldexpf(1, (int)rE[c]), "%s: E[%d] %g vs %g", tag, c,
                  log2((double)lb_quant_step(&q, c)), (double)rE[c]);
        lbt_close(y, ry, tot, 0, 0, "forward");
        lb_quant_backward(&q, 1, x, dy, dx, 0);
        lbt_close(dx, rdx, tot, 0, 0, "dx");
        if (mom_on) lbt_close(qm, rm, tot, 0, 1e-6, "moments");
        if (grad)
            for (int c = 0; c < ch; c++) {
                double mag = 0, s = lb_quant_step(&q, c);
                for (int i = 0; i < n; i++) mag += fabs(dy[c * n + i]) * (q.qp + 1);
                mag *= M_LN2 * s;
                CHECK(fabs((double)dp[c] - rde[c]) <= 1e-5 * mag, "%s: de[%d] %.9g vs %.9g", tag, c,
                      (double)dp[c], (double)rde[c]);
            }
    }
    free(x), free(mom), free(dy), free(rE), free(ry), free(rdx), free(rm), free(e), free(rde);
    free(re0), free(y), free(dx), free(st);
}

int main(void) {
    run("mw", LB_Q_MSQE_PO2, 4, 1, 4, 60, 0, 0, 1);
    run("mt", LB_Q_MSQE_PO2, 3, 1, 1, 240, LB_PO2X_NO_MASK | LB_PO2X_NO_MOMENTS, 0, 1);
    run("ma", LB_Q_MSQE_PO2, 4, 0, 1, 240, LB_PO2X_NO_MOMENTS, 0, 0);
    run("gw", LB_Q_GRAD_PO2, 4, 1, 3, 80, 0, LB_PO2X_ROUND_MSQE, 1);
    run("ga", LB_Q_GRAD_PO2, 4, 0, 1, 240, LB_PO2X_NO_MASK | LB_PO2X_NO_MOMENTS, LB_PO2X_ROUND_CEIL,
        0);
    run("gm", LB_Q_GRAD_PO2, 3, 1, 2, 100, LB_PO2X_NO_MASK | LB_PO2X_NO_MOMENTS, LB_PO2X_ROUND_MSQE,
        1);
    TEST_MAIN_END("test_torch_po2x");
}
