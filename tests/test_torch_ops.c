/* Compares the non-GEMM ops of lb_ops with PyTorch 1.13 values written by tests/torch/ref_ops.py
 * (inputs included, so both sides see identical data). Tolerances, |ours - torch| <= atol +
 * rtol*|torch|: 1e-5/1e-5 for values computed the same way up to float rounding; 1e-5/1e-4 for BN
 * gradients (a difference of sums); pooling indices and ReLU masks must match exactly.
 * LOWBIT_VERBOSE=1 prints the largest differences. */
#include "lb_ops.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <string.h>

static int g_verbose;

/* Loads a reference; a missing file is one failed check (and the caller skips its section). */
static float *ref(const char *name, size_t n) {
    float *p = lbt_ref_load(name, n);
    CHECK(p != NULL, "reference %s", name);
    return p;
}

static void cmp(const float *ours, const float *torch_, size_t n, double atol, double rtol,
                const char *what) {
    lbt_close(ours, torch_, n, atol, rtol, what);
    if (g_verbose) {
        double ma = 0, mr = 0;
        for (size_t i = 0; i < n; i++) {
            double d = fabs((double)ours[i] - torch_[i]);
            if (d > ma) ma = d;
            if (fabs(torch_[i]) > 1e-3 && d / fabs(torch_[i]) > mr) mr = d / fabs(torch_[i]);
        }
        printf("  %-28s max |diff| %.3g, max rel diff %.3g\n", what, ma, mr);
    }
}

static float *falloc(size_t n) {
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p) abort();
    return p;
}

static void free_all(float **p, int n) {
    for (int i = 0; i < n; i++) free(p[i]);
}

static void test_bn(void) {
    const int n = 4, c = 3, hw = 25;
    const size_t nx = (size_t)n * c * hw;
    float *r[15] = {ref("bn_x", nx),   ref("bn_gamma", c),  ref("bn_beta", c),   ref("bn_rm0", c),
                    ref("bn_rv0", c),  ref("bn_dy", nx),    ref("bn_y", nx),     ref("bn_rm1", c),
                    ref("bn_rv1", c),  ref("bn_dx", nx),    ref("bn_dgamma", c), ref("bn_dbeta", c),
                    ref("bn_mean", c), ref("bn_invstd", c), ref("bn_yeval", nx)};
    int ok = 1;
    for (int i = 0; i < 15; i++) ok &= r[i] != NULL;
    if (ok) {
        float *x = r[0], *gamma = r[1], *beta = r[2], *dy = r[5];
        lb_bn_desc d = {.n = n, .c = c, .hw = hw, .eps = 1e-5f, .momentum = 0.1f};
        float *y = falloc(nx), *dx = falloc(nx), mean[3], invstd[3], dg[3], db[3];
        for (int ref_ = 0; ref_ < 2; ref_++) {
            float rm[3], rv[3];
            memcpy(rm, r[3], sizeof rm);
            memcpy(rv, r[4], sizeof rv);
            (ref_ ? lb_bn_forward_train_ref : lb_bn_forward_train)(&d, x, gamma, beta, y, mean,
                                                                   invstd, rm, rv);
            (ref_ ? lb_bn_backward_ref : lb_bn_backward)(&d, x, gamma, mean, invstd, dy, dx, 0, dg,
                                                         db);
            cmp(y, r[6], nx, 1e-5, 1e-5, ref_ ? "bn ref y" : "bn y");
            cmp(rm, r[7], c, 1e-6, 1e-5, ref_ ? "bn ref running mean" : "bn running mean");
            cmp(rv, r[8], c, 1e-6, 1e-5, ref_ ? "bn ref running var" : "bn running var");
            cmp(mean, r[12], c, 1e-6, 1e-6, ref_ ? "bn ref saved mean" : "bn saved mean");
            cmp(invstd, r[13], c, 0, 1e-5, ref_ ? "bn ref saved invstd" : "bn saved invstd");
            cmp(dx, r[9], nx, 1e-5, 1e-4, ref_ ? "bn ref dx" : "bn dx");
            cmp(dg, r[10], c, 1e-5, 1e-4, ref_ ? "bn ref dgamma" : "bn dgamma");
            cmp(db, r[11], c, 1e-5, 1e-5, ref_ ? "bn ref dbeta" : "bn dbeta");
        }
        lb_bn_forward_eval(&d, x, gamma, beta, r[3], r[4], y);
        cmp(y, r[14], nx, 1e-5, 1e-5, "bn eval y");
        free(y), free(dx);
    }
    free_all(r, 15);
}

