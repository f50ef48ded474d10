/* conv2d and linear against PyTorch 1.13 (values from tests/torch/ref_conv.py in $LOWBIT_REFS):
 * forward and all gradients, the fast kernels with 1 and 2 threads (with and without SIMD) and the
 * references. Tolerance: |ours - torch| <= 1e-4 * max|torch| + 1e-4 * |torch| elementwise (float
 * sums of the same terms in another order). */
#include "lb_ops.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct tcase {
    const char *name;
    int n, cin, h, w, cout, k, s, p, g; /* must match CONV_CASES in ref_conv.py */
} tcase;

static const tcase cases[] = {
    {"3x3s1", 3, 5, 9, 8, 8, 3, 1, 1, 1},   {"3x3s2", 2, 4, 9, 10, 6, 3, 2, 1, 1},
    {"dw3x3s1", 2, 6, 8, 8, 6, 3, 1, 1, 6}, {"dw3x3s2", 2, 6, 9, 9, 6, 3, 2, 1, 6},
    {"group2", 2, 6, 7, 7, 4, 3, 1, 1, 2},  {"1x1", 2, 5, 6, 6, 7, 1, 1, 0, 1},
};

static float *load(const char *prefix, const char *t, size_t n) {
    char name[128];
    snprintf(name, sizeof name, "%s_%s", prefix, t);
    float *p = lbt_ref_load(name, n);
    CHECK(p != NULL, "reference %s", name);
    return p;
}

static double maxabs(const float *a, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(a[i]));
    return m;
}

static void cmp(const float *a, const float *t, size_t n, const char *what) {
    lbt_close(a, t, n, 1e-4 * maxabs(t, n), 1e-4, what);
}

static void test_case(const tcase *c) {
    lb_conv2d_desc d;
    if (lb_conv2d_desc_init(&d, c->n, c->cin, c->h, c->w, c->cout, c->k, c->s, c->p, c->g) !=
        LB_OK) {
        CHECK(0, "%s: %s", c->name, lb_error_msg());
        return;
    }
    const size_t nx = (size_t)d.n * d.cin * d.h * d.w, ny = (size_t)d.n * d.cout * d.oh * d.ow;
    const size_t nw = (size_t)d.cout * (d.cin / d.groups) * d.kh * d.kw;
    char prefix[64], what[128];
    snprintf(prefix, sizeof prefix, "conv_%s", c->name);
    float *x = load(prefix, "x", nx), *w = load(prefix, "w", nw), *b = load(prefix, "b", d.cout);
    float *dy = load(prefix, "dy", ny), *y = load(prefix, "y", ny), *dx = load(prefix, "dx", nx);
    float *dw = load(prefix, "dw", nw), *db = load(prefix, "db", d.cout);
    if (x && w && b && dy && y && dx && dw && db) {
        float *y1 = malloc(ny * sizeof *y1), *dx1 = malloc(nx * sizeof *dx1);
        float *dw1 = malloc(nw * sizeof *dw1), *db1 = malloc(d.cout * sizeof *db1);
        lb_conv2d_forward_ref(&d, x, w, b, y1);
        snprintf(what, sizeof what, "%s ref y", c->name);
        cmp(y1, y, ny, what);
        lb_conv2d_backward_ref(&d, x, w, dy, dx1, 0, dw1, db1);
        snprintf(what, sizeof what, "%s ref dx", c->name);
        cmp(dx1, dx, nx, what);
        snprintf(what, sizeof what, "%s ref dw", c->name);
        cmp(dw1, dw, nw, what);
        snprintf(what, sizeof what, "%s ref db", c->name);
        cmp(db1, db, d.cout, what);
        for (int simd = 1; simd >= 0; simd--)
            for (int nt = 1; nt <= 2; nt++) {
                lb_threads_set(nt);
                if (!simd) setenv("LOWBIT_CONV_SIMD", "0", 1);
                float *sc = malloc((lb_conv2d_scratch_floats(&d, nt) + 1) * sizeof *sc);
                lb_conv2d_forward(&d, x, w, b, y1, sc);
                lb_conv2d_backward(&d, x, w, dy, dx1, 0, dw1, db1, sc);
                const char *tag = simd ? "" : " no-SIMD";
                snprintf(what, sizeof what, "%s fast nt%d%s y", c->name, nt, tag);
                cmp(y1, y, ny, what);
                snprintf(what, sizeof what, "%s fast nt%d%s dx", c->name, nt, tag);
                cmp(dx1, dx, nx, what);
                snprintf(what, sizeof what, "%s fast nt%d%s dw", c->name, nt, tag);
                cmp(dw1, dw, nw, what);
                snprintf(what, sizeof what, "%s fast nt%d%s db", c->name, nt, tag);
                cmp(db1, db, d.cout, what);
                free(sc);
                unsetenv("LOWBIT_CONV_SIMD");
            }
        free(y1), free(dx1), free(dw1), free(db1);
    }
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

static void test_linear(void) {
    const int n = 4, in = 20, out = 7; /* LINEAR in ref_conv.py */
    float *x = load("linear", "x", (size_t)n * in), *w = load("linear", "w", (size_t)out * in);
    float *b = load("linear", "b", out), *dy = load("linear", "dy", (size_t)n * out);
    float *y = load("linear", "y", (size_t)n * out), *dx = load("linear", "dx", (size_t)n * in);
    float *dw = load("linear", "dw", (size_t)out * in), *db = load("linear", "db", out);
    if (x && w && b && dy && y && dx && dw && db) {
        float y1[4 * 7], dx1[4 * 20], dw1[7 * 20], db1[7];
        for (int fast = 0; fast < 2; fast++) {
            const char *tag = fast ? "linear fast" : "linear ref";
            char what[64];
            (fast ? lb_linear_forward : lb_linear_forward_ref)(n, in, out, x, w, b, y1);
            (fast ? lb_linear_backward : lb_linear_backward_ref)(n, in, out, x, w, dy, dx1, 0, dw1,
                                                                 db1);
            snprintf(what, sizeof what, "%s y", tag);
            cmp(y1, y, (size_t)n * out, what);
            snprintf(what, sizeof what, "%s dx", tag);
            cmp(dx1, dx, (size_t)n * in, what);
            snprintf(what, sizeof what, "%s dw", tag);
            cmp(dw1, dw, (size_t)out * in, what);
            snprintf(what, sizeof what, "%s db", tag);
            cmp(db1, db, out, what);
        }
    }
    free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
}

int main(void) {
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) test_case(&cases[i]);
    test_linear();
    lb_threads_set(1);
    TEST_MAIN_END("test_torch_conv");
}
