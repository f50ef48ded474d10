/* MaQD's Layer-Batch Norm and whole nets (methods.md sec. 5, docs/quantizers.md "MaQD"): LBN's
 * forward and backward (fused activation and residual, running statistics) against a double
 * reference by finite differences, its fast and reference kernels bit for bit; whole zoo nets
 * with LBN fused and unfused (LOWBIT_NO_FUSE) giving the same bits; the integer model of an LBN +
 * round-clip cnn against its float model. The round-clip quantizer itself is in test_maqd.c. */
#include "../src/train/train_internal.h"
#include "lb_int.h"
#include "lb_models.h"
#include "lb_ops.h"
#include "lb_quant.h"
#include "lb_test.h"
#include "maqd_rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- Layer-Batch Norm --------------------------------------------------------------------- */
/* Double reference: y = act(g_c (x - mu_n)/sqrt(var_n + eps) + b_c + res); L = sum r y. */
static double lbn_loss(const double *x, const double *g, const double *b, const double *res,
                       const double *r, int n, int c, int hw, int act) {
    double L = 0;
    size_t cnt = (size_t)c * hw;
    for (int i = 0; i < n; i++) {
        const double *p = x + i * cnt;
        double mu = 0, v = 0;
        for (size_t j = 0; j < cnt; j++) mu += p[j];
        mu /= (double)cnt;
        for (size_t j = 0; j < cnt; j++) v += (p[j] - mu) * (p[j] - mu);
        double is = 1 / sqrt(v / (double)cnt + 1e-5);
        for (int ch = 0; ch < c; ch++)
            for (int j = 0; j < hw; j++) {
                size_t e = i * cnt + (size_t)ch * hw + j;
                double t = g[ch] * (p[(size_t)ch * hw + j] - mu) * is + b[ch];
                if (res) t += res[e];
                if (act) t = t > 0 ? t : 0;
                L += r[e] * t;
            }
    }
    return L;
}