static void test_act(void) {
    const size_t n = 2 * 3 * 4 * 4;
    float *r[6] = {ref("act_x", n),   ref("act_dy", n),  ref("relu_y", n),
                   ref("relu_dx", n), ref("relu6_y", n), ref("relu6_dx", n)};
    int ok = 1;
    for (int i = 0; i < 6; i++) ok &= r[i] != NULL;
    if (ok) {
        float *y = falloc(n), *dx = falloc(n);
        lb_relu_forward(n, r[0], y);
        lb_relu_backward(n, y, r[1], dx, 0);
        cmp(y, r[2], n, 0, 0, "relu y");
        cmp(dx, r[3], n, 0, 0, "relu dx");
        lb_relu6_forward(n, r[0], y);
        lb_relu6_backward(n, y, r[1], dx, 0);
        cmp(y, r[4], n, 0, 0, "relu6 y");
        cmp(dx, r[5], n, 0, 0, "relu6 dx (clip points included)");
        free(y), free(dx);
    }
    free_all(r, 6);
}

static void test_maxpool(const char *name, int h, int w, int k, int s, int p) {
    lb_pool_desc d;
    CHECK(lb_pool_desc_init(&d, 2, 3, h, w, k, s, p) == LB_OK, "%s desc", name);
    const size_t nx = (size_t)6 * h * w, ny = (size_t)6 * d.oh * d.ow;
    char nm[5][64];
    const char *suf[5] = {"x", "dy", "y", "idx", "dx"};
    const size_t sz[5] = {nx, ny, ny, ny, nx};
    float *r[5];
    int ok = 1;
    for (int i = 0; i < 5; i++) {
        snprintf(nm[i], sizeof nm[i], "%s_%s", name, suf[i]);
        r[i] = ref(nm[i], sz[i]);
        ok &= r[i] != NULL;
    }
    if (ok) {
        float *y = falloc(ny), *dx = falloc(nx), *idx = falloc(ny);
        int32_t *am = calloc(ny, sizeof *am);
        lb_maxpool_forward(&d, r[0], y, am);
        lb_maxpool_backward(&d, am, r[1], dx, 0);
        for (size_t i = 0; i < ny; i++) idx[i] = (float)am[i];
        char what[96];
        snprintf(what, sizeof what, "%s y", name);
        cmp(y, r[2], ny, 0, 0, what);
        snprintf(what, sizeof what, "%s argmax", name);
        cmp(idx, r[3], ny, 0, 0, what);
        snprintf(what, sizeof what, "%s dx", name);
        cmp(dx, r[4], nx, 1e-6, 1e-6, what);
        free(y), free(dx), free(idx), free(am);
    }
    free_all(r, 5);
}

