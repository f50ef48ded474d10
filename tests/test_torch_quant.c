/* lb_quant against PyTorch 1.13 (tests/torch/ref_quant.py, the peer's LSQ math): LSQ init, the
 * forward (exact, ties and bounds included), dx (1e-6 relative: PyTorch computes (dy*s)/s) and
 * the scaled step gradient (1e-4 relative: PyTorch sums in float32). Not the FD checks. */
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <string.h>

typedef struct tcase {
    const char *name;
    int bits, is_signed, per_channel;
    size_t outer;
    int ch;
    size_t inner, n_grad;
    int init; /* 1: the step comes from the data (compared); 0: given by the reference */
} tcase;

static const tcase cases[] = {
    /* weights [16][8][3][3], per-tensor: ch = 16 folds into one step */
    {"w2", 2, 1, 0, 1, 16, 72, 1152, 1},
    {"w4", 4, 1, 0, 1, 16, 72, 1152, 1},
    {"w8", 8, 1, 0, 1, 16, 72, 1152, 1},
    /* activations [8][16][6][6]: outer = n, n_grad = C*H*W */
    {"a2", 2, 0, 0, 8, 1, 576, 576, 1},
    {"a4", 4, 0, 0, 8, 1, 576, 576, 1},
    {"a8", 8, 0, 0, 8, 1, 576, 576, 1},
    {"abig", 4, 0, 0, 16, 1, 6272, 6272, 1},
    /* per-channel weights [12][6][3][3], n_grad = elements per channel */
    {"wpc4", 4, 1, 1, 1, 12, 54, 54, 1},
    /* exact ties and bounds at s = 0.25 */
    {"tie_s4", 4, 1, 0, 1, 1, 92, 92, 0},
    {"tie_u4", 4, 0, 0, 1, 1, 92, 92, 0},
    /* quotients where x/s and x*(1/s) round differently, s = 0.1 */
    {"div_u8", 8, 0, 0, 1, 1, 64, 64, 0},
};

static float *load(const char *cname, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "quant_%s_%s", cname, what);
    return lbt_ref_load(name, n);
}

static void run_case(const tcase *tc) {
    size_t n = tc->outer * (size_t)tc->ch * tc->inner;
    int ns = tc->per_channel ? tc->ch : 1;
    float *x = load(tc->name, "x", n), *dy = load(tc->name, "dy", n);
    float *s = load(tc->name, "s", (size_t)ns), *y = load(tc->name, "y", n);
    float *dx = load(tc->name, "dx", n), *ds = load(tc->name, "ds", (size_t)ns);
    CHECK(x && dy && s && y && dx && ds, "%s: references present", tc->name);
    if (!(x && dy && s && y && dx && ds)) goto out;

    lb_qcfg cfg = {.kind = LB_Q_LSQ,
                   .bits = tc->bits,
                   .is_signed = tc->is_signed,
                   .per_channel = tc->per_channel};
    float p[16], dp[16], st[17];
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, tc->ch, tc->inner, tc->n_grad, p, dp, st) == LB_OK, "%s bind",
          tc->name);
    CHECK(q.nparam == ns, "%s: %d steps", tc->name, q.nparam);
    float *yc = calloc(n, sizeof *yc), *dxc = calloc(n, sizeof *dxc);
    char what[96];
    if (tc->init) {
        lb_quant_forward(&q, tc->outer, x, yc, 1);
        snprintf(what, sizeof what, "%s: init step", tc->name);
        lbt_close(p, s, (size_t)ns, 0, 1e-6, what);
    } else {
        st[0] = 1;
    }
    /* from here on the exact PyTorch step, so the forward can be compared bit for bit */
    memcpy(p, s, (size_t)ns * sizeof *p);
    lb_quant_forward(&q, tc->outer, x, yc, 1);
    snprintf(what, sizeof what, "%s: forward exact", tc->name);
    lbt_close(yc, y, n, 0, 0, what);
    lb_quant_backward(&q, tc->outer, x, dy, dxc, 0);
    snprintf(what, sizeof what, "%s: dx", tc->name);
    lbt_close(dxc, dx, n, 0, 1e-6, what);
    /* atol: the float32 rounding PyTorch's sums may carry, relative to their magnitude */
    for (int c = 0; c < ns; c++) {
        double mag = 0;
        size_t per = n / (size_t)ns;
        for (size_t o = 0; o < tc->outer; o++)
            for (size_t i = 0; i < per / tc->outer; i++)
                mag += fabs(dy[(o * (size_t)ns + (size_t)c) * (per / tc->outer) + i]);
        mag *= q.gscale * (q.qp > q.qn ? q.qp : q.qn);
        snprintf(what, sizeof what, "%s: ds[%d]", tc->name, c);
        CHECK_NEAR(dp[c], ds[c], 1e-7 * mag, 1e-4, what);
    }
    free(yc);
    free(dxc);
out:
    free(x);
    free(dy);
    free(s);
    free(y);
    free(dx);
    free(ds);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    TEST_MAIN_END("test_torch_quant");
}
