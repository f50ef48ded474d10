/* MobileNetV1/V2 and EfficientNet-Lite0 in the zoo: the map size before the global pool for 28x28,
 * 32x32 and 224x224 inputs (the stage strides of docs/models.md), channel counts under the width
 * multiplier, parameter counts at 224x224 / 1000 classes against the published models (V1:
 * 4,231,976 as in Keras' MobileNet; V2: 3,504,872 as torchvision's mobilenet_v2; Lite0: 4,652,008
 * as timm's efficientnet_lite0), Lite0's block structure (5x5 depthwise convs, residual adds,
 * stem and head not scaled by the multiplier), the refusal of a multiplier on other models,
 * depthwise convs running on the fast backend, and short Fashion-MNIST trainings reaching an
 * accuracy floor (Lite0: 2 epochs, not 3: it costs ~3x V2 x0.25 per image). Values
 * against PyTorch: test_torch_mobilenet.c. LOWBIT_QUICK=1 (the sanitizer pass) shrinks the
 * trainings. */
#include "lb_backend.h"
#include "lb_models.h"
#include "lb_test.h"
#include "lb_train.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static lb_net *build(const char *arch, float wm, int c, int hw, int classes) {
    lb_model_cfg m;
    lb_model_cfg_default(&m);
    snprintf(m.arch, sizeof m.arch, "%s", arch);
    m.width_mult = wm;
    m.in_c = c;
    m.in_h = m.in_w = hw;
    m.classes = classes;
    lb_net *n = NULL;
    CHECK(lb_model_build(&m, &n) == LB_OK, "%s x%g %d: %s", arch, (double)wm, hw, lb_error_msg());
    return n;
}

/* The GAP node's input: the last feature map. */
static const lb_node *last_map(const lb_net *n) {
    for (int i = n->nnodes - 1; i > 0; i--)
        if (n->nodes[i].op == LB_OP_GAP) return &n->nodes[n->nodes[i].in[0]];
    return NULL;
}

static void test_shapes(void) {
    const char *archs[2] = {"mobilenetv1", "mobilenetv2"};
    const int sizes[3] = {28, 32, 224}, want[3] = {4, 4, 7};
    for (int a = 0; a < 2; a++)
        for (int s = 0; s < 3; s++) {
            lb_net *n = build(archs[a], 1.0f, s == 2 ? 3 : 1, sizes[s], 10);
            const lb_node *f = n ? last_map(n) : NULL;
            CHECK(f && f->h == want[s] && f->w == want[s] && f->c == (a ? 1280 : 1024),
                  "%s %dx%d: last map %dx%dx%d, want %dx%d", archs[a], sizes[s], sizes[s],
                  f ? f->c : 0, f ? f->h : 0, f ? f->w : 0, want[s], want[s]);
            lb_net_free(n);
        }
    /* published parameter counts (conv weights, BN gamma/beta, fc with bias) */
    lb_net *v1 = build("mobilenetv1", 1.0f, 3, 224, 1000),
           *v2 = build("mobilenetv2", 1.0f, 3, 224, 1000);
    CHECK(v1 && v1->nparam == 4231976, "mobilenetv1 224 1000 classes: %zu parameters, want 4231976",
          v1 ? v1->nparam : 0);
    CHECK(v2 && v2->nparam == 3504872, "mobilenetv2 224 1000 classes: %zu parameters, want 3504872",
          v2 ? v2->nparam : 0);
    lb_net_free(v1);
    lb_net_free(v2);
    /* width multiplier: multiples of 8, at least 8; V2 keeps its 1280 last channels below 1 */
    lb_net *a = build("mobilenetv1", 0.25f, 1, 28, 10), *b = build("mobilenetv2", 0.35f, 1, 28, 10),
           *c = build("mobilenetv2", 1.4f, 1, 28, 10);
    const lb_node *fa = a ? last_map(a) : NULL, *fb = b ? last_map(b) : NULL,
                  *fc = c ? last_map(c) : NULL;
    CHECK(fa && fa->c == 256, "v1 x0.25: last map %d channels, want 256", fa ? fa->c : 0);
    CHECK(fb && fb->c == 1280, "v2 x0.35: last conv %d channels, want 1280", fb ? fb->c : 0);
    CHECK(fc && fc->c == 1792, "v2 x1.4: last conv %d channels, want 1792", fc ? fc->c : 0);
    int ok = 1;
    for (int i = 1; b && i < b->nnodes; i++)
        if (b->nodes[i].op == LB_OP_CONV) ok &= b->nodes[i].c % 8 == 0;
    CHECK(ok, "v2 x0.35: every conv has a multiple of 8 channels");
    /* depthwise: groups == channels, ReLU6 after it; the default backend is the fast one */
    int dw = 0;
    for (int i = 1; b && i < b->nnodes; i++) {
        const lb_node *d = &b->nodes[i];
        if (d->op == LB_OP_CONV && d->groups > 1) {
            dw++;
            ok &= d->groups == d->c && d->c == b->nodes[d->in[0]].c;
        }
    }
    CHECK(ok && dw == 17, "v2: %d depthwise convs (17), groups == channels", dw);
    CHECK(b && b->be == lb_backend_cpu(), "the zoo builds on the fast CPU backend");
    lb_net_free(a);
    lb_net_free(b);
    lb_net_free(c);

    lb_model_cfg m;
    lb_model_cfg_default(&m);
    snprintf(m.arch, sizeof m.arch, "resnet20");
    m.width_mult = 0.5f;
    lb_net *n = NULL;
    CHECK(lb_model_build(&m, &n) == LB_EINVAL && strstr(lb_error_msg(), "--width-mult"),
          "width multiplier on resnet20 refused: %s", lb_error_msg());
    lb_net_free(n);
}

