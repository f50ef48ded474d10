/* The spiking models of the zoo: seed 000's VGG-style SNN (conv -> [pool] -> layer norm -> LIF,
 * head linear-LIF-dropout-linear-LIF) sized from the input, and a spiking ResNet (docs/snn.md).
 * Shapes only: quantizers come from the plan, memory from lb_net_plan. */
#include "zoo_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define SNN_HIDDEN 256  /* the head's hidden LIF layer (our choice; the seed's is not public) */
#define SNN_MIN_SIDE 8  /* stages halve the map until it is at most this */
#define SNN_MAX_CH 256  /* channel cap of the VGG stages (32, 64, 128, 256, 256, ...) */
#define SNN_TWO_CONV 64 /* stages on maps up to this side have two convs, larger ones one */

const char *const lb_encoding_names[] = {"direct", "rate", "events", NULL};
const char *const lb_reset_names[] = {"subtract", "zero", NULL};
const char *const lb_spike_grad_names[] = {"atan", "fast-sigmoid", NULL};
const char *const lb_readout_names[] = {"count", "membrane", NULL};
const char *const lb_loss_names[] = {"ce", "mse-count", NULL};
const char *const lb_snn_norm_names[] = {"ln", "bn", NULL};
const char *const lb_learn_beta_names[] = {"off", "layer", "channel", NULL};

