/* MobileNetV1 and MobileNetV2 as lb_nn graphs (zoo.c dispatches here): layer lists, the width
 * multiplier and the stage strides per input size. Not the quantization plan (quant_plan.c). */
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

/* MobileNetV2 (Sandler et al. 2018): stem conv3x3 32; inverted residual blocks (t, c, n, s):
 * expansion 1x1 (skipped when t = 1) + BN + ReLU6, dw 3x3 + BN + ReLU6, linear projection 1x1 +
 * BN, and a residual add when stride 1 and cin == cout; conv 1x1 1280 + BN + ReLU6, GAP, fc.
 * ImageNet strides (stem 2; stages 2, 3, 4, 6 start at stride 2); small inputs: stem 1 and stage
 * 2 at stride 1. The last conv keeps 1280 channels for multipliers below 1 (as the paper). */
void lb_build_mobilenetv2(lb_net *n, int classes, float wm, int h, int w) {
    static const int cfg[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2},  {6, 32, 3, 2}, {6, 64, 4, 2},
                                  {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    int small = small_input(h, w);
    int x = cbr(n, "", "conv1", 0, lb_mobilenet_ch(32, wm), 3, small ? 1 : 2, 1, 1);
    for (int s = 0; s < 7; s++) {
        int cout = lb_mobilenet_ch(cfg[s][1], wm);
        for (int b = 0; b < cfg[s][2]; b++) {
            char p[32];
            snprintf(p, sizeof p, "s%d.b%d.", s + 1, b);
            int stride = b == 0 ? ((small && s == 1) ? 1 : cfg[s][3]) : 1;
            int cin = n->nodes[x].c, hid = cin * cfg[s][0];
            int y = x;
            if (cfg[s][0] != 1) y = cbr(n, p, "expand", y, hid, 1, 1, 1, 1);
            y = cbr(n, p, "dw", y, hid, 3, stride, hid, 1);
            y = cbr(n, p, "project", y, cout, 1, 1, 1, 0);
            x = (stride == 1 && cin == cout) ? lb_net_add(n, y, x) : y; /* BN first: folds */
        }
    }
    x = cbr(n, "", "conv_last", x, wm > 1.0f ? lb_mobilenet_ch(1280, wm) : 1280, 1, 1, 1, 1);
    x = lb_net_gap(n, x);
    lb_net_linear(n, "fc", x, classes, 1);
}
