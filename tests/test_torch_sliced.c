/* The tensor-sliced quantizer against its PyTorch 1.13 twin (tests/torch/ref_sliced.py, written
 * from methods.md sec. 4): values bit for bit (the same float clip, division and round), dx to
 * 1e-6 (PyTorch multiplies by d and divides again), d and xmax gradients to 1e-4 relative and 5e-5
 * absolute (float32 sums in PyTorch, double here, with cancellation), the size in kB and its
 * straight-through gradient to 1e-6, the init (weights: mean +- 3 sigma per slice; activations: the
 * 0.999 quantile) to 1e-5. Weights signed per channel, with and without po2 d; activations unsigned
 * and signed per tensor. Not the finite-difference checks (test_sliced.c). */
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <stdlib.h>
#include <string.h>

static float *load(const char *cname, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "sl_%s_%s", cname, what);
    return lbt_ref_load(name, n);
}

static void sl_case(const char *name, size_t outer, int ch, size_t inner, int sg, int weight,
                    int po2) {
    size_t n = outer * (size_t)ch * inner;
    float *x = load(name, "x", n), *dy = load(name, "dy", n), *y = load(name, "y", n);
    float *dx = load(name, "dx", n), *d = load(name, "d", (size_t)ch);
    float *xm = load(name, "xm", (size_t)ch), *dd = load(name, "dd", (size_t)ch);
    float *dxm = load(name, "dxm", (size_t)ch), *kb = load(name, "kb", 1);
    float *kbdd = load(name, "kbdd", (size_t)ch), *kbdxm = load(name, "kbdxm", (size_t)ch);
    float *cy = malloc(n * sizeof *cy), *cdx = malloc(n * sizeof *cdx);
    float p[16], dp[16], st[1], gd[8], gx[8];
    int ok = x && dy && y && dx && d && xm && dd && dxm && kb && kbdd && kbdxm && cy && cdx;
    CHECK(ok, "%s: references present", name);
    if (!ok) goto out;
    lb_qcfg cfg = {.kind = LB_Q_SLICED,
                   .bits = 4,
                   .is_signed = sg,
                   .per_channel = ch > 1,
                   .po2 = po2,
                   .numel = weight ? (long)n : 0};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, ch, inner, n, p, dp, st) == LB_OK, "%s bind: %s", name,
          lb_error_msg());
    for (int c = 0; c < ch; c++) p[c] = d[c], p[ch + c] = xm[c];
    st[0] = 1;
    CHECK(lb_quant_project(&q) == 0 && memcmp(p, d, ch * sizeof *p) == 0, "%s: inside", name);
    lb_quant_forward(&q, outer, x, cy, 1);
    char what[64];
    snprintf(what, sizeof what, "%s y", name);
    lbt_close(cy, y, n, 0, 0, what);
    lb_quant_backward(&q, outer, x, dy, cdx, 0);
    snprintf(what, sizeof what, "%s dx", name);
    lbt_close(cdx, dx, n, 1e-6, 1e-6, what);
    snprintf(what, sizeof what, "%s dd", name);
    lbt_close(dp, dd, (size_t)ch, 5e-5, 1e-4, what);
    snprintf(what, sizeof what, "%s dxmax", name);
    lbt_close(dp + ch, dxm, (size_t)ch, 5e-5, 1e-4, what);
    double ckb = lb_quant_sliced_kb(&q, 1000, gd, gx);
    CHECK_NEAR(ckb, kb[0], 1e-6, 1e-6, "size kB");
    snprintf(what, sizeof what, "%s size dd", name);
    lbt_close(gd, kbdd, (size_t)ch, 1e-6, 1e-5, what);
    snprintf(what, sizeof what, "%s size dxmax", name);
    lbt_close(gx, kbdxm, (size_t)ch, 1e-6, 1e-5, what);
out:
    free(x), free(dy), free(y), free(dx), free(d), free(xm), free(dd), free(dxm), free(kb);
    free(kbdd), free(kbdxm), free(cy), free(cdx);
}

static void init_case(void) {
    float *w = load("init", "w", 200), *wxm = load("init", "wxm", 4), *wd = load("init", "wd", 4);
    float *a = load("init", "a", 600), *axm = load("init", "axm", 1), *ad = load("init", "ad", 1);
    float y[600], p[8], dp[8], st[1];
    int ok = w && wxm && wd && a && axm && ad;
    CHECK(ok, "init: references present");
    if (ok) {
        lb_qcfg cw = {
            .kind = LB_Q_SLICED, .bits = 4, .is_signed = 1, .per_channel = 1, .numel = 200};
        lb_quant q;
        CHECK(lb_quant_bind(&q, &cw, 4, 50, 200, p, dp, st) == LB_OK, "bind w");
        lb_quant_forward(&q, 1, w, y, 1);
        lbt_close(p + 4, wxm, 4, 1e-7, 1e-5, "init weight xmax");
        lbt_close(p, wd, 4, 1e-8, 1e-5, "init weight d");
        lb_qcfg ca = {.kind = LB_Q_SLICED, .bits = 4};
        CHECK(lb_quant_bind(&q, &ca, 1, 200, 200, p, dp, st) == LB_OK, "bind a");
        lb_quant_forward(&q, 3, a, y, 1);
        lbt_close(p + 1, axm, 1, 1e-6, 1e-5, "init activation xmax (0.999 quantile)");
        lbt_close(p, ad, 1, 1e-7, 1e-5, "init activation d");
    }
    free(w), free(wxm), free(wd), free(a), free(axm), free(ad);
}

int main(void) {
    sl_case("ws", 1, 4, 30, 1, 1, 0);
    sl_case("wp", 1, 4, 30, 1, 1, 1);
    sl_case("au", 3, 1, 40, 0, 0, 0);
    sl_case("as", 3, 1, 40, 1, 0, 0);
    init_case();
    TEST_MAIN_END("test_torch_sliced");
}
