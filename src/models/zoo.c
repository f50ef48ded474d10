/* The model zoo: builds each architecture as an lb_nn graph. Shapes only; quantizers are assigned
 * by quant_plan.c and memory by lb_net_plan. */
#include "lb_models.h"
#include "zoo_internal.h"

#include <stdio.h>
#include <string.h>

static const char *const g_archs[] = {"cnn",         "resnet20",    "resnet18",
                                      "mobilenetv1", "mobilenetv2", "efficientnet-lite0",
                                      "snn-vgg",     "snn-resnet",  NULL};

const char *const *lb_model_archs(void) {
    return g_archs;
}

void lb_model_cfg_default(lb_model_cfg *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->arch, sizeof c->arch, "cnn");
    c->in_c = 1;
    c->in_h = c->in_w = 28;
    c->classes = 10;
    c->width_mult = 1.0f;
    c->q.kind = LB_Q_NONE;
    c->q.wbits = c->q.abits = 4;
    c->q.first_bits = c->q.last_bits = 8;
    c->q.reg_levels = LB_REG_FIXED;
    c->q.reg_form = LB_REG_MSE;
    c->q.reg_lambda0 = 100.0f;
    c->q.reg_lambda_max = 1000.0f;
    c->q.reg_ramp = 0.5f;
    /* seed 000's SNN (methods.md sec. 6): beta 0.5, threshold 1, subtraction, arctangent, counts */
    c->snn.timesteps = 8;
    c->snn.encoding = LB_ENC_DIRECT;
    c->snn.lif.beta = 0.5f;
    c->snn.lif.k.theta = 1.0f;
    c->snn.lif.k.reset = LB_RESET_SUB;
    c->snn.lif.k.surr = LB_SG_ATAN;
    c->snn.lif.k.slope = 2.0f;
    c->snn.lif.k.detach_reset = 1;
    c->snn.readout = LB_READ_MEMBRANE; /* measured better than counts at small T (docs/snn.md) */
    c->snn.loss = LB_LOSS_CE;
    c->snn.rate_on = 0.8f;
    c->snn.rate_off = 0.2f;
    c->snn.norm = LB_SNN_LN;
    c->snn.dropout = 0.5f;
}

int lb_model_is_snn(const lb_model_cfg *c) {
    return strncmp(c->arch, "snn-", 4) == 0;
}

int lb_model_reads_events(const lb_model_cfg *c) {
    return lb_model_is_snn(c) && c->snn.encoding == LB_ENC_EVENTS;
}

static int conv_bn(lb_net *n, const char *name, const char *bn, int x, int cout, int k, int s,
                   int relu) {
    x = lb_net_conv(n, name, x, cout, k, s, k / 2, 1, 0);
    x = lb_net_bn(n, bn, x);
    return relu ? lb_net_act(n, LB_OP_RELU, x) : x;
}

/* conv32-conv32-maxpool-conv64-conv64-maxpool-fc; 3x3, BN+ReLU after each conv. */
static void build_cnn(lb_net *n, int classes) {
    int x = conv_bn(n, "conv1", "bn1", 0, 32, 3, 1, 1);
    x = conv_bn(n, "conv2", "bn2", x, 32, 3, 1, 1);
    x = lb_net_pool(n, LB_OP_MAXPOOL, x, 2, 2, 0);
    x = conv_bn(n, "conv3", "bn3", x, 64, 3, 1, 1);
    x = conv_bn(n, "conv4", "bn4", x, 64, 3, 1, 1);
    x = lb_net_pool(n, LB_OP_MAXPOOL, x, 2, 2, 0);
    lb_net_linear(n, "fc", x, classes, 1);
}

/* CIFAR ResNet basic block. Option A (resnet20): parameter-free subsample + zero channel pad;
 * option B (resnet18): 1x1 conv + BN projection when the shape changes. */
static int basic_block(lb_net *n, const char *p, int x, int cout, int stride, int option_b) {
    char a[48], b[48], c[48], d[48];
    snprintf(a, sizeof a, "%s.conv1", p);
    snprintf(b, sizeof b, "%s.bn1", p);
    int y = conv_bn(n, a, b, x, cout, 3, stride, 1);
    snprintf(a, sizeof a, "%s.conv2", p);
    snprintf(b, sizeof b, "%s.bn2", p);
    y = conv_bn(n, a, b, y, cout, 3, 1, 0);
    int sc = x;
    int cin = n->nodes[x].c;
    if (stride != 1 || cin != cout) {
        if (option_b) {
            snprintf(c, sizeof c, "%s.down", p);
            snprintf(d, sizeof d, "%s.down_bn", p);
            sc = conv_bn(n, c, d, x, cout, 1, stride, 0);
        } else {
            sc = lb_net_shortcut(n, x, cout, stride);
        }
    }
    return lb_net_act(n, LB_OP_RELU, lb_net_add(n, y, sc));
}

static void build_resnet(lb_net *n, int classes, const int *widths, int stages, int blocks,
                         int option_b) {
    int x = conv_bn(n, "conv1", "bn1", 0, widths[0], 3, 1, 1);
    for (int s = 0; s < stages; s++)
        for (int b = 0; b < blocks; b++) {
            char p[32];
            snprintf(p, sizeof p, "s%d.b%d", s + 1, b);
            x = basic_block(n, p, x, widths[s], (s > 0 && b == 0) ? 2 : 1, option_b);
        }
    x = lb_net_gap(n, x);
    lb_net_linear(n, "fc", x, classes, 1);
}

