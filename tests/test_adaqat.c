/* AdaQAT's width update (lb_adaqat_update) on a toy problem with a known answer: a stub loss
 * L(b_w, b_a) = cw 2^-b_w + ca 2^-b_a stands in for the three forwards. Checks the oscillation
 * and freeze rule, the floor, the cap at 8, the lambda switch, determinism; then the net side:
 * learned layers of a model, applying and probing bits, the checkpoint JSON round trip and its
 * validation. Not the trainer (tests/cli/adaqat.sh). */
#include "lb_adaqat.h"
#include "lb_models.h"
#include "lb_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double stub(double cw, double ca, int bw, int ba) {
    return cw * ldexp(1, -bw) + ca * ldexp(1, -ba);
}

/* `steps` updates of a one-pair state from N = (nw, na), probing as the trainer does. */
static void run_toy(lb_adaqat *s, double cw, double ca, float nw, float na, int steps) {
    memset(s, 0, sizeof *s);
    s->nlayers = s->npairs = 1;
    s->lr = LB_ADAQAT_LR;
    s->lambda = LB_ADAQAT_LAMBDA;
    s->w[0].n = nw;
    s->a[0].n = na;
    for (int t = 0; t < steps; t++) {
        int bw = lb_bitwidth_bits(&s->w[0]), ba = lb_bitwidth_bits(&s->a[0]);
        int pw = !s->w[0].frozen && bw > 2, pa = !s->a[0].frozen && ba > 2;
        double L = stub(cw, ca, bw, ba);
        double Lw = pw ? stub(cw, ca, bw - 1, ba) : NAN, La = pa ? stub(cw, ca, bw, ba - 1) : NAN;
        lb_adaqat_update(s, 0, L, Lw, La, pw, pa);
    }
}

static void test_toy(void) {
    lb_adaqat s;
    /* cw = 1, ca = 0.5: activations fall to the floor (at b_a = 3, g_a = -1/16 + 0.02*b_w > 0
     * for b_w >= 4); then at b_w = 4, g_w = -1/16 + 0.02*2 < 0 (rise) and at b_w = 5, g_w =
     * -1/32 + 0.04 > 0 (fall): b_w oscillates 4 <-> 5 and freezes at 5 on its 11th rise from 4. */
    run_toy(&s, 1.0, 0.5, 4, 4, 5000);
    CHECK(lb_bitwidth_bits(&s.w[0]) == 5 && s.w[0].frozen, "weights frozen at 5 (got %d, %d)",
          lb_bitwidth_bits(&s.w[0]), s.w[0].frozen);
    CHECK(s.w[0].rises[4] == LB_ADAQAT_RISES + 1, "11 rises from 4, got %d", s.w[0].rises[4]);
    CHECK(lb_bitwidth_bits(&s.a[0]) == 2 && s.a[0].n == LB_ADAQAT_FLOOR && !s.a[0].frozen,
          "activations at the floor 1.5 (got %g)", (double)s.a[0].n);
    CHECK(lb_adaqat_lambda(&s) == 0.5f * LB_ADAQAT_LAMBDA, "lambda halves once weights settle");
    /* frozen means frozen */
    float n = s.w[0].n;
    run_toy(&s, 1.0, 0.5, 4, 4, 5000);
    CHECK(s.w[0].n == n, "same run, same bits (deterministic)");
    /* no loss sensitivity: only the cost acts, both fall to the floor and stay unfrozen */
    run_toy(&s, 0, 0, 8, 8, 2000);
    CHECK(s.w[0].n == LB_ADAQAT_FLOOR && s.a[0].n == LB_ADAQAT_FLOOR && !s.w[0].frozen &&
              !s.a[0].frozen,
          "cost only: floor (%g, %g)", (double)s.w[0].n, (double)s.a[0].n);
    CHECK(lb_adaqat_lambda(&s) == LB_ADAQAT_LAMBDA, "lambda stays while weights learn");
    /* a very sensitive loss: both rise to the cap 8, one rise from each of 4..7 */
    run_toy(&s, 100, 100, 4, 4, 2000);
    CHECK(s.w[0].n == 8 && s.a[0].n == 8, "cap at 8 (%g, %g)", (double)s.w[0].n, (double)s.a[0].n);
    CHECK(s.w[0].rises[4] == 1 && s.w[0].rises[7] == 1 && s.w[0].rises[8] == 0, "rise counts");
    /* one exact step: g_w = (L - Lw) + 0.02 * b_a, weights first, then g_a with the new b_w */
    memset(&s, 0, sizeof s);
    s.nlayers = s.npairs = 1;
    s.lr = 0.1f;
    s.lambda = 0.02f;
    s.w[0].n = 3.05f;
    s.a[0].n = 4.0f;
    lb_adaqat_update(&s, 0, 1.0, 0.5, 0.9, 1, 1); /* g_w = 0.5 + 0.08 -> N_w = 2.992 */
    CHECK(s.w[0].n == (float)(3.05f - 0.1 * (0.5 + 0.02 * 4)), "N_w after one step: %.9g",
          (double)s.w[0].n);
    CHECK(s.a[0].n == (float)(4.0 - 0.1 * (0.1 + 0.02 * 3)), "N_a uses the new b_w = 3: %.9g",
          (double)s.a[0].n);
    /* non-finite losses change nothing */
    float w0 = s.w[0].n;
    lb_adaqat_update(&s, 0, NAN, 0.5, 0.9, 1, 1);
    lb_adaqat_update(&s, 0, 1.0, INFINITY, NAN, 1, 1);
    CHECK(s.w[0].n == w0, "NaN losses skip the update");
    /* layer scope: only the pair whose turn it is moves */
    s.npairs = s.nlayers = 3;
    s.w[1].n = s.w[2].n = s.a[1].n = s.a[2].n = 5;
    CHECK(lb_adaqat_turn(&s, 7) == 1, "turn = step mod pairs");
    lb_adaqat_update(&s, 1, 1.0, 0.5, 0.9, 1, 1);
    CHECK(s.w[1].n < 5 && s.w[2].n == 5 && s.w[0].n == w0 && s.a[2].n == 5, "one pair moves");
}