static void test_avgpool(const char *name, int h, int w, int k, int s, int p) {
    lb_pool_desc d;
    int gap = k == 0;
    if (gap) {
        d.oh = d.ow = 1;
    } else {
        CHECK(lb_pool_desc_init(&d, 2, 3, h, w, k, s, p) == LB_OK, "%s desc", name);
    }
    const size_t nx = (size_t)6 * h * w, ny = (size_t)6 * d.oh * d.ow;
    char nm[4][64];
    const char *suf[4] = {"x", "dy", "y", "dx"};
    const size_t sz[4] = {nx, ny, ny, nx};
    float *r[4];
    int ok = 1;
    for (int i = 0; i < 4; i++) {
        snprintf(nm[i], sizeof nm[i], "%s_%s", name, suf[i]);
        r[i] = ref(nm[i], sz[i]);
        ok &= r[i] != NULL;
    }
    if (ok) {
        float *y = falloc(ny), *dx = falloc(nx);
        if (gap) {
            lb_gap_forward(2, 3, h * w, r[0], y);
            lb_gap_backward(2, 3, h * w, r[1], dx, 0);
        } else {
            lb_avgpool_forward(&d, r[0], y);
            lb_avgpool_backward(&d, r[1], dx, 0);
        }
        char what[96];
        snprintf(what, sizeof what, "%s y", name);
        cmp(y, r[2], ny, 1e-6, 1e-5, what);
        snprintf(what, sizeof what, "%s dx", name);
        cmp(dx, r[3], nx, 1e-6, 1e-5, what);
        free(y), free(dx);
    }
    free_all(r, 4);
}

static void test_shortcut(void) {
    const size_t nx = 2 * 4 * 5 * 6, ny = 2 * 8 * 3 * 3;
    float *r[4] = {ref("sc_x", nx), ref("sc_dy", ny), ref("sc_y", ny), ref("sc_dx", nx)};
    if (r[0] && r[1] && r[2] && r[3]) {
        float *y = falloc(ny), *dx = falloc(nx);
        lb_shortcut_forward(2, 4, 5, 6, 8, 2, r[0], y);
        lb_shortcut_backward(2, 4, 5, 6, 8, 2, r[1], dx, 0);
        cmp(y, r[2], ny, 0, 0, "shortcut y");
        cmp(dx, r[3], nx, 0, 0, "shortcut dx");
        free(y), free(dx);
    }
    free_all(r, 4);
}

static void test_xent(void) {
    const int n = 8, k = 10;
    float *r[8] = {ref("xent_z", n * k),     ref("xent_labels", n),  ref("xent_loss", 1),
                   ref("xent_dz", n * k),    ref("xent0_loss", 1),   ref("xent0_dz", n * k),
                   ref("xent_probs", n * k), ref("xent_ncorrect", 1)};
    int ok = 1;
    for (int i = 0; i < 8; i++) ok &= r[i] != NULL;
    if (ok) {
        int32_t lab[8];
        for (int i = 0; i < n; i++) lab[i] = (int32_t)r[1][i];
        float probs[80], dz[80];
        int nc = -1, want = (int)r[7][0];
        for (int e = 0; e < 2; e++) {
            float eps = e ? 0.0f : 0.1f, loss;
            loss = lb_xent_forward(n, k, r[0], lab, eps, probs, &nc);
            lb_xent_backward(n, k, probs, lab, eps, dz);
            cmp(&loss, e ? r[4] : r[2], 1, 1e-6, 1e-6, e ? "xent loss" : "xent smoothed loss");
            cmp(dz, e ? r[5] : r[3], (size_t)n * k, 1e-7, 1e-5,
                e ? "xent dlogits" : "xent smoothed dlogits");
        }
        cmp(probs, r[6], (size_t)n * k, 1e-7, 1e-5, "xent probs");
        CHECK(nc == want, "xent ncorrect %d vs %d", nc, want);
    }
    free_all(r, 8);
}

int main(void) {
    const char *v = getenv("LOWBIT_VERBOSE");
    g_verbose = v && v[0] && v[0] != '0';
    lb_threads_set(2);
    test_bn();
    test_act();
    test_maxpool("mp2", 6, 6, 2, 2, 0);
    test_maxpool("mp2t", 6, 7, 2, 2, 0);
    test_maxpool("mp3", 7, 7, 3, 2, 1);
    test_maxpool("mp3t", 8, 8, 3, 2, 1);
    test_avgpool("ap2", 6, 6, 2, 2, 0);
    test_avgpool("ap3", 7, 7, 3, 2, 1);
    test_avgpool("gap", 5, 5, 0, 0, 0);
    test_shortcut();
    test_xent();
    TEST_MAIN_END("test_torch_ops");
}
