/* DoReFa weights and PACT activations against their PyTorch 1.13 twins (tests/torch/
 * ref_dorefa_pact.py, written from methods.md sec. 1). DoReFa: values equal (tanhf and
 * PyTorch's vectorized tanh may differ by an ulp, which could move an element sitting on a
 * rounding tie by one code: at most 1 in 1000 elements may, none does in these cases today), dx
 * to 1e-4 relative (PyTorch sums the max's share in float32). PACT: the init alpha to 1e-6
 * (PyTorch's float32 mean), values exact, dx to 1e-6 (PyTorch computes (dy*s)/s), dalpha to 1e-4
 * (float32 sum). Not the finite-difference checks (test_dorefa_pact.c). */
#include "lb_quant.h"
#include "lb_test.h"
#include "torch_ref.h"

#include <stdlib.h>

static float *load(const char *cname, const char *what, size_t n) {
    char name[96];
    snprintf(name, sizeof name, "dp_%s_%s", cname, what);
    return lbt_ref_load(name, n);
}

static void dorefa_case(const char *name, int bits, int per_channel, int ch, size_t inner) {
    size_t n = (size_t)ch * inner;
    float *x = load(name, "x", n), *dy = load(name, "dy", n), *y = load(name, "y", n);
    float *dx = load(name, "dx", n);
    float *cy = malloc(n * sizeof *cy), *cdx = malloc(n * sizeof *cdx);
    CHECK(x && dy && y && dx && cy && cdx, "%s: references present", name);
    if (!(x && dy && y && dx && cy && cdx)) goto out;
    lb_qcfg cfg = {.kind = LB_Q_DOREFA, .bits = bits, .per_channel = per_channel};
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, ch, inner, inner, NULL, NULL, NULL) == LB_OK, "%s bind", name);
    lb_quant_forward(&q, 1, x, cy, 1);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++) diff += cy[i] != y[i];
    CHECK(diff * 1000 <= n, "%s: %zu of %zu values differ", name, diff, n);
    if (diff) printf("  %s: %zu of %zu values one code apart (tanh ulps)\n", name, diff, n);
    lb_quant_backward(&q, 1, x, dy, cdx, 0);
    char what[64];
    snprintf(what, sizeof what, "%s dx", name);
    lbt_close(cdx, dx, n, 1e-6, 1e-4, what);
out:
    free(x), free(dy), free(y), free(dx), free(cy), free(cdx);
}

static void pact_case(const char *name, int bits, size_t outer, size_t inner, int init) {
    size_t n = outer * inner;
    float *x = load(name, "x", n), *dy = load(name, "dy", n), *y = load(name, "y", n);
    float *dx = load(name, "dx", n), *al = load(name, "alpha", 1), *da = load(name, "dalpha", 1);
    float *cy = malloc(n * sizeof *cy), *cdx = malloc(n * sizeof *cdx);
    CHECK(x && dy && y && dx && al && da && cy && cdx, "%s: references present", name);
    if (!(x && dy && y && dx && al && da && cy && cdx)) goto out;
    lb_qcfg cfg = {.kind = LB_Q_PACT, .bits = bits};
    float p[1], dp[1], st[2];
    lb_quant q;
    CHECK(lb_quant_bind(&q, &cfg, 1, inner, inner, p, dp, st) == LB_OK, "%s bind", name);
    if (init) {
        lb_quant_forward(&q, outer, x, cy, 1);
        CHECK_NEAR(p[0], al[0], 0, 1e-6, "pact init alpha");
    }
    p[0] = st[1] = al[0]; /* the same alpha on both sides from here (initialized: no init) */
    st[0] = 1.0f;
    lb_quant_forward(&q, outer, x, cy, 1);
    char what[64];
    snprintf(what, sizeof what, "%s y", name);
    lbt_close(cy, y, n, 0, 0, what);
    lb_quant_backward(&q, outer, x, dy, cdx, 0);
    snprintf(what, sizeof what, "%s dx", name);
    lbt_close(cdx, dx, n, 1e-6, 1e-6, what);
    snprintf(what, sizeof what, "%s dalpha", name);
    CHECK_NEAR(dp[0], da[0], 1e-5, 1e-4, what);
out:
    free(x), free(dy), free(y), free(dx), free(al), free(da), free(cy), free(cdx);
}

int main(void) {
    dorefa_case("dw2", 2, 0, 16, 72);
    dorefa_case("dw4", 4, 0, 16, 72);
    dorefa_case("dw7", 7, 0, 16, 72);
    dorefa_case("dwpc4", 4, 1, 12, 54);
    dorefa_case("dwide3", 3, 0, 10, 40);
    pact_case("a2init", 2, 8, 576, 1);
    pact_case("a2", 2, 8, 576, 0);
    pact_case("a4init", 4, 8, 576, 1);
    pact_case("a4", 4, 8, 576, 0);
    pact_case("asigned4", 4, 4, 100, 0);
    TEST_MAIN_END("test_torch_dorefa_pact");
}