static void test_net(void) {
    lb_model_cfg mc;
    lb_model_cfg_default(&mc);
    mc.in_c = 1, mc.in_h = mc.in_w = 28, mc.classes = 10;
    mc.q.kind = LB_Q_LSQ;
    mc.q.wbits = 4, mc.q.abits = 3;
    lb_net *n;
    CHECK(lb_model_build(&mc, &n) == LB_OK && lb_net_plan(n, 4, 1) == LB_OK, "cnn: %s",
          lb_error_msg());
    lb_adaqat s, t;
    CHECK(lb_adaqat_init(&s, n, LB_BITS_LAYER, 0.1f, 0.02f) == LB_OK, "init");
    CHECK(s.nlayers == 3 && s.npairs == 3, "cnn learns conv2..conv4 (first/last fixed): %d",
          s.nlayers);
    CHECK(s.w[0].n == 4 && s.a[2].n == 3, "widths start at the plan's bits");
    s.w[1].n = 2.5f;
    s.a[1].n = 6.2f;
    CHECK(lb_adaqat_apply(&s, n) == LB_OK, "apply");
    const lb_node *d = &n->nodes[s.node[1]];
    CHECK(d->wq.cfg.bits == 3 && d->aq.cfg.bits == 7 && d->wq.qp == 3, "bits = ceil(N): %d/%d",
          d->wq.cfg.bits, d->aq.cfg.bits);
    char lbits[1024];
    CHECK(lb_adaqat_layer_bits(n, lbits, sizeof lbits) == LB_OK && strstr(lbits, "conv3=3/7") &&
              strstr(lbits, "conv1=8/0"),
          "layer_bits '%s'", lbits);
    s.w[2].frozen = 1;
    s.a[0].rises[3] = 7;
    char *js = lb_adaqat_to_json(&s, n);
    CHECK(js != NULL, "to json");
    CHECK(lb_adaqat_init(&t, n, LB_BITS_LAYER, 0.1f, 0.02f) == LB_OK &&
              lb_adaqat_from_json(js, "x.ckpt", n, &t) == LB_OK,
          "from json: %s", lb_error_msg());
    CHECK(memcmp(t.w, s.w, sizeof s.w) == 0 && memcmp(t.a, s.a, sizeof s.a) == 0,
          "round trip exact");
    free(js);
    /* out of range, or not the bits the model was built with: refused */
    const char *bad[] = {
        "{\"scope\":\"layer\",\"layers\":[\"conv2\",\"conv3\",\"conv4\"],\"w\":{\"n\":[4,2.5,9],"
        "\"frozen\":[0,0,0],\"rises\":[[0,0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0,"
        "0]]},\"a\":{\"n\":[3,6.2,3],\"frozen\":[0,0,0],\"rises\":[[0,0,0,0,0,0,0,0,0],[0,0,0,0,"
        "0,0,0,0,0],[0,0,0,0,0,0,0,0,0]]}}",
        "{\"scope\":\"layer\",\"layers\":[\"conv2\",\"conv3\",\"conv4\"],\"w\":{\"n\":[4,3.5,4],"
        "\"frozen\":[0,0,0],\"rises\":[[0,0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0,0],[0,0,0,0,0,0,0,0,"
        "0]]},\"a\":{\"n\":[3,6.2,3],\"frozen\":[0,0,0],\"rises\":[[0,0,0,0,0,0,0,0,0],[0,0,0,0,"
        "0,0,0,0,0],[0,0,0,0,0,0,0,0,0]]}}",
        "{\"scope\":\"net\",\"layers\":[]}",
        "[1]",
    };
    for (int i = 0; i < 4; i++)
        CHECK(lb_adaqat_from_json(bad[i], "x.ckpt", n, &t) == LB_EFORMAT &&
                  strstr(lb_error_msg(), "x.ckpt"),
              "bad json %d refused: %s", i, lb_error_msg());
    /* commit keeps an initialized LSQ quantizer's range (Qp s), apply does not touch the step */
    {
        lb_node *c2 = &n->nodes[s.node[0]];
        lb_adaqat u;
        CHECK(lb_adaqat_init(&u, n, LB_BITS_LAYER, 0.1f, 0.02f) == LB_OK &&
                  lb_adaqat_apply(&u, n) == LB_OK,
              "fresh widths");
        float *sw = c2->wq.param, *sa = c2->aq.param;
        CHECK(c2->wq.cfg.bits == 4 && c2->aq.cfg.bits == 3 && c2->wq.qp == 7 && c2->aq.qp == 7,
              "conv2 W4 (Qp 7) A3 unsigned (Qp 7)");
        c2->wq.state[0] = c2->aq.state[0] = 1; /* as after the data-driven init */
        sw[0] = 0.07f, c2->wq.state[1] = 0.05f, sa[0] = 0.3f;
        u.w[0].n = 2.9f; /* W4 -> W3: Qp 7 -> 3 */
        u.a[0].n = 3.6f; /* A3 -> A4: Qp 7 -> 15 */
        CHECK(lb_adaqat_apply(&u, n) == LB_OK && sw[0] == 0.07f && sa[0] == 0.3f,
              "apply: steps unchanged");
        u.w[0].n = 4, u.a[0].n = 3;
        CHECK(lb_adaqat_apply(&u, n) == LB_OK, "back to W4A3");
        u.w[0].n = 2.9f, u.a[0].n = 3.6f;
        CHECK(lb_adaqat_commit(&u, n) == LB_OK && c2->wq.qp == 3 && c2->aq.qp == 15,
              "commit: W3A4");
        CHECK(fabsf(sw[0] - 0.07f * 7 / 3) < 1e-7f &&
                  fabsf(c2->wq.state[1] - 0.05f * 7 / 3) < 1e-7f &&
                  fabsf(sa[0] - 0.3f * 7 / 15) < 1e-7f,
              "commit: range kept, floor follows (%g %g %g)", (double)sw[0],
              (double)c2->wq.state[1], (double)sa[0]);
        CHECK(lb_adaqat_commit(&u, n) == LB_OK && fabsf(sw[0] - 0.07f * 7 / 3) < 1e-7f,
              "commit again at the same bits: nothing moves");
        c2->wq.state[0] = 0;
        u.w[0].n = 4;
        CHECK(lb_adaqat_commit(&u, n) == LB_OK && fabsf(sw[0] - 0.07f * 7 / 3) < 1e-7f,
              "before the init: the init will set the step for its bits");
        u.w[0].n = 4, u.a[0].n = 3;
        CHECK(lb_adaqat_apply(&u, n) == LB_OK, "restore");
    }
    /* net scope: one pair for all */
    CHECK(lb_adaqat_init(&t, n, LB_BITS_NET, 0.1f, 0.02f) == LB_OK && t.npairs == 1, "net");
    t.w[0].n = 2.1f;
    CHECK(lb_adaqat_apply(&t, n) == LB_OK && n->nodes[t.node[0]].wq.cfg.bits == 3 &&
              n->nodes[t.node[2]].wq.cfg.bits == 3,
          "net scope sets every layer");
    lb_net_free(n);
    /* fp32: nothing to learn */
    lb_model_cfg_default(&mc);
    mc.in_c = 1, mc.in_h = mc.in_w = 28, mc.classes = 10;
    CHECK(lb_model_build(&mc, &n) == LB_OK && lb_net_plan(n, 4, 1) == LB_OK, "fp32 cnn");
    CHECK(lb_adaqat_init(&t, n, LB_BITS_LAYER, 0.1f, 0.02f) == LB_EINVAL, "fp32 refused");
    lb_net_free(n);
}

int main(void) {
    test_toy();
    test_net();
    TEST_MAIN_END("test_adaqat");
}
