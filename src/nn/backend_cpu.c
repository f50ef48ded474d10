/* The two CPU op tables: fast kernels, and scalar references where lb_ops has them. */
#include "lb_backend.h"

#include <string.h>

static size_t no_scratch(const lb_conv2d_desc *d, int nthreads) {
    (void)d;
    (void)nthreads;
    return 0;
}

static void conv_fwd_ref(const lb_conv2d_desc *d, const float *x, const float *w, const float *b,
                         float *y, float *scratch) {
    (void)scratch;
    lb_conv2d_forward_ref(d, x, w, b, y);
}

static void conv_bwd_ref(const lb_conv2d_desc *d, const float *x, const float *w, const float *dy,
                         float *dx, int dx_acc, float *dw, float *db, float *scratch) {
    (void)scratch;
    lb_conv2d_backward_ref(d, x, w, dy, dx, dx_acc, dw, db);
}

/* Reference for the fused pair: the activation's own backward, then BN's reference. */
static void bn_backward_act_ref(const lb_bn_desc *d, const float *x, const float *y,
                                const float *gamma, const float *mean, const float *invstd,
                                float *dy, float *dx, int dx_acc, float *dgamma, float *dbeta) {
    size_t n = (size_t)d->n * d->c * d->hw;
    if (d->act == 1) lb_relu_backward(n, y, dy, dy, 0);
    if (d->act == 2) lb_relu6_backward(n, y, dy, dy, 0);
    if (d->act && d->dres) /* a folded residual add: its operand's gradient */
        for (size_t i = 0; i < n; i++) d->dres[i] = d->dres_acc ? d->dres[i] + dy[i] : dy[i];
    lb_bn_backward_ref(d, x, gamma, mean, invstd, dy, dx, dx_acc, dgamma, dbeta);
}

static const lb_backend g_cpu = {
    "cpu",
    lb_conv2d_scratch_floats,
    lb_conv2d_forward,
    lb_conv2d_backward,
    lb_linear_forward,
    lb_linear_backward,
    lb_bn_forward_train,
    lb_bn_forward_eval,
    lb_bn_backward,
    lb_bn_backward_act,
    lb_relu_forward,
    lb_relu_backward,
    lb_relu6_forward,
    lb_relu6_backward,
    lb_maxpool_forward,
    lb_maxpool_backward,
    lb_avgpool_forward,
    lb_avgpool_backward,
    lb_gap_forward,
    lb_gap_backward,
    lb_add_forward,
    lb_add_backward,
    lb_shortcut_forward,
    lb_shortcut_backward,
    lb_dropout_forward,
    lb_dropout_backward,
    lb_lif_forward,
    lb_lif_backward,
    lb_lbn_forward_train,
    lb_lbn_backward,
};

static const lb_backend g_cpu_ref = {
    "cpu-ref",
    no_scratch,
    conv_fwd_ref,
    conv_bwd_ref,
    lb_linear_forward_ref,
    lb_linear_backward_ref,
    lb_bn_forward_train_ref,
    lb_bn_forward_eval,
    lb_bn_backward_ref,
    bn_backward_act_ref,
    lb_relu_forward,
    lb_relu_backward,
    lb_relu6_forward,
    lb_relu6_backward,
    lb_maxpool_forward,
    lb_maxpool_backward,
    lb_avgpool_forward,
    lb_avgpool_backward,
    lb_gap_forward,
    lb_gap_backward,
    lb_add_forward,
    lb_add_backward,
    lb_shortcut_forward,
    lb_shortcut_backward,
    lb_dropout_forward,
    lb_dropout_backward,
    lb_lif_forward_ref,
    lb_lif_backward_ref,
    lb_lbn_forward_train_ref,
    lb_lbn_backward_ref,
};

const lb_backend *lb_backend_cpu(void) {
    return &g_cpu;
}
const lb_backend *lb_backend_cpu_ref(void) {
    return &g_cpu_ref;
}

const lb_backend *lb_backend_find(const char *name) {
    if (strcmp(name, "cpu") == 0) return &g_cpu;
    if (strcmp(name, "cpu-ref") == 0) return &g_cpu_ref;
    return NULL;
}
