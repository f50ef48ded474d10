/* The regularization-based quantizer (LB_Q_REG) against PyTorch 1.13 (tests/torch/ref_reg.py,
 * written from methods.md): the data-driven init (R to 1e-4: PyTorch's float32 mean), then with
 * PyTorch's R the eval snap (exact), the loss (1e-5 relative), the weight gradient (1e-5 relative
 * plus 1e-6 of its largest element: d is one float subtraction in both, the coefficient is
 * rounded differently) and dR (1e-4 relative plus 1e-6 of its largest: PyTorch sums in float32).
 * Not the finite-difference checks (test_reg.c). */
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <string.h>

typedef struct tcase {
    const char *name;
    lb_reg_levels levels;
    lb_reg_form form;
    int bits, per_channel, ch;
    size_t inner;
    float lambda;
    int init; /* 1: R comes from the data (compared); 0: given by the reference */
} tcase;

static const tcase cases[] = {
    {"fix4_mse", LB_REG_FIXED, LB_REG_MSE, 4, 0, 16, 72, 100.0f, 1},
    {"fix2_gauss", LB_REG_FIXED, LB_REG_GAUSS, 2, 0, 16, 72, 3.0f, 1},
    {"fixpc4_mse", LB_REG_FIXED, LB_REG_MSE, 4, 1, 12, 54, 500.0f, 1},
    {"lrn4_mse", LB_REG_LEARNED, LB_REG_MSE, 4, 0, 16, 72, 100.0f, 0},
    {"lrn3_gauss", LB_REG_LEARNED, LB_REG_GAUSS, 3, 0, 10, 36, 2.0f, 0},
    {"lrnpc8_mse", LB_REG_LEARNED, LB_REG_MSE, 8, 1, 8, 144, 1000.0f, 0},
    {"stp4_mse", LB_REG_STEP, LB_REG_MSE, 4, 0, 16, 72, 100.0f, 0},
    {"stp3_gauss", LB_REG_STEP, LB_REG_GAUSS, 3, 0, 16, 72, 2.0f, 0},
};

static float *load(const char *cname, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "reg_%s_%s", cname, what);
    return lbt_ref_load(name, n);
}

static float absmax(const float *v, size_t n) {
    float m = 0;
    for (size_t i = 0; i < n; i++) m = fabsf(v[i]) > m ? fabsf(v[i]) : m;
    return m;
}

static void run_case(const tcase *tc) {
    size_t n = (size_t)tc->ch * tc->inner;
    int nch = tc->per_channel ? tc->ch : 1, nb = tc->bits + 1, step = tc->levels == LB_REG_STEP;
    size_t nr = (size_t)nch * (step ? 1 : (size_t)nb), ndr = step ? 1 : nr;
    float *x = load(tc->name, "x", n), *R = load(tc->name, "R", nr), *y = load(tc->name, "y", n);
    float *loss = load(tc->name, "loss", 1), *dx = load(tc->name, "dx", n);
    float *dR = load(tc->name, "dR", ndr);
    CHECK(x && R && y && loss && dx && dR, "%s: references present", tc->name);
    if (!(x && R && y && loss && dx && dR)) goto out;

    lb_qcfg cfg = {.kind = LB_Q_REG,
                   .bits = tc->bits,
                   .is_signed = 1,
                   .per_channel = tc->per_channel,
                   .levels = tc->levels,
                   .form = tc->form};
    float p[256], dp[256], st[256], Rc[9];
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, tc->ch, tc->inner, tc->inner, p, dp, st) == LB_OK, "%s bind",
          tc->name);
    float *yc = calloc(n, sizeof *yc), *dxc = calloc(n, sizeof *dxc);
    char what[96];
    if (tc->init) {
        lb_quant_forward(&q, 1, x, yc, 1);
        for (int c = 0; c < nch; c++) {
            lb_quant_reg_R(&q, c, Rc);
            snprintf(what, sizeof what, "%s: init R[%d]", tc->name, c);
            lbt_close(Rc, R + (size_t)c * nb, (size_t)nb, 0, 1e-4, what);
        }
    }
    /* from here on PyTorch's R (or alpha) */
    st[0] = 1;
    for (int c = 0; c < nch; c++) {
        if (step)
            p[c] = R[c], st[1 + c] = R[c];
        else if (tc->levels == LB_REG_LEARNED)
            memcpy(p + (size_t)c * nb, R + (size_t)c * nb, (size_t)nb * sizeof *p), st[1 + c] = 1;
        else
            memcpy(st + 1 + (size_t)c * nb, R + (size_t)c * nb, (size_t)nb * sizeof *p);
    }
    lb_quant_forward(&q, 1, x, yc, 0);
    snprintf(what, sizeof what, "%s: eval snap exact", tc->name);
    lbt_close(yc, y, n, 0, 0, what);
    q.reg_weight = tc->lambda;
    memset(dp, 0, sizeof dp);
    float l = lb_quant_reg(&q, 1, x, dxc);
    snprintf(what, sizeof what, "%s: loss", tc->name);
    CHECK_NEAR(l, loss[0], 0, 1e-5, what);
    snprintf(what, sizeof what, "%s: dx", tc->name);
    lbt_close(dxc, dx, n, 1e-6 * absmax(dx, n), 1e-5, what);
    if (tc->levels == LB_REG_LEARNED) {
        snprintf(what, sizeof what, "%s: dR", tc->name);
        lbt_close(dp, dR, nr, 1e-6 * absmax(dR, nr), 1e-4, what);
    }
    free(yc);
    free(dxc);
out:
    free(x), free(R), free(y), free(loss), free(dx), free(dR);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) run_case(&cases[i]);
    TEST_MAIN_END("test_torch_reg");
}