/* MaQD's layer options (docs/models.md): Layer-Batch Norm on every BN node, weight
 * standardization on every conv (not the linear layers: the classifier feeds the softmax
 * directly, and unit-variance weights would scale its logits by sqrt(fan-in)). */
static lb_status maqd_options(const lb_model_cfg *cfg, lb_net *n) {
    int bns = 0;
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op == LB_OP_BN) {
            d->norm = cfg->norm_layer;
            bns++;
        }
        if (d->op == LB_OP_CONV) d->wstd = cfg->weight_std;
    }
    if (cfg->norm_layer && bns == 0)
        return lb_error_set(LB_EINVAL,
                            "--norm lbn: model '%s' has no batch norm layer to run as "
                            "Layer-Batch Norm (LBN replaces BN in place)",
                            cfg->arch);
    if (cfg->weight_std && cfg->q.kind == LB_Q_REG)
        return lb_error_set(LB_EINVAL, "--weight-std with --quant reg: the reg regularizer pulls "
                                       "the raw weights, not the standardized ones the quantizer "
                                       "sees");
    return LB_OK;
}

lb_status lb_model_build(const lb_model_cfg *cfg, lb_net **out) {
    *out = NULL;
    int events = lb_model_reads_events(cfg);
    if (events && (cfg->snn.timesteps < 1 || cfg->in_c % cfg->snn.timesteps ||
                   cfg->in_c / cfg->snn.timesteps > 2))
        return lb_error_set(LB_EINVAL,
                            "--encoding events: the input must hold T x 1 or 2 polarity planes, "
                            "got %d planes for T = %d",
                            cfg->in_c, cfg->snn.timesteps);
    if (!events && cfg->in_c != 1 && cfg->in_c != 3)
        return lb_error_set(LB_EINVAL, "model input must have 1 or 3 channels, got %d", cfg->in_c);
    int graph = strcmp(cfg->arch, "graph") == 0;
    if (!graph && (cfg->in_h < 28 || cfg->in_w < 28))
        return lb_error_set(LB_EINVAL,
                            "model '%s': input must be at least 28x28, got %dx%d (smaller images: "
                            "put them in an image folder and give --image-size 28, or resize "
                            "them; docs/data.md)",
                            cfg->arch, cfg->in_h, cfg->in_w);
    if (cfg->classes < 2)
        return lb_error_set(LB_EINVAL, "need at least 2 classes, got %d", cfg->classes);
    int mobile =
        strncmp(cfg->arch, "mobilenetv", 10) == 0 || strcmp(cfg->arch, "efficientnet-lite0") == 0;
    if (!(cfg->width_mult >= 0.25f && cfg->width_mult <= 4.0f) ||
        (!mobile && cfg->width_mult != 1.0f))
        return lb_error_set(LB_EINVAL,
                            "--width-mult %g: only the MobileNets and EfficientNet-Lite0 take one, "
                            "in [0.25, 4] (model %s)",
                            (double)cfg->width_mult, cfg->arch);
    lb_net *n = lb_net_new(cfg->in_c, cfg->in_h, cfg->in_w);
    if (!n) return lb_error_set(LB_ENOMEM, "out of memory building %s", cfg->arch);
    if (strcmp(cfg->arch, "cnn") == 0) {
        build_cnn(n, cfg->classes);
    } else if (strcmp(cfg->arch, "resnet20") == 0) {
        static const int w[] = {16, 32, 64};
        build_resnet(n, cfg->classes, w, 3, 3, 0);
    } else if (strcmp(cfg->arch, "resnet18") == 0) {
        static const int w[] = {64, 128, 256, 512};
        build_resnet(n, cfg->classes, w, 4, 2, 1);
    } else if (strcmp(cfg->arch, "mobilenetv1") == 0) {
        lb_build_mobilenetv1(n, cfg->classes, cfg->width_mult, cfg->in_h, cfg->in_w);
    } else if (strcmp(cfg->arch, "mobilenetv2") == 0) {
        lb_build_mobilenetv2(n, cfg->classes, cfg->width_mult, cfg->in_h, cfg->in_w);
    } else if (strcmp(cfg->arch, "efficientnet-lite0") == 0) {
        lb_build_efficientnet_lite0(n, cfg->classes, cfg->width_mult, cfg->in_h, cfg->in_w);
    } else if (lb_model_is_snn(cfg)) {
        lb_status ss = lb_snn_cfg_check(&cfg->snn);
        if (ss != LB_OK) {
            lb_net_free(n);
            return ss;
        }
        lb_build_snn(n, cfg);
    } else if (graph) {
        lb_status gs = lb_graph_build(cfg->graph, "model graph", n);
        if (gs == LB_OK && lb_net_classes(n) != cfg->classes)
            gs = lb_error_set(LB_ESHAPE, "model graph: %d outputs, the model records %d classes",
                              lb_net_classes(n), cfg->classes);
        if (gs != LB_OK) {
            lb_net_free(n);
            return gs;
        }
    } else {
        lb_net_free(n);
        return lb_error_set(
            LB_EINVAL,
            "unknown model '%s' (cnn, resnet20, resnet18, mobilenetv1, mobilenetv2, "
            "efficientnet-lite0, snn-vgg, snn-resnet, graph)",
            cfg->arch);
    }
    lb_status st = n->err;
    if (st == LB_OK) st = maqd_options(cfg, n);
    if (st == LB_OK) st = lb_quant_plan_apply(&cfg->q, n);
    if (st != LB_OK) {
        lb_net_free(n);
        return st;
    }
    *out = n;
    return LB_OK;
}
