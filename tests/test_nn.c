/* Whole-graph tests of lb_nn: finite-difference gradients through a network with every op kind
 * (residual add, option-A shortcut, in-place ReLU, pools, depthwise conv, dropout, linear),
 * float and with LSQ quantizers planned in, and eval/train mode behaviour. */
#include "lb_backend.h"
#include "lb_models.h"
#include "lb_nn.h"
#include "lb_ops.h"
#include "lb_test.h"

#include <stdlib.h>
#include <string.h>

static lb_net *small_net(int quant) {
    lb_net *n = lb_net_new(2, 8, 8);
    int x = lb_net_conv(n, "c1", 0, 4, 3, 1, 1, 1, 0);
    x = lb_net_bn(n, "b1", x);
    int r = lb_net_act(n, LB_OP_RELU, x);
    int y = lb_net_conv(n, "c2", r, 6, 3, 2, 1, 1, 1);
    y = lb_net_bn(n, "b2", y);
    int s = lb_net_shortcut(n, r, 6, 2);
    x = lb_net_add(n, y, s);
    x = lb_net_act(n, LB_OP_RELU6, x);
    int dw = lb_net_conv(n, "dw", x, 6, 3, 1, 1, 6, 1);
    x = lb_net_add(n, dw, x); /* x is read twice: gradient accumulation */
    x = lb_net_pool(n, LB_OP_MAXPOOL, x, 2, 2, 0);
    x = lb_net_dropout(n, x, 0.25f);
    int a = lb_net_pool(n, LB_OP_AVGPOOL, x, 2, 1, 0);
    a = lb_net_gap(n, a);
    lb_net_linear(n, "fc", a, 3, 1);
    if (quant) {
        lb_quant_plan q = {
            .kind = LB_Q_LSQ, .wbits = 4, .abits = 4, .first_bits = 8, .last_bits = 8};
        CHECK(lb_quant_plan_apply(&q, n) == LB_OK, "plan: %s", lb_error_msg());
    }
    return n;
}

/* loss = sum(coef * logits) with fixed dropout masks (rng rewound before each forward) */
static double loss_of(lb_net *n, const float *x, int B, const float *coef, lb_rng rng0) {
    n->rng = rng0;
    const float *lo = lb_net_forward(n, x, B, 1);
    double s = 0;
    for (int i = 0; i < B * 3; i++) s += (double)coef[i] * lo[i];
    return s;
}

static void gradcheck(int quant) { /* quant: 0 only, see main */
    lb_net *n = small_net(quant);
    CHECK(lb_net_plan(n, 4, 2) == LB_OK, "plan: %s", lb_error_msg());
    lb_net_init(n, 7);
    int B = 3;
    float x[3 * 2 * 8 * 8], coef[9];
    lb_rng r;
    lb_rng_seed(&r, 3);
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = lb_rng_normal(&r);
    for (int i = 0; i < 9; i++) coef[i] = lb_rng_normal(&r);
    lb_rng rng0 = n->rng;
    /* the first forward initializes LSQ steps; freeze that state for the check */
    loss_of(n, x, B, coef, rng0);
    loss_of(n, x, B, coef, rng0);
    CHECK(lb_net_backward(n, coef) == LB_OK, "backward");
    float *g = malloc(n->nparam * sizeof *g);
    memcpy(g, n->grad, n->nparam * sizeof *g);
    int bad = 0, checked = 0;
    for (int t = 0; t < n->nparams; t++) {
        const lb_tensor_info *ti = &n->params[t];
        if (ti->group == LB_GROUP_QUANT) continue; /* piecewise constant: see test_quant */
        for (int k = 0; k < 3; k++) {
            size_t j = ti->off + (size_t)(k * 7919) % ti->n;
            float save = n->param[j];
            float eps = quant ? 1e-3f : 1e-2f;
            n->param[j] = save + eps;
            double lp = loss_of(n, x, B, coef, rng0);
            n->param[j] = save - eps;
            double lm = loss_of(n, x, B, coef, rng0);
            n->param[j] = save;
            double fd = (lp - lm) / (2 * eps);
            checked++;
            /* with quantized weights the loss is piecewise constant in the weight except via
             * the STE: only compare parameters not behind a weight quantizer */
            int behind_wq = quant && strstr(ti->name, ".weight") &&
                            (ti->name[0] == 'c' || ti->name[0] == 'd' || ti->name[0] == 'f');
            if (behind_wq) continue;
            if (fabs(fd - g[j]) > 2e-2 + 2e-2 * fabs(fd)) {
                bad++;
                fprintf(stderr, "  %s[%zu]: fd %.6g vs backward %.6g\n", ti->name, j - ti->off, fd,
                        g[j]);
            }
        }
    }
    CHECK(bad == 0 && checked > 20, "%s net: %d of %d parameter gradients off",
          quant ? "LSQ" : "float", bad, checked);
    free(g);
    lb_net_free(n);
}