int lb_name_index(const char *const *names, const char *s) {
    for (int i = 0; names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

lb_status lb_snn_cfg_check(const lb_snn_cfg *s) {
    if (s->timesteps < 1 || s->timesteps > 256)
        return lb_error_set(LB_EINVAL, "--timesteps must be 1..256, got %d", s->timesteps);
    if (!(s->lif.beta >= 0 && s->lif.beta <= 1))
        return lb_error_set(LB_EINVAL, "--beta must be in [0, 1], got %g", (double)s->lif.beta);
    if (!(s->lif.k.theta > 0 && s->lif.k.theta <= 1e6f))
        return lb_error_set(LB_EINVAL, "--threshold must be > 0, got %g", (double)s->lif.k.theta);
    if (!(s->lif.k.slope > 0 && s->lif.k.slope <= 1e6f))
        return lb_error_set(LB_EINVAL, "--slope must be > 0, got %g", (double)s->lif.k.slope);
    if (s->lif.k.mem_bits && (s->lif.k.mem_bits < 3 || s->lif.k.mem_bits > 16))
        return lb_error_set(LB_EINVAL, "--mem-bits must be 3..16 (0: float membrane), got %d",
                            s->lif.k.mem_bits);
    if (s->lif.learn_beta < 0 || s->lif.learn_beta > 2)
        return lb_error_set(LB_EINVAL, "--learn-beta must be off, layer or channel");
    if (!(s->rate_on >= 0 && s->rate_on <= 1 && s->rate_off >= 0 && s->rate_off <= 1 &&
          s->rate_off < s->rate_on))
        return lb_error_set(LB_EINVAL, "--count-rates %g/%g: need 0 <= incorrect < correct <= 1",
                            (double)s->rate_on, (double)s->rate_off);
    if (!(s->dropout >= 0 && s->dropout < 1))
        return lb_error_set(LB_EINVAL, "--snn-dropout must be in [0, 1), got %g",
                            (double)s->dropout);
    if (s->loss == LB_LOSS_MSE_COUNT && s->readout != LB_READ_COUNT)
        return lb_error_set(LB_EINVAL,
                            "--loss mse-count needs --readout count (it compares spike counts)");
    if (s->encoding != LB_ENC_DIRECT && s->encoding != LB_ENC_RATE && s->encoding != LB_ENC_EVENTS)
        return lb_error_set(LB_EINVAL, "unknown --encoding");
    return LB_OK;
}

static int norm(lb_net *n, const lb_snn_cfg *s, const char *name, int x) {
    return s->norm == LB_SNN_BN ? lb_net_bn(n, name, x) : lb_net_ln(n, name, x);
}

/* conv -> [maxpool] -> norm -> LIF; with direct encoding the first one runs once on the image and
 * is repeated over time before its LIF (the same values as repeating the image, T times less
 * work for the first conv). */
static int conv_block(lb_net *n, const lb_snn_cfg *s, int idx, int x, int cout, int pool) {
    char cn[32], nn[32], ln[32];
    snprintf(cn, sizeof cn, "conv%d", idx);
    snprintf(nn, sizeof nn, "norm%d", idx);
    snprintf(ln, sizeof ln, "lif%d", idx);
    x = lb_net_conv(n, cn, x, cout, 3, 1, 1, 1, 0);
    if (pool) x = lb_net_pool(n, LB_OP_MAXPOOL, x, 2, 2, 0);
    x = norm(n, s, nn, x);
    if (n->nodes[x].tm == 1) x = lb_net_encode(n, x, LB_ENC_DIRECT, s->timesteps);
    return lb_net_lif(n, ln, x, &s->lif);
}

/* Linear -> LIF -> dropout -> linear -> (LIF, count) or (mean membrane), then the readout. */
static void head(lb_net *n, const lb_snn_cfg *s, int x, int classes) {
    x = lb_net_act(n, LB_OP_FLATTEN, x);
    x = lb_net_linear(n, "fc1", x, SNN_HIDDEN, 1);
    x = lb_net_lif(n, "lif_fc1", x, &s->lif);
    if (s->dropout > 0) x = lb_net_dropout(n, x, s->dropout);
    x = lb_net_linear(n, "fc2", x, classes, 1);
    if (s->readout == LB_READ_COUNT) x = lb_net_lif(n, "lif_out", x, &s->lif);
    lb_net_tsum(n, x, s->readout == LB_READ_MEMBRANE);
}

/* Stages of 32, 64, 128, 256 channels halve the map (max pool after the stage's last conv) until
 * its side is at most SNN_MIN_SIDE: 28 and 34 -> two stages of two convs (our cnn's plan), 48 ->
 * three, 128 -> four (the first with one conv). */
static void build_vgg(lb_net *n, const lb_model_cfg *cfg) {
    const lb_snn_cfg *s = &cfg->snn;
    int x = 0, idx = 1, side = cfg->in_h > cfg->in_w ? cfg->in_w : cfg->in_h;
    if (s->encoding != LB_ENC_DIRECT) x = lb_net_encode(n, 0, s->encoding, s->timesteps);
    for (int st = 0; side > SNN_MIN_SIDE || st == 0; st++) {
        int ch = 32 << st;
        if (ch > SNN_MAX_CH) ch = SNN_MAX_CH;
        int convs = side <= SNN_TWO_CONV ? 2 : 1;
        for (int k = 0; k < convs; k++) x = conv_block(n, s, idx++, x, ch, k == convs - 1);
        side /= 2;
    }
    head(n, s, x, cfg->classes);
}

/* A spiking ResNet-20 (3 stages of 3 basic blocks, 16/32/64 channels): block = conv-norm-LIF-
 * conv-norm, plus the block's input (option-A shortcut when the shape changes), then LIF. */
static void build_resnet(lb_net *n, const lb_model_cfg *cfg) {
    const lb_snn_cfg *s = &cfg->snn;
    int x = 0, idx = 1;
    if (s->encoding != LB_ENC_DIRECT) x = lb_net_encode(n, 0, s->encoding, s->timesteps);
    x = conv_block(n, s, idx++, x, 16, 0);
    static const int widths[] = {16, 32, 64};
    for (int st = 0; st < 3; st++)
        for (int b = 0; b < 3; b++) {
            int cout = widths[st], stride = (st > 0 && b == 0) ? 2 : 1;
            char a[48], c[48];
            snprintf(a, sizeof a, "s%db%d.conv1", st + 1, b + 1);
            snprintf(c, sizeof c, "s%db%d.norm1", st + 1, b + 1);
            int y = norm(n, s, c, lb_net_conv(n, a, x, cout, 3, stride, 1, 1, 0));
            snprintf(a, sizeof a, "s%db%d.lif1", st + 1, b + 1);
            y = lb_net_lif(n, a, y, &s->lif);
            snprintf(a, sizeof a, "s%db%d.conv2", st + 1, b + 1);
            snprintf(c, sizeof c, "s%db%d.norm2", st + 1, b + 1);
            y = norm(n, s, c, lb_net_conv(n, a, y, cout, 3, 1, 1, 1, 0));
            int sc = x;
            if (stride != 1 || n->nodes[x].c != cout) sc = lb_net_shortcut(n, x, cout, stride);
            snprintf(a, sizeof a, "s%db%d.lif2", st + 1, b + 1);
            x = lb_net_lif(n, a, lb_net_add(n, y, sc), &s->lif);
        }
    x = lb_net_gap(n, x);
    x = lb_net_linear(n, "fc", x, cfg->classes, 1);
    if (s->readout == LB_READ_COUNT) x = lb_net_lif(n, "lif_out", x, &s->lif);
    lb_net_tsum(n, x, s->readout == LB_READ_MEMBRANE);
}

void lb_build_snn(lb_net *n, const lb_model_cfg *cfg) {
    if (strcmp(cfg->arch, "snn-resnet") == 0)
        build_resnet(n, cfg);
    else
        build_vgg(n, cfg);
}
