/* The LIF neuron, layer norm and the MSE count loss against reference values from snnTorch 1.0
 * (or, where it is not installed, a PyTorch twin of the same recurrence; tests/torch/ref_snn.py
 * says which): spikes and membranes exact (the same float operations in the same order; a spike
 * decided by a last-bit tie would show as one mismatch, none does), dx and dbeta to 1e-5 / 1e-4
 * (float sums in another order), layer norm to 1e-5 (PyTorch's float moments vs lowbit's double
 * ones). The membrane grid has no snnTorch counterpart: its case is the twin's. */
#include "lb_ops.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <stdlib.h>
#include <string.h>

enum { T = 6, N = 3, C = 4, HW = 5, NE = T * N * C * HW };

static float *ld(const char *c, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "%s_%s", c, what);
    return lbt_ref_load(name, n);
}

static void lif_case(const char *name, lb_lif_reset reset, lb_spike_grad surr, float slope,
                     int learn, int mem_bits) {
    int nb = learn == 2 ? C : 1;
    float *x = ld(name, "x", NE), *dy = ld(name, "dy", NE), *spk = ld(name, "spk", NE);
    float *mem = ld(name, "mem", NE), *dx = ld(name, "dx", NE), *beta = ld(name, "beta", nb);
    float *dbeta = ld(name, "dbeta", nb);
    CHECK(x && dy && spk && mem && dx && beta && dbeta, "%s: references present", name);
    if (x && dy && spk && mem && dx && beta && dbeta) {
        lb_lif_desc d = {.t = T,
                         .n = N,
                         .c = C,
                         .hw = HW,
                         .theta = 1.0f,
                         .reset = reset,
                         .surr = surr,
                         .slope = slope,
                         .detach_reset = 1,
                         .beta_per_channel = learn == 2,
                         .mem_bits = mem_bits};
        static float s[NE], u[NE], g[NE];
        float db[C], part[N * C * (1 + HW)];
        lb_lif_forward(&d, x, beta, s, u);
        int bad_s = 0;
        for (int i = 0; i < NE; i++) bad_s += s[i] != spk[i];
        CHECK(bad_s == 0, "%s: %d of %d spikes differ", name, bad_s, NE);
        char what[96];
        snprintf(what, sizeof what, "%s membrane", name);
        lbt_close(u, mem, NE, 1e-6, 1e-6, what);
        lb_lif_backward(&d, beta, s, u, dy, g, 0, learn ? db : NULL, part);
        snprintf(what, sizeof what, "%s dx", name);
        lbt_close(g, dx, NE, 1e-5, 1e-5, what);
        if (learn) {
            snprintf(what, sizeof what, "%s dbeta", name);
            lbt_close(db, dbeta, nb, 1e-4, 1e-4, what);
        }
    }
    free(x), free(dy), free(spk), free(mem), free(dx), free(beta), free(dbeta);
}

static void ln_case(void) {
    enum { LN = 5, D = 3 * 6 * 7 };
    float *x = lbt_ref_load("snn_ln_x", LN * D), *dy = lbt_ref_load("snn_ln_dy", LN * D);
    float *y = lbt_ref_load("snn_ln_y", LN * D), *dx = lbt_ref_load("snn_ln_dx", LN * D);
    CHECK(x && dy && y && dx, "layer norm references present");
    if (x && dy && y && dx) {
        static float cy[LN * D], cdx[LN * D];
        float mean[LN], inv[LN];
        lb_ln_forward(LN, D, x, cy, mean, inv);
        lbt_close(cy, y, LN * D, 1e-5, 1e-5, "layer norm y");
        lb_ln_backward(LN, D, cy, inv, dy, cdx, 0);
        lbt_close(cdx, dx, LN * D, 1e-5, 1e-4, "layer norm dx");
    }
    free(x), free(dy), free(y), free(dx);
}

static void count_case(void) {
    enum { CN = 6, K = 10 };
    float *cnt = lbt_ref_load("snn_cnt_counts", CN * K), *lab = lbt_ref_load("snn_cnt_labels", CN);
    float *loss = lbt_ref_load("snn_cnt_loss", 1), *dc = lbt_ref_load("snn_cnt_dcounts", CN * K);
    CHECK(cnt && lab && loss && dc, "count loss references present");
    if (cnt && lab && loss && dc) {
        int32_t y[CN];
        for (int i = 0; i < CN; i++) y[i] = (int32_t)lab[i];
        float g[CN * K];
        float L = lb_mse_count_loss(CN, K, cnt, y, 8, 0.8f, 0.2f, g, NULL);
        CHECK_NEAR(L, loss[0], 1e-6, 1e-6, "mse count loss value");
        lbt_close(g, dc, CN * K, 1e-7, 1e-5, "mse count loss gradient");
    }
    free(cnt), free(lab), free(loss), free(dc);
}

int main(void) {
    float *src = lbt_ref_load("snn_source", 1);
    if (src) printf("  references from %s\n", src[0] == 1.0f ? "snnTorch" : "the PyTorch twin");
    free(src);
    lif_case("snn_sub_atan", LB_RESET_SUB, LB_SG_ATAN, 2.0f, 0, 0);
    lif_case("snn_zero_atan", LB_RESET_ZERO, LB_SG_ATAN, 2.0f, 0, 0);
    lif_case("snn_sub_fsig", LB_RESET_SUB, LB_SG_FSIG, 25.0f, 0, 0);
    lif_case("snn_zero_fsig", LB_RESET_ZERO, LB_SG_FSIG, 25.0f, 0, 0);
    lif_case("snn_learn_layer", LB_RESET_SUB, LB_SG_ATAN, 2.0f, 1, 0);
    lif_case("snn_learn_chan", LB_RESET_ZERO, LB_SG_ATAN, 2.0f, 2, 0);
    lif_case("snn_membits", LB_RESET_SUB, LB_SG_ATAN, 2.0f, 0, 6);
    ln_case();
    count_case();
    TEST_MAIN_END("torch_snn");
}