static int count_op(const lb_net *n, lb_op op, int k) {
    int c = 0;
    for (int i = 1; n && i < n->nnodes; i++)
        c += n->nodes[i].op == op && (k == 0 || (n->nodes[i].k == k && n->nodes[i].groups > 1));
    return c;
}

static const lb_node *node(const lb_net *n, const char *name) {
    for (int i = 1; n && i < n->nnodes; i++)
        if (strcmp(n->nodes[i].name, name) == 0) return &n->nodes[i];
    return NULL;
}

/* EfficientNet-Lite0: B0's stages (t, k, c, n, s) without squeeze-excite, ReLU6, stem 32 and head
 * 1280 whatever the multiplier; small inputs take V2's strides (last map 4x4). */
static void test_efficientnet(void) {
    const int sizes[3] = {28, 32, 224}, want[3] = {4, 4, 7};
    for (int s = 0; s < 3; s++) {
        lb_net *n = build("efficientnet-lite0", 1.0f, s == 2 ? 3 : 1, sizes[s], 10);
        const lb_node *f = n ? last_map(n) : NULL;
        CHECK(f && f->h == want[s] && f->w == want[s] && f->c == 1280,
              "efficientnet-lite0 %dx%d: last map %dx%dx%d, want 1280x%dx%d", sizes[s], sizes[s],
              f ? f->c : 0, f ? f->h : 0, f ? f->w : 0, want[s], want[s]);
        lb_net_free(n);
    }
    lb_net *big = build("efficientnet-lite0", 1.0f, 3, 224, 1000);
    CHECK(big && big->nparam == 4652008,
          "efficientnet-lite0 224 1000 classes: %zu parameters, want 4652008",
          big ? big->nparam : 0);
    /* 16 blocks, each with one depthwise conv; 5x5 in stages 3, 5 and 6 (2 + 3 + 4 blocks);
     * residual adds in every block but the first of each stage (1+1+2+2+3) */
    int dw = count_op(big, LB_OP_CONV, 3) + count_op(big, LB_OP_CONV, 5),
        dw5 = count_op(big, LB_OP_CONV, 5), adds = count_op(big, LB_OP_ADD, 0);
    CHECK(dw == 16 && dw5 == 9 && adds == 9, "lite0: %d depthwise (16), %d 5x5 (9), %d adds (9)",
          dw, dw5, adds);
    const lb_node *s3 = node(big, "s3.b0.dw"), *s6 = node(big, "s6.b0.dw");
    CHECK(s3 && s3->k == 5 && s3->stride == 2 && s3->pad == 2 && s3->h == 28 && s6 && s6->k == 5 &&
              s6->h == 7,
          "lite0 224: s3.b0.dw 5x5 stride 2 pad 2 to 28x28, s6.b0.dw to 7x7");
    lb_net_free(big);
    /* x0.25 and x2: blocks scaled (multiples of 8), stem 32 and head 1280 not (TF's lite) */
    lb_net *a = build("efficientnet-lite0", 0.25f, 1, 28, 10),
           *b = build("efficientnet-lite0", 2.0f, 3, 32, 10);
    const lb_node *a1 = node(a, "conv1"), *al = node(a, "conv_last"),
                  *ap = node(a, "s7.b0.project");
    const lb_node *b1 = node(b, "conv1"), *bl = node(b, "conv_last"),
                  *bp = node(b, "s7.b0.project");
    CHECK(a1 && a1->c == 32 && al && al->c == 1280 && ap && ap->c == 80,
          "lite0 x0.25: stem %d (32), head %d (1280), s7 %d (80)", a1 ? a1->c : 0, al ? al->c : 0,
          ap ? ap->c : 0);
    CHECK(b1 && b1->c == 32 && bl && bl->c == 1280 && bp && bp->c == 640,
          "lite0 x2: stem %d (32), head %d (1280), s7 %d (640)", b1 ? b1->c : 0, bl ? bl->c : 0,
          bp ? bp->c : 0);
    int ok = 1;
    for (int i = 1; a && i < a->nnodes; i++)
        if (a->nodes[i].op == LB_OP_CONV) ok &= a->nodes[i].c % 8 == 0;
    CHECK(ok, "lite0 x0.25: every conv has a multiple of 8 channels");
    /* small inputs: stem and stage 2 at stride 1, so x0.25's s2.b0 (8 -> 8 channels, stride 1)
     * gets a residual add too */
    CHECK(a && a1->stride == 1 && node(a, "s2.b0.dw")->stride == 1 &&
              count_op(a, LB_OP_ADD, 0) == 10,
          "lite0 x0.25 28x28: stem and s2.b0 at stride 1, %d adds (10)", count_op(a, LB_OP_ADD, 0));
    lb_net *one = build("efficientnet-lite0", 1.0f, 1, 28, 10);
    printf("  efficientnet-lite0 10 classes, 1x28x28: %zu parameters (x1), %zu (x0.25)\n",
           one ? one->nparam : 0, a ? a->nparam : 0);
    lb_net_free(one);
    lb_net_free(a);
    lb_net_free(b);
}

