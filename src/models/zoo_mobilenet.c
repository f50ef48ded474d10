/* MobileNetV1, MobileNetV2 and EfficientNet-Lite0 as lb_nn graphs (zoo.c dispatches here): layer
 * lists, the width multiplier and the stage strides per input size. Not the quantization plan
 * (quant_plan.c). */
#include "zoo_internal.h"

#include <stdio.h>

/* Channels scaled by the width multiplier and rounded to a multiple of 8 (torchvision's
 * _make_divisible: at least 8, never more than 10% below c*wm), so that every layer keeps the
 * channel counts SIMD kernels and packed integer weights like. */
int lb_mobilenet_ch(int c, float wm) {
    double v = (double)c * wm;
    int r = (int)(v + 4) / 8 * 8;
    if (r < 8) r = 8;
    if (r < 0.9 * v) r += 8;
    return r;
}

/* Small inputs (both sides below 112, i.e. 28x28 and 32x32) get the CIFAR adaptation: the stem
 * and one early stage keep stride 1, so the total stride is 8 (28 -> 4x4, 32 -> 4x4) instead of
 * ImageNet's 32, which would leave 1x1 maps after a few layers. */
static int small_input(int h, int w) {
    return h < 112 && w < 112;
}

static int cbr(lb_net *n, const char *p, const char *conv, int x, int cout, int k, int s,
               int groups, int act) {
    char a[48], b[48];
    snprintf(a, sizeof a, "%s%s", p, conv);
    snprintf(b, sizeof b, "%s%s_bn", p, conv); /* BN named after its conv: "b1.dw_bn" */
    x = lb_net_conv(n, a, x, cout, k, s, k / 2, groups, 0);
    x = lb_net_bn(n, b, x);
    return act ? lb_net_act(n, LB_OP_RELU6, x) : x;
}

/* MobileNetV1 (Howard et al. 2017): stem conv3x3 32, then 13 depthwise-separable blocks (dw 3x3
 * + BN + ReLU6, pw 1x1 + BN + ReLU6), GAP, fc. ImageNet strides (stem 2; blocks 2, 4, 6, 12 at
 * stride 2); small inputs: stem 1 and block 12 at stride 1. */
void lb_build_mobilenetv1(lb_net *n, int classes, float wm, int h, int w) {
    static const int ch[13] = {64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024};
    static const int st[13] = {1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1};
    int small = small_input(h, w);
    int x = cbr(n, "", "conv1", 0, lb_mobilenet_ch(32, wm), 3, small ? 1 : 2, 1, 1);
    for (int b = 0; b < 13; b++) {
        char p[32];
        snprintf(p, sizeof p, "b%d.", b + 1);
        int s = (small && b == 11) ? 1 : st[b];
        x = cbr(n, p, "dw", x, n->nodes[x].c, 3, s, n->nodes[x].c, 1);
        x = cbr(n, p, "pw", x, lb_mobilenet_ch(ch[b], wm), 1, 1, 1, 1);
    }
    x = lb_net_gap(n, x);
    lb_net_linear(n, "fc", x, classes, 1);
}

/* Inverted residual (MBConv without squeeze-excite): expansion 1x1 (skipped when t = 1) + BN +
 * ReLU6, depthwise kxk + BN + ReLU6, linear projection 1x1 + BN, and a residual add when stride 1
 * and cin == cout (BN first, so the add folds into it). Layers "<p>expand", "<p>dw",
 * "<p>project". */
static int inverted_residual(lb_net *n, const char *p, int x, int t, int cout, int k, int stride) {
    int cin = n->nodes[x].c, hid = cin * t;
    int y = x;
    if (t != 1) y = cbr(n, p, "expand", y, hid, 1, 1, 1, 1);
    y = cbr(n, p, "dw", y, hid, k, stride, hid, 1);
    y = cbr(n, p, "project", y, cout, 1, 1, 1, 0);
    return (stride == 1 && cin == cout) ? lb_net_add(n, y, x) : y;
}

/* Stages of inverted residuals {t, k, c, n, s}: channels c scaled by wm, blocks "s<i>.b<j>.",
 * the first block of stage `keep1` (0-based; -1 for none) at stride 1 instead of s. */
static int stages(lb_net *n, int x, const int (*cfg)[5], int count, float wm, int keep1) {
    for (int s = 0; s < count; s++) {
        int cout = lb_mobilenet_ch(cfg[s][2], wm);
        for (int b = 0; b < cfg[s][3]; b++) {
            char p[32];
            snprintf(p, sizeof p, "s%d.b%d.", s + 1, b);
            int stride = b == 0 ? (s == keep1 ? 1 : cfg[s][4]) : 1;
            x = inverted_residual(n, p, x, cfg[s][0], cout, cfg[s][1], stride);
        }
    }
    return x;
}

/* MobileNetV2 (Sandler et al. 2018): stem conv3x3 32; inverted residual blocks (t, c, n, s; the
 * table adds the depthwise kernel k, 3 throughout: {t, k, c, n, s}); conv 1x1 1280 + BN + ReLU6,
 * GAP, fc. ImageNet strides (stem 2; stages 2, 3, 4, 6 start at stride 2); small inputs: stem 1 and
 * stage 2 at stride 1. The last conv keeps 1280 channels for multipliers below 1 (as the paper). */
void lb_build_mobilenetv2(lb_net *n, int classes, float wm, int h, int w) {
    static const int cfg[7][5] = {{1, 3, 16, 1, 1}, {6, 3, 24, 2, 2}, {6, 3, 32, 3, 2},
                                  {6, 3, 64, 4, 2}, {6, 3, 96, 3, 1}, {6, 3, 160, 3, 2},
                                  {6, 3, 320, 1, 1}};
    int small = small_input(h, w);
    int x = cbr(n, "", "conv1", 0, lb_mobilenet_ch(32, wm), 3, small ? 1 : 2, 1, 1);
    x = stages(n, x, cfg, 7, wm, small ? 1 : -1);
    x = cbr(n, "", "conv_last", x, wm > 1.0f ? lb_mobilenet_ch(1280, wm) : 1280, 1, 1, 1, 1);
    x = lb_net_gap(n, x);
    lb_net_linear(n, "fc", x, classes, 1);
}

/* EfficientNet-Lite0 (Tan & Le 2019, B0's stages; the "lite" variant of TF's efficientnet-lite):
 * MBConv blocks without squeeze-excite, ReLU6 instead of swish; stages (t, k, c, n, s) as B0's;
 * stem conv3x3 32 and head conv 1x1 1280 + BN + ReLU6 NOT scaled by the width multiplier (as TF's
 * lite models), GAP, fc without dropout. B0's stride-2 stages are V2's (2, 3, 4, 6), so small
 * inputs take V2's adaptation: stem 1 and stage 2 at stride 1 (total stride 8). */
void lb_build_efficientnet_lite0(lb_net *n, int classes, float wm, int h, int w) {
    static const int cfg[7][5] = {{1, 3, 16, 1, 1}, {6, 3, 24, 2, 2},  {6, 5, 40, 2, 2},
                                  {6, 3, 80, 3, 2}, {6, 5, 112, 3, 1}, {6, 5, 192, 4, 2},
                                  {6, 3, 320, 1, 1}};
    int small = small_input(h, w);
    int x = cbr(n, "", "conv1", 0, 32, 3, small ? 1 : 2, 1, 1);
    x = stages(n, x, cfg, 7, wm, small ? 1 : -1);
    x = cbr(n, "", "conv_last", x, 1280, 1, 1, 1, 1);
    x = lb_net_gap(n, x);
    lb_net_linear(n, "fc", x, classes, 1);
}
