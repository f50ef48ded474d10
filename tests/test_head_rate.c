/* Tests of the classifier's rate (src/train/head_rate.c, docs/robust.md "The classifier's rate"):
 * the stability bound against SGD itself on a quadratic, the curvature against a finite-difference
 * Hessian of the cross-entropy, the head found in the zoo, and the segments it scales. The
 * trainer's use (a recorded scale, a bit-exact resume) is in test_train and tests/cli/collapse.sh.
 */
#include "../src/train/train_internal.h"
#include "lb_models.h"
#include "lb_ops.h"
#include "lb_test.h"

#include <math.h>
#include <string.h>

/* |x| after `steps` of torch-style SGD (momentum mu, optional Nesterov) on f = lambda x^2 / 2
 * (inf or NaN once it has overflowed: a test says !(x < bound)) */
static double run_quadratic(double lr, double lambda, double mu, int nesterov, int steps) {
    double x = 1, b = 0;
    for (int t = 0; t < steps; t++) {
        double g = lambda * x;
        b = mu * b + g;
        x -= lr * (nesterov ? g + mu * b : b);
    }
    return fabs(x);
}

/* The bound is where SGD stops converging: just below it a quadratic shrinks, just above it
 * grows, for plain SGD, heavy ball and Nesterov. */
static void test_bound(void) {
    const double lambda = 250;
    for (int k = 0; k < 3; k++) {
        lb_opt_cfg o = {.kind = LB_OPT_SGD, .momentum = k ? 0.9f : 0.0f, .nesterov = k == 2};
        double lr = lb_head_rate_bound(&o, lambda);
        CHECK(run_quadratic(0.97 * lr, lambda, o.momentum, o.nesterov, 20000) < 1e-3,
              "kind %d: converges just below the bound %g", k, lr);
        CHECK(!(run_quadratic(1.03 * lr, lambda, o.momentum, o.nesterov, 20000) < 1e3),
              "kind %d: diverges just above the bound %g", k, lr);
    }
    lb_opt_cfg o = {.kind = LB_OPT_SGD, .momentum = 0.9f, .nesterov = 1};
    /* 2(1+mu)/((1+2mu) lambda) = 3.8/(2.8*250) */
    CHECK_NEAR(lb_head_rate_bound(&o, lambda), 3.8 / (2.8 * 250), 0, 1e-6, "Nesterov 0.9");
    CHECK(isinf(lb_head_rate_bound(&o, 0)), "no curvature: no bound");
}

/* mean over the batch of the label-smoothed cross-entropy of logits W x + c */
static double ce(const double *w, const float *x, const int *y, int b, int d, int C, double eps) {
    double sum = 0;
    for (int i = 0; i < b; i++) {
        double z[8], m = -1e300, se = 0;
        for (int c = 0; c < C; c++) {
            z[c] = w[c * (d + 1) + d];
            for (int k = 0; k < d; k++) z[c] += w[c * (d + 1) + k] * x[i * d + k];
            m = z[c] > m ? z[c] : m;
        }
        for (int c = 0; c < C; c++) se += exp(z[c] - m);
        for (int c = 0; c < C; c++) {
            double t = (c == y[i] ? 1 - eps : 0) + eps / C;
            sum -= t * (z[c] - m - log(se));
        }
    }
    return sum / b;
}

/* The power iteration's top eigenvalue equals that of the loss's Hessian in [W | bias], taken by
 * central differences of the loss itself (label smoothing 0.1, so the target is no one-hot). */