/* x0.25 on a Fashion-MNIST subset, one thread (the figures do not depend on it). */
static void test_train(int quick) {
    char dir[] = "/tmp/lowbit_mn_XXXXXX";
    if (!mkdtemp(dir)) return;
    const char *archs[3] = {"mobilenetv1", "mobilenetv2", "efficientnet-lite0"};
    const float floors[3] = {0.45f, 0.50f, 0.45f}; /* measured 0.542, 0.688 and 0.644 */
    for (int a = 0; a < 3; a++) {
        lb_train_cfg c;
        lb_train_cfg_default(&c);
        snprintf(c.model.arch, sizeof c.model.arch, "%s", archs[a]);
        c.model.width_mult = 0.25f;
        snprintf(c.out, sizeof c.out, "%s/%s.ckpt", dir, archs[a]);
        c.epochs = quick ? 1 : a == 2 ? 2 : 3; /* Lite0: ~3x V2 x0.25 per image */
        c.batch = 32;
        c.train_limit = quick ? 128 : 1024;
        c.test_limit = quick ? 64 : 500;
        c.seed = 3;
        c.threads = 1;
        /* accuracy after a few epochs is what this checks: the first epoch of these short runs
         * (32 steps, 9 of warm-up) can end at chance before the network gets going (V1 did
         * after the depthwise kernels changed their sums' order, and reached 0.54 by epoch 3),
         * which by default stops a run (docs/robust.md) */
        c.on_collapse = LB_ON_COLLAPSE_WARN;
        float acc = 0;
        CHECK(lb_train_run(&c, NULL, NULL, &acc) == LB_OK, "%s train: %s", archs[a],
              lb_error_msg());
        printf("  %s x0.25, %d images x %d epochs: test accuracy %.4f\n", archs[a], c.train_limit,
               c.epochs, acc);
        if (!quick)
            CHECK(acc >= floors[a], "%s accuracy %.4f below floor %.2f", archs[a], acc, floors[a]);
        unlink(c.out);
    }
    rmdir(dir);
}

int main(void) {
    int quick = getenv("LOWBIT_QUICK") && atoi(getenv("LOWBIT_QUICK"));
    test_shapes();
    test_efficientnet();
    test_train(quick);
    TEST_MAIN_END("test_mobilenet");
}