/* A whole model on the fast backend against the same model on the reference kernels. */
static void backend_agree(const char *arch) {
    lb_model_cfg mc;
    lb_model_cfg_default(&mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    lb_net *f = NULL, *r = NULL;
    CHECK(lb_model_build(&mc, &f) == LB_OK && lb_model_build(&mc, &r) == LB_OK, "build");
    lb_net_set_backend(r, lb_backend_cpu_ref());
    CHECK(lb_net_plan(f, 3, 2) == LB_OK && lb_net_plan(r, 3, 2) == LB_OK, "plan");
    lb_net_init(f, 11);
    lb_net_init(r, 11);
    float x[3 * 28 * 28], d[30];
    lb_rng g;
    lb_rng_seed(&g, 2);
    for (int i = 0; i < 3 * 28 * 28; i++) x[i] = lb_rng_normal(&g);
    for (int i = 0; i < 30; i++) d[i] = lb_rng_normal(&g);
    const float *lf = lb_net_forward(f, x, 3, 1), *lr = lb_net_forward(r, x, 3, 1);
    char what[64];
    snprintf(what, sizeof what, "%s logits fast vs ref", arch);
    lbt_close(lf, lr, 30, 1e-4, 1e-4, what);
    lb_net_backward(f, d);
    lb_net_backward(r, d);
    float gmax = 0;
    for (size_t i = 0; i < r->nparam; i++) gmax = fmaxf(gmax, fabsf(r->grad[i]));
    snprintf(what, sizeof what, "%s gradients fast vs ref", arch);
    lbt_close(f->grad, r->grad, f->nparam, 1e-4 * gmax, 1e-3, what);
    lb_net_free(f);
    lb_net_free(r);
}

/* The fusions (BN+ReLU in one kernel, the in-place add, BN's residual add folded in, conv output
 * moments handed to BN, BN's dx over its dy) give the same bits as separate ops. */
static void fusion_exact(const char *arch, int lsq) {
    lb_model_cfg mc;
    lb_model_cfg_default(&mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    if (strncmp(arch, "mobilenet", 9) == 0 || strncmp(arch, "efficientnet", 12) == 0)
        mc.width_mult = 0.25f; /* same ops, less time */
    mc.q.kind = lsq ? LB_Q_LSQ : LB_Q_NONE;
    lb_net *f = NULL, *u = NULL;
    CHECK(lb_model_build(&mc, &f) == LB_OK && lb_model_build(&mc, &u) == LB_OK, "build");
    CHECK(lb_net_plan(f, 4, 2) == LB_OK, "plan fused");
    setenv("LOWBIT_NO_FUSE", "1", 1);
    CHECK(lb_net_plan(u, 4, 2) == LB_OK, "plan unfused");
    unsetenv("LOWBIT_NO_FUSE");
    int nf = 0;
    for (int i = 0; i < f->nnodes; i++) nf += f->nodes[i].fused - u->nodes[i].fused;
    CHECK(nf > 0, "%s: %d activations fused", arch, nf);
    lb_net_init(f, 3);
    lb_net_init(u, 3);
    float x[4 * 28 * 28], d[40];
    lb_rng g;
    lb_rng_seed(&g, 9);
    for (int i = 0; i < 4 * 28 * 28; i++) x[i] = lb_rng_normal(&g);
    for (int i = 0; i < 40; i++) d[i] = lb_rng_normal(&g);
    for (int step = 0; step < 2; step++) {
        const float *a = lb_net_forward(f, x, 4, 1), *b = lb_net_forward(u, x, 4, 1);
        CHECK(memcmp(a, b, 40 * sizeof *a) == 0, "%s: fused logits differ", arch);
        lb_net_backward(f, d);
        lb_net_backward(u, d);
        CHECK(memcmp(f->grad, u->grad, f->nparam * sizeof(float)) == 0, "%s: grads differ", arch);
        CHECK(memcmp(f->state, u->state, f->nstate * sizeof(float)) == 0, "%s: state", arch);
    }
    const float *a = lb_net_forward(f, x, 4, 0), *b = lb_net_forward(u, x, 4, 0);
    CHECK(memcmp(a, b, 40 * sizeof *a) == 0, "%s: fused eval logits differ", arch);
    lb_net_free(f);
    lb_net_free(u);
}

int main(void) {
    lb_threads_set(2);
    gradcheck(0);
    /* Through LSQ the loss is piecewise constant, so finite differences say nothing about the
     * straight-through gradient; the quantized graph is checked against PyTorch instead
     * (test_torch_resnet). Here: it plans, runs and gives finite gradients. */
    {
        lb_net *q = small_net(1);
        CHECK(lb_net_plan(q, 4, 2) == LB_OK, "LSQ net plans: %s", lb_error_msg());
        lb_net_init(q, 7);
        float x[4 * 2 * 8 * 8], d[12];
        for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)((i * 31) % 17) / 8 - 1;
        for (int i = 0; i < 12; i++) d[i] = (float)(i % 3) - 1;
        lb_net_forward(q, x, 4, 1);
        CHECK(lb_net_backward(q, d) == LB_OK, "LSQ backward");
        int finite = 1, nonzero = 0;
        for (size_t i = 0; i < q->nparam; i++) {
            finite &= isfinite(q->grad[i]);
            nonzero += q->grad[i] != 0;
        }
        CHECK(finite && nonzero > (int)q->nparam / 2, "LSQ grads finite, %d/%zu nonzero", nonzero,
              q->nparam);
        lb_net_free(q);
    }

    fusion_exact("cnn", 1);
    fusion_exact("resnet20", 1);
    fusion_exact("resnet20", 0);
    fusion_exact("mobilenetv1", 0);        /* BN+ReLU6 */
    fusion_exact("mobilenetv2", 1);        /* BN+ReLU6, linear bottlenecks, residual adds folded */
    fusion_exact("efficientnet-lite0", 1); /* the same with 5x5 depthwise convs */
    backend_agree("cnn");
    backend_agree("resnet20");
    CHECK(lb_backend_find("cpu-ref") == lb_backend_cpu_ref() && !lb_backend_find("gpu"),
          "backend lookup");

    /* eval mode is deterministic and uses running statistics */
    lb_net *n = small_net(0);
    CHECK(lb_net_plan(n, 2, 1) == LB_OK, "plan");
    lb_net_init(n, 1);
    float x[2 * 2 * 8 * 8];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = (float)((i * 37) % 11) / 11.0f;
    float a[6], b[6];
    memcpy(a, lb_net_forward(n, x, 2, 0), sizeof a);
    memcpy(b, lb_net_forward(n, x, 2, 0), sizeof b);
    CHECK(memcmp(a, b, sizeof a) == 0, "eval forward repeatable");
    lb_net_free(n);

    /* building errors name the layer */
    n = lb_net_new(1, 8, 8);
    lb_net_conv(n, "c", 0, 4, 3, 1, 1, 3, 0); /* groups 3 does not divide 1 channel */
    CHECK(lb_net_plan(n, 1, 1) == LB_EINVAL && strstr(lb_error_msg(), "'c'"), "bad groups: %s",
          lb_error_msg());
    lb_net_free(n);

    /* model zoo: parameter counts match the PyTorch peers */
    lb_model_cfg mc;
    lb_model_cfg_default(&mc);
    lb_net *m;
    CHECK(lb_model_build(&mc, &m) == LB_OK, "cnn builds");
    CHECK(lb_net_plan(m, 2, 1) == LB_OK, "cnn plans");
    CHECK(m->nparam == 96554, "cnn has %zu parameters (peer 96554)", m->nparam);
    lb_net_free(m);
    snprintf(mc.arch, sizeof mc.arch, "resnet20");
    CHECK(lb_model_build(&mc, &m) == LB_OK && lb_net_plan(m, 2, 1) == LB_OK, "resnet20 builds");
    CHECK(m->nparam == 269434, "resnet20 has %zu parameters (peer 269434)", m->nparam);
    lb_net_free(m);
    snprintf(mc.arch, sizeof mc.arch, "resnet18");
    mc.in_c = 3;
    mc.in_h = mc.in_w = 32;
    CHECK(lb_model_build(&mc, &m) == LB_OK && lb_net_plan(m, 2, 1) == LB_OK, "resnet18 builds");
    CHECK(m->nparam == 11173962, "resnet18 has %zu parameters (torchvision-style CIFAR 11173962)",
          m->nparam);
    lb_net_free(m);
    snprintf(mc.arch, sizeof mc.arch, "vgg");
    CHECK(lb_model_build(&mc, &m) == LB_EINVAL, "unknown model rejected");
    TEST_MAIN_END("test_nn");
}