static void test_curvature(void) {
    enum { B = 6, D = 5, C = 4, P = C * (D + 1) };
    float x[B * D], p[B * C];
    int y[B];
    double w[P];
    /* ReLU-like features: positive, with a common mean, as a classifier's inputs are (the top
     * eigenvalue then stands apart, as it does in the zoo's heads) */
    for (int i = 0; i < B * D; i++) x[i] = (float)(1.0 + ((i * 37) % 11) / 10.0 + (i % D) * 0.2);
    for (int i = 0; i < B; i++) y[i] = (i * 3) % C;
    for (int k = 0; k < P; k++) w[k] = ((k * 13) % 7 - 3) * 0.15;
    for (int i = 0; i < B; i++) { /* the softmax of these weights' logits */
        double z[C], m = -1e300, se = 0;
        for (int c = 0; c < C; c++) {
            z[c] = w[c * (D + 1) + D];
            for (int k = 0; k < D; k++) z[c] += w[c * (D + 1) + k] * x[i * D + k];
            m = z[c] > m ? z[c] : m;
        }
        for (int c = 0; c < C; c++) se += exp(z[c] - m);
        for (int c = 0; c < C; c++) p[i * C + c] = (float)(exp(z[c] - m) / se);
    }
    static double H[P][P];
    const double h = 1e-3;
    for (int a = 0; a < P; a++)
        for (int bb = 0; bb < P; bb++) {
            double wa = w[a], wb = w[bb], f[4];
            for (int s = 0; s < 4; s++) {
                w[a] = wa + ((s & 1) ? -h : h);
                w[bb] = (a == bb ? w[a] : wb) + ((s & 2) ? -h : h);
                f[s] = ce(w, x, y, B, D, C, 0.1);
                w[a] = wa, w[bb] = wb;
            }
            H[a][bb] = (f[0] - f[1] - f[2] + f[3]) / (4 * h * h);
        }
    /* dense power iteration on the finite-difference Hessian */
    double v[P], u[P], lam = 0;
    for (int k = 0; k < P; k++) v[k] = 1.0 + 0.01 * k;
    for (int it = 0; it < 2000; it++) {
        double uu = 0, vu = 0, vv = 0;
        for (int a = 0; a < P; a++) {
            u[a] = 0;
            for (int bb = 0; bb < P; bb++) u[a] += H[a][bb] * v[bb];
            uu += u[a] * u[a], vu += v[a] * u[a], vv += v[a] * v[a];
        }
        lam = vu / vv;
        for (int a = 0; a < P; a++) v[a] = u[a] / sqrt(uu);
    }
    double got;
    CHECK(lb_head_gn_top(x, B, D, 1, p, C, &got) == LB_OK, "gn top: %s", lb_error_msg());
    CHECK_NEAR(got, lam, 0, 1e-3, "top eigenvalue vs the finite-difference Hessian");
    /* without the bias the curvature is that of W's block alone: no larger */
    double nob;
    CHECK(lb_head_gn_top(x, B, D, 0, p, C, &nob) == LB_OK && nob <= got * (1 + 1e-9) && nob > 0,
          "without bias %g <= %g", nob, got);
    /* a confident softmax has almost no curvature: scale 1 for a trained model */
    for (int i = 0; i < B; i++)
        for (int c = 0; c < C; c++) p[i * C + c] = c == y[i] ? 1.0f - 3e-4f : 1e-4f;
    double conf;
    CHECK(lb_head_gn_top(x, B, D, 1, p, C, &conf) == LB_OK && conf < got * 0.01,
          "confident softmax: %g against %g", conf, got);
}

static lb_net *zoo(const char *arch, lb_qkind kind) {
    lb_model_cfg mc;
    lb_model_cfg_default(&mc);
    snprintf(mc.arch, sizeof mc.arch, "%s", arch);
    mc.q.kind = kind;
    lb_net *n = NULL;
    if (lb_model_build(&mc, &n) != LB_OK || lb_net_plan(n, 8, 1) != LB_OK) {
        lb_net_free(n);
        return NULL;
    }
    lb_net_init(n, 3);
    return n;
}

/* The zoo's classifiers are found; the scale lands on the head's weight, bias and weight step,
 * and nowhere else; the cnn's head at init is as steep as docs/robust.md measured. */
static void test_zoo(void) {
    const char *arch[] = {"cnn", "resnet20", "mobilenetv2"};
    for (int a = 0; a < 3; a++) {
        lb_net *n = zoo(arch[a], LB_Q_LSQ);
        CHECK(n != NULL, "%s: %s", arch[a], lb_error_msg());
        if (!n) continue;
        int h = lb_head_node(n);
        CHECK(h > 0 && n->nodes[h].op == LB_OP_LINEAR && strcmp(n->nodes[h].name, "fc") == 0,
              "%s: head is fc (%d)", arch[a], h);
        int nseg = 0;
        lb_opt_segment *seg = lb_net_segments(n, &nseg);
        CHECK(seg != NULL, "segments");
        if (h > 0 && seg) {
            lb_head_rate_apply(n, h, seg, nseg, 0.25f);
            int scaled = 0, right = 1;
            for (int s = 0; s < nseg; s++) {
                int mine = s == n->nodes[h].pw || s == n->nodes[h].pb || s == n->nodes[h].pwq;
                scaled += seg[s].lr_scale != 1.0f;
                if ((seg[s].lr_scale == 0.25f) != mine) right = 0;
            }
            CHECK(right && scaled == 2 + (n->nodes[h].pb >= 0), "%s: %d segments scaled", arch[a],
                  scaled);
        }
        free(seg);
        if (a == 0 && h > 0) {
            float x[8 * 28 * 28], probs[8 * 10];
            for (int i = 0; i < 8 * 28 * 28; i++) x[i] = (float)((i * 7919) % 255) / 128.0f - 1.0f;
            const float *logits = lb_net_forward(n, x, 8, 1);
            int nc;
            int32_t y[8] = {0, 1, 2, 3, 4, 5, 6, 7};
            lb_xent_forward(8, 10, logits, y, 0, probs, &nc);
            double lam;
            CHECK(lb_head_curvature(n, h, 8, probs, &lam) == LB_OK && lam > 20 && lam < 5000,
                  "cnn head curvature at init %g", lam);
        }
        lb_net_free(n);
    }
}

int main(void) {
    test_bound();
    test_curvature();
    test_zoo();
    TEST_MAIN_END("test_head_rate");
}
