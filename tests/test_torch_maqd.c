/* MaQD's round-clip quantizer, weight standardization and Layer-Batch Norm against their PyTorch
 * 1.13 twins (tests/torch/ref_maqd.py, written from methods.md sec. 5). Round-clip: values the
 * same bits (both divide x by s = 1/a in float), the straight-through dx to 1e-6 (PyTorch's
 * chain rule computes (dy * s) / s), the init a0 to
 * 1e-6 (PyTorch's float32 mean), da to 1e-4 (float32 sums), the triangle surrogate's dx to 1e-6.
 * Weight standardization to 1e-5 (PyTorch's float32 variance); LBN values to 1e-5, gradients to
 * 1e-4, running statistics to 1e-5. Not the finite-difference checks (test_maqd.c). */
#include "lb_ops.h"
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <stdlib.h>
#include <string.h>

static float *load(const char *cname, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "mq_%s_%s", cname, what);
    return lbt_ref_load(name, n);
}

static void rc_case(const char *name, int states, int is_signed, int per_channel, int ch,
                    size_t outer, size_t inner, int init) {
    size_t n = outer * (size_t)ch * inner;
    int na = per_channel ? ch : 1;
    float *x = load(name, "x", n), *dy = load(name, "dy", n), *y = load(name, "y", n);
    float *dx = load(name, "dx", n), *a = load(name, "a", (size_t)na);
    float *da = load(name, "da", (size_t)na), *dxt = load(name, "dxtri", n);
    float *cy = malloc(n * sizeof *cy), *cdx = malloc(n * sizeof *cdx);
    float p[16], dp[16], st[17];
    CHECK(x && dy && y && dx && a && da && dxt && cy && cdx, "%s: references present", name);
    if (!(x && dy && y && dx && a && da && dxt && cy && cdx)) goto out;
    lb_qcfg cfg = {.kind = LB_Q_ROUNDCLIP,
                   .is_signed = is_signed,
                   .per_channel = per_channel,
                   .states = states};
    lb_quant q;
    /* N of the gradient scale as the graph binds it: a channel's (or the tensor's) weights, an
     * activation's per-sample count */
    CHECK(lb_quant_bind(&q, &cfg, ch, inner, per_channel ? inner : (size_t)ch * inner, p, dp, st) ==
              LB_OK,
          "%s bind: %s", name, lb_error_msg());
    if (init) {
        lb_quant_forward(&q, outer, x, cy, 1);
        CHECK_NEAR(p[0], a[0], 0, 1e-6, "roundclip init a0");
    }
    for (int c = 0; c < na; c++) p[c] = st[1 + c] = a[c];
    st[0] = 1.0f;
    lb_quant_forward(&q, outer, x, cy, 1);
    char what[64];
    snprintf(what, sizeof what, "%s y", name);
    lbt_close(cy, y, n, 0, 0, what);
    lb_quant_backward(&q, outer, x, dy, cdx, 0);
    snprintf(what, sizeof what, "%s dx", name);
    lbt_close(cdx, dx, n, 1e-6, 1e-6, what); /* PyTorch computes (dy * s) / s */
    snprintf(what, sizeof what, "%s da", name);
    lbt_close(dp, da, (size_t)na, 1e-7, 1e-4, what);
    q.cfg.surrogate = LB_SUR_TRIANGLE;
    lb_quant_backward(&q, outer, x, dy, cdx, 0);
    snprintf(what, sizeof what, "%s dx triangle", name);
    lbt_close(cdx, dxt, n, 1e-6, 1e-6, what);
out:
    free(x), free(dy), free(y), free(dx), free(a), free(da), free(dxt), free(cy), free(cdx);
}

static void wstd_case(void) {
    enum { CO = 8, K = 27, N = CO * K };
    float *w = load("ws", "w", N), *dws = load("ws", "dws", N), *ws = load("ws", "ws", N);
    float *dw = load("ws", "dw", N);
    float cws[N], cdw[N], inv[CO];
    CHECK(w && dws && ws && dw, "ws: references present");
    if (w && dws && ws && dw) {
        lb_wstd_forward(CO, K, w, cws, NULL, inv);
        lbt_close(cws, ws, N, 1e-5, 1e-5, "wstd ws");
        lb_wstd_backward(CO, K, cws, inv, dws, cdw);
        lbt_close(cdw, dw, N, 1e-4, 1e-4, "wstd dw");
    }
    free(w), free(dws), free(ws), free(dw);
}

static void lbn_case(const char *name, int res) {
    enum { B = 4, C = 6, HW = 25, N = B * C * HW };
    float *x = load(name, "x", N), *dy = load(name, "dy", N), *g = load(name, "gamma", C);
    float *b = load(name, "beta", C), *y = load(name, "y", N), *dx = load(name, "dx", N);
    float *dg = load(name, "dgamma", C), *db = load(name, "dbeta", C), *rm = load(name, "rm", C);
    float *rv = load(name, "rv", C);
    float *r = res ? load(name, "res", N) : NULL, *dr = res ? load(name, "dres", N) : NULL;
    CHECK(x && dy && g && b && y && dx && dg && db && rm && rv && (!res || (r && dr)),
          "%s: references present", name);
    if (x && dy && g && b && y && dx && dg && db && rm && rv && (!res || (r && dr))) {
        float cy[N], cdx[N], cdr[N], cdg[C], cdb[C], mean[B], inv[B], crm[C], crv[C];
        for (int c = 0; c < C; c++) crm[c] = 0, crv[c] = 1;
        lb_bn_desc d = {.n = B,
                        .c = C,
                        .hw = HW,
                        .eps = 1e-5f,
                        .momentum = 0.1f,
                        .act = res ? 1 : 0,
                        .res = r,
                        .dres = res ? cdr : NULL};
        lb_lbn_forward_train(&d, x, g, b, cy, mean, inv, crm, crv);
        char what[64];
        snprintf(what, sizeof what, "%s y", name);
        lbt_close(cy, y, N, 1e-5, 1e-5, what);
        snprintf(what, sizeof what, "%s running mean", name);
        lbt_close(crm, rm, C, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "%s running var", name);
        lbt_close(crv, rv, C, 1e-6, 1e-5, what);
        lb_lbn_backward(&d, x, cy, g, mean, inv, dy, cdx, 0, cdg, cdb);
        snprintf(what, sizeof what, "%s dx", name);
        lbt_close(cdx, dx, N, 1e-5, 1e-4, what);
        snprintf(what, sizeof what, "%s dgamma", name);
        lbt_close(cdg, dg, C, 1e-5, 1e-4, what);
        snprintf(what, sizeof what, "%s dbeta", name);
        lbt_close(cdb, db, C, 1e-5, 1e-4, what);
        if (res) lbt_close(cdr, dr, N, 0, 0, "lbnres dres");
    }
    free(x), free(dy), free(g), free(b), free(y), free(dx), free(dg), free(db), free(rm);
    free(rv), free(r), free(dr);
}

int main(void) {
    rc_case("w15", 15, 1, 0, 16, 1, 72, 0);
    rc_case("w15pc", 15, 1, 1, 12, 1, 54, 0);
    rc_case("w9", 9, 1, 0, 10, 1, 40, 0);
    rc_case("a16init", 16, 0, 0, 1, 8, 576, 1);
    rc_case("a16", 16, 0, 0, 1, 8, 576, 0);
    wstd_case();
    lbn_case("lbn", 0);
    lbn_case("lbnres", 1);
    TEST_MAIN_END("test_torch_maqd");
}
