/* `lsq --po2` against PyTorch 1.13 (tests/torch/ref_po2.py): per-channel steps on both sides of
 * octave boundaries and of their sqrt(2) midpoints, signed 4-bit and unsigned 3-bit. The effective
 * steps and the forward must be the same bits (an exact exponent on both sides, true division,
 * round half to even); dx the same bits (a mask times dy); the step gradient within 1e-5 of
 * g * sum|dy| * (Qn + Qp) per channel (float sums in different orders on the two sides). */
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static float *ref(const char *tag, const char *k, size_t n) {
    char b[64];
    snprintf(b, sizeof b, "%s_%s", tag, k);
    return lbt_ref_load(b, n);
}

static void run(const char *tag, int bits, int is_signed, int ch) {
    const size_t outer = 2, inner = 20, n = outer * (size_t)ch * inner;
    float *x = ref(tag, "x", n), *s = ref(tag, "s", (size_t)ch), *dy = ref(tag, "dy", n),
          *ry = ref(tag, "y", n), *rse = ref(tag, "seff", (size_t)ch), *rdx = ref(tag, "dx", n),
          *rds = ref(tag, "ds", (size_t)ch);
    float *y = calloc(n, sizeof *y), *dx = calloc(n, sizeof *dx);
    float p[16], dp[16], st[1 + 16];
    CHECK(x && s && dy && ry && rse && rdx && rds && y && dx, "%s: references present", tag);
    if (x && s && dy && ry && rse && rdx && rds && y && dx) {
        lb_qcfg cfg = {
            .kind = LB_Q_LSQ, .bits = bits, .is_signed = is_signed, .per_channel = 1, .po2 = 1};
        lb_quant q;
        CHECK(lb_quant_bind(&q, &cfg, ch, inner, outer * inner, p, dp, st) == LB_OK, "%s: bind: %s",
              tag, lb_error_msg());
        for (int c = 0; c < ch; c++) p[c] = s[c], st[1 + c] = s[c];
        st[0] = 1; /* initialized: the steps are the reference's */
        for (int c = 0; c < ch; c++)
            CHECK(lb_quant_step(&q, c) == rse[c], "%s: s_eff[%d] of %.9g: %g vs %g", tag, c,
                  (double)s[c], (double)lb_quant_step(&q, c), (double)rse[c]);
        lb_quant_forward(&q, outer, x, y, 1);
        lbt_close(y, ry, n, 0, 0, "forward");
        lb_quant_backward(&q, outer, x, dy, dx, 0);
        lbt_close(dx, rdx, n, 0, 0, "dx");
        for (int c = 0; c < ch; c++) {
            double mag = 0;
            for (size_t o = 0; o < outer; o++)
                for (size_t i = 0; i < inner; i++)
                    mag += fabs(dy[(o * ch + c) * inner + i]) * (q.qn + q.qp);
            mag *= q.gscale * rse[c] / s[c];
            CHECK(fabs((double)dp[c] - rds[c]) <= 1e-5 * mag, "%s: ds[%d] %.9g vs %.9g (mag %g)",
                  tag, c, (double)dp[c], (double)rds[c], mag);
        }
    }
    free(x), free(s), free(dy), free(ry), free(rse), free(rdx), free(rds), free(y), free(dx);
}

int main(void) {
    run("w4", 4, 1, 9);
    run("a3", 3, 0, 3);
    TEST_MAIN_END("test_torch_po2");
}