static void test_lbn_fd(int act) {
    enum { B = 3, C = 4, HW = 6, N = B * C * HW };
    float x[N], y[N], r[N], dx[N], res[N], dres[N], g[C], b[C], dg[C], db[C];
    float mean[B], inv[B], rm[C], rv[C];
    double xd[N], rd[N], gd[C], bd[C], resd[N];
    for (int i = 0; i < N; i++) {
        x[i] = (float)(nrand() * (1 + i / (C * HW)) + 0.3 * (i / HW % C));
        r[i] = (float)nrand();
        res[i] = (float)(nrand() * 0.5);
        xd[i] = x[i], rd[i] = r[i], resd[i] = res[i];
    }
    for (int c = 0; c < C; c++) {
        g[c] = (float)(0.5 + urand());
        b[c] = (float)(urand() - 0.5);
        gd[c] = g[c], bd[c] = b[c];
        rm[c] = 0.0f, rv[c] = 1.0f;
    }
    lb_bn_desc d = {.n = B,
                    .c = C,
                    .hw = HW,
                    .eps = 1e-5f,
                    .momentum = 0.1f,
                    .act = act,
                    .res = act ? res : NULL};
    lb_lbn_forward_train(&d, x, g, b, y, mean, inv, rm, rv);
    /* running statistics: every channel moves by the batch means of mu_n and unbiased var_n */
    double smu = 0, svar = 0, cnt = C * HW;
    for (int i = 0; i < B; i++) {
        double mu = 0, v = 0;
        for (int j = 0; j < C * HW; j++) mu += xd[i * C * HW + j];
        mu /= cnt;
        for (int j = 0; j < C * HW; j++) v += (xd[i * C * HW + j] - mu) * (xd[i * C * HW + j] - mu);
        smu += mu / B;
        svar += v / (cnt - 1) / B;
        CHECK_NEAR(mean[i], mu, 1e-6, 1e-6, "lbn saved mean");
        CHECK_NEAR(inv[i], 1 / sqrt(v / cnt + 1e-5), 0, 1e-6, "lbn saved invstd");
    }
    int same = 1;
    for (int c = 1; c < C; c++) same &= rm[c] == rm[0] && rv[c] == rv[0];
    CHECK(same, "lbn: one running statistic in every channel");
    CHECK_NEAR(rm[0], 0.1 * smu, 1e-7, 1e-5, "lbn running mean");
    CHECK_NEAR(rv[0], 0.9 + 0.1 * svar, 1e-7, 1e-5, "lbn running var");
    memset(dres, 0, sizeof dres);
    d.dres = act ? dres : NULL;
    float dyc[N];
    memcpy(dyc, r, sizeof r);
    lb_lbn_backward(&d, x, y, g, mean, inv, dyc, dx, 0, dg, db);
    double worst = 0, h = 1e-6;
    const double *rs = act ? resd : NULL;
    for (int i = 0; i < N; i++) {
        double sv = xd[i];
        xd[i] = sv + h;
        double lp = lbn_loss(xd, gd, bd, rs, rd, B, C, HW, act);
        xd[i] = sv - h;
        double lm = lbn_loss(xd, gd, bd, rs, rd, B, C, HW, act);
        xd[i] = sv;
        worst = fmax(worst, fabs(dx[i] - (lp - lm) / (2 * h)));
    }
    CHECK(worst < 1e-4, "lbn dx vs finite differences (act %d): %.2e", act, worst);
    worst = 0;
    for (int c = 0; c < C; c++) {
        double sv = gd[c];
        gd[c] = sv + h;
        double lp = lbn_loss(xd, gd, bd, rs, rd, B, C, HW, act);
        gd[c] = sv - h;
        double lm = lbn_loss(xd, gd, bd, rs, rd, B, C, HW, act);
        gd[c] = sv;
        worst = fmax(worst, fabs(dg[c] - (lp - lm) / (2 * h)));
        sv = bd[c];
        bd[c] = sv + h;
        lp = lbn_loss(xd, gd, bd, rs, rd, B, C, HW, act);
        bd[c] = sv - h;
        lm = lbn_loss(xd, gd, bd, rs, rd, B, C, HW, act);
        bd[c] = sv;
        worst = fmax(worst, fabs(db[c] - (lp - lm) / (2 * h)));
    }
    CHECK(worst < 1e-4, "lbn dgamma/dbeta vs finite differences (act %d): %.2e", act, worst);
    if (act) {
        worst = 0;
        for (int i = 0; i < N; i++) {
            double sv = resd[i];
            resd[i] = sv + h;
            double lp = lbn_loss(xd, gd, bd, resd, rd, B, C, HW, act);
            resd[i] = sv - h;
            double lm = lbn_loss(xd, gd, bd, resd, rd, B, C, HW, act);
            resd[i] = sv;
            worst = fmax(worst, fabs(dres[i] - (lp - lm) / (2 * h)));
        }
        CHECK(worst < 1e-6, "lbn folded residual's gradient vs finite differences: %.2e", worst);
    }
}

/* The fast kernels (threads over samples and channels) against the serial references, bit for
 * bit, on a tensor large enough to run in parallel; and the backward in place (dx over dy). */
static void test_lbn_fast_vs_ref(void) {
    enum { B = 8, C = 16, HW = 256, N = B * C * HW };
    float *x = malloc(N * sizeof *x), *y1 = malloc(N * sizeof *x), *y2 = malloc(N * sizeof *x);
    float *dy1 = malloc(N * sizeof *x), *dy2 = malloc(N * sizeof *x), *dx1 = malloc(N * sizeof *x);
    float *dx2 = malloc(N * sizeof *x);
    float g[C], b[C], m1[B], m2[B], i1[B], i2[B], rm1[C], rv1[C], rm2[C], rv2[C];
    float dg1[C], dg2[C], db1[C], db2[C];
    for (int i = 0; i < N; i++) x[i] = (float)nrand(), dy1[i] = (float)nrand();
    for (int c = 0; c < C; c++)
        g[c] = 1.0f + 0.1f * c, b[c] = 0.05f * c, rm1[c] = rm2[c] = 0, rv1[c] = rv2[c] = 1;
    memcpy(dy2, dy1, N * sizeof *x);
    lb_bn_desc d = {.n = B, .c = C, .hw = HW, .eps = 1e-5f, .momentum = 0.1f, .act = 1};
    lb_lbn_forward_train(&d, x, g, b, y1, m1, i1, rm1, rv1);
    lb_lbn_forward_train_ref(&d, x, g, b, y2, m2, i2, rm2, rv2);
    CHECK(memcmp(y1, y2, N * sizeof *x) == 0 && memcmp(m1, m2, sizeof m1) == 0 &&
              memcmp(i1, i2, sizeof i1) == 0 && memcmp(rm1, rm2, sizeof rm1) == 0 &&
              memcmp(rv1, rv2, sizeof rv1) == 0,
          "lbn forward: fast equals reference");
    lb_lbn_backward(&d, x, y1, g, m1, i1, dy1, dx1, 0, dg1, db1);
    lb_lbn_backward_ref(&d, x, y2, g, m2, i2, dy2, dx2, 0, dg2, db2);
    CHECK(memcmp(dx1, dx2, N * sizeof *x) == 0 && memcmp(dg1, dg2, sizeof dg1) == 0 &&
              memcmp(db1, db2, sizeof db1) == 0,
          "lbn backward: fast equals reference");
    /* in place: dx over dy (the masked dy of the first run is a fixed point of the mask) */
    lb_lbn_backward(&d, x, y1, g, m1, i1, dy2, dy2, 0, dg2, db2);
    CHECK(memcmp(dy2, dx1, N * sizeof *x) == 0, "lbn backward in place equals out of place");
    free(x), free(y1), free(y2), free(dy1), free(dy2), free(dx1), free(dx2);
}

/* ---- whole nets -------------------------------------------------------------------------- */
static lb_net *maqd_net(const char *arch, int batch, int nofuse) {
    lb_model_cfg c;
    lb_model_cfg_default(&c);
    snprintf(c.arch, sizeof c.arch, "%s", arch);
    c.q.kind = LB_Q_ROUNDCLIP;
    c.q.wstates = 15;
    c.q.astates = 16;
    c.norm_layer = 1;
    c.weight_std = 1;
    if (nofuse) setenv("LOWBIT_NO_FUSE", "1", 1);
    lb_net *n = NULL;
    lb_status st = lb_model_build(&c, &n);
    if (st == LB_OK) st = lb_net_plan(n, batch, 2);
    unsetenv("LOWBIT_NO_FUSE");
    CHECK(st == LB_OK, "%s maqd net: %s", arch, lb_error_msg());
    if (st != LB_OK) {
        lb_net_free(n);
        return NULL;
    }
    lb_net_init(n, 11);
    return n;
}

static void test_fused_unfused(const char *arch) {
    enum { B = 4 };
    lb_net *a = maqd_net(arch, B, 0), *u = maqd_net(arch, B, 1);
    if (!a || !u) {
        lb_net_free(a), lb_net_free(u);
        return;
    }
    int fused = 0, lbn = 0;
    for (int i = 1; i < a->nnodes; i++) {
        fused += a->nodes[i].fused;
        lbn += a->nodes[i].op == LB_OP_BN && a->nodes[i].norm;
    }
    CHECK(fused > 0 && lbn > 0, "%s: the fused plan fuses (%d) around %d LBN nodes", arch, fused,
          lbn);
    size_t in = (size_t)B * 28 * 28;
    float *x = malloc(in * sizeof *x), dl[B * 10];
    for (size_t i = 0; i < in; i++) x[i] = (float)nrand();
    for (int i = 0; i < B * 10; i++) dl[i] = (float)(urand() - 0.5) / B;
    for (int step = 0; step < 2; step++) {
        const float *la = lb_net_forward(a, x, B, 1), *lu = lb_net_forward(u, x, B, 1);
        CHECK(memcmp(la, lu, sizeof dl) == 0, "%s step %d: fused and unfused logits equal", arch,
              step);
        lb_net_backward(a, dl);
        lb_net_backward(u, dl);
        CHECK(memcmp(a->grad, u->grad, a->nparam * sizeof(float)) == 0,
              "%s step %d: fused and unfused gradients equal", arch, step);
        CHECK(memcmp(a->state, u->state, a->nstate * sizeof(float)) == 0,
              "%s step %d: running statistics and quantizer state equal", arch, step);
        for (size_t i = 0; i < a->nparam; i++) a->param[i] = u->param[i] -= 0.01f * u->grad[i];
    }
    const float *la = lb_net_forward(a, x, B, 0), *lu = lb_net_forward(u, x, B, 0);
    CHECK(memcmp(la, lu, sizeof dl) == 0, "%s: eval logits equal", arch);
    /* the whole net's gradient is finite and reaches the first layer's weights */
    double gsum = 0;
    for (size_t i = 0; i < a->params[a->nodes[1].pw].n; i++)
        gsum += fabs(a->grad[a->params[a->nodes[1].pw].off + i]);
    CHECK(isfinite(gsum) && gsum > 0, "%s: first conv gets a gradient through WS and LBN", arch);
    free(x);
    lb_net_free(a);
    lb_net_free(u);
}

/* The integer model of an LBN + round-clip + WS cnn (LBN folded as BN, codes of the standardized
 * weights) against its float model on Fashion-MNIST test images. */
static void test_integer(int quick) {
    lb_dataset ds;
    lb_status st = lb_dataset_load_dir("/usr/share/datasets/fashion-mnist", 0, &ds);
    CHECK(st == LB_OK, "Fashion-MNIST test set: %s", lb_error_msg());
    if (st != LB_OK) return;
    float mean[3], sd[3];
    lb_dataset_norm(&ds, mean, sd);
    enum { B = 32 };
    lb_net *n = maqd_net("cnn", B, 0);
    if (!n) {
        lb_dataset_free(&ds);
        return;
    }
    float *x = malloc((size_t)B * 784 * sizeof *x);
    for (int b = 0; b < 4; b++) { /* steps and running statistics from training forwards */
        for (size_t j = 0; j < (size_t)B * 784; j++)
            x[j] = ((float)ds.images[(size_t)(5000 + b * B) * 784 + j] / 255.0f - mean[0]) / sd[0];
        lb_net_forward(n, x, B, 1);
    }
    lb_int_model *m;
    st = lb_int_from_net(n, mean, sd, &m);
    CHECK(st == LB_OK, "maqd cnn integer model: %s", lb_error_msg());
    if (st == LB_OK) {
        int count = quick ? 32 : 256;
        int32_t *lg = malloc((size_t)count * 10 * sizeof *lg);
        lb_int_eval r;
        st = lb_int_evaluate(m, n, &ds, NULL, count, 32, LB_INT_AUTO, 2, lg, &r);
        CHECK(st == LB_OK && (double)r.agree / count >= 0.97,
              "maqd cnn: integer and float agree on %d of %d", r.agree, count);
        free(lg);
        lb_int_free(m);
    }
    /* a mirrored activation grid too wide for int8 is refused naming the layer */
    lb_node *c2 = NULL;
    for (int i = 1; i < n->nnodes; i++)
        if (strcmp(n->nodes[i].name, "conv2") == 0) c2 = &n->nodes[i];
    if (c2) {
        lb_quant keep = c2->aq;
        c2->aq.qn = 200, c2->aq.qp = 200;
        CHECK(lb_int_from_net(n, mean, sd, &m) == LB_EINVAL && strstr(lb_error_msg(), "conv2") &&
                  strstr(lb_error_msg(), "round-clip"),
              "wide round-clip codes refused: %s", lb_error_msg());
        c2->aq = keep;
    }
    free(x);
    lb_net_free(n);
    lb_dataset_free(&ds);
}

int main(void) {
    const char *q = getenv("LOWBIT_QUICK");
    int quick = q && *q && strcmp(q, "0") != 0;
    test_lbn_fd(0);
    test_lbn_fd(1);
    test_lbn_fast_vs_ref();
    test_fused_unfused("cnn");
    test_fused_unfused("resnet20");
    if (!quick) test_fused_unfused("mobilenetv2");
    test_integer(quick);
    TEST_MAIN_END("test_maqd_nets");
}
