/* Tests of a chip on a network (lb_chip_*, src/faults/fnet.c): the eval forward's weights against
 * scalar references (faulty code, nearest reachable code, nearest own level with variability) for
 * LSQ, fixed and the three reg kinds; a healthy map changes nothing, bit for bit; the snap of the
 * float weights equals what the eval forward uses and is idempotent; the integer model of a snapped
 * network holds the chip's codes; the errors. Not the map files (test_faults.c) nor the CLI. */
#include "lb_faults.h"
#include "lb_int.h"
#include "lb_nn.h"
#include "lb_test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define B 4
#define IMG (1 * 8 * 8)

/* c1: conv, LSQ 4-bit signed per channel, float input; c2: conv with weight quantizer `wq2`, LSQ
 * unsigned 4-bit input; fc: linear, fixed 4-bit, LSQ unsigned input. Trained-forward once so
 * every quantizer is initialized from the data. */
/* 1: c2 has 1200 channels (43,200 weights), so a chip's pass runs in blocks on several threads */
static int g_wide;

static lb_net *make_net(lb_qcfg wq2, const float *x) {
    lb_net *n = lb_net_new(1, 8, 8);
    int c1 = lb_net_conv(n, "c1", 0, 4, 3, 1, 1, 1, 1);
    int r1 = lb_net_act(n, LB_OP_RELU, c1);
    int c2 = lb_net_conv(n, "c2", r1, g_wide ? 1200 : 6, 3, 2, 1, 1, 1);
    int r2 = lb_net_act(n, LB_OP_RELU, c2);
    int f = lb_net_act(n, LB_OP_FLATTEN, r2);
    int fc = lb_net_linear(n, "fc", f, 5, 1);
    lb_qcfg lsq = {.kind = LB_Q_LSQ, .bits = 4, .is_signed = 1, .per_channel = 1}, none = {0};
    lb_qcfg act = {.kind = LB_Q_LSQ, .bits = 4},
            fx = {.kind = LB_Q_FIXED, .bits = 4, .is_signed = 1};
    lb_net_set_quant(n, c1, &lsq, &none);
    lb_net_set_quant(n, c2, &wq2, &act);
    lb_net_set_quant(n, fc, &fx, &act);
    if (lb_net_plan(n, B, 1) != LB_OK) {
        fprintf(stderr, "plan: %s\n", lb_error_msg());
        lb_net_free(n);
        return NULL;
    }
    lb_net_init(n, 7);
    lb_net_forward(n, x, B, 1);
    return n;
}

/* 1: reg layers stored in two's complement (lb_fmap_specs_twos); LSQ and fixed keep theirs */
static int g_twos;
/* 1: signed LSQ and fixed layers stored in sign-magnitude (lb_fmap_specs_signmag) */
static int g_signmag;

static void specs_of(lb_net *n, lb_flayer_spec *sp, int *ns) {
    CHECK(lb_fmap_specs_of_net(n, sp, 8, ns) == LB_OK && *ns == 3, "3 coded layers (%d)", *ns);
    int reg = 0;
    for (int i = 0; i < n->nnodes; i++) reg += n->nodes[i].wqcfg.kind == LB_Q_REG;
    if (g_twos) CHECK(lb_fmap_specs_twos(sp, *ns) == reg, "twos: exactly the %d reg layer(s)", reg);
    if (g_signmag)
        CHECK(lb_fmap_specs_signmag(sp, *ns) == 3 - reg, "signmag: exactly the %d LSQ/fixed layers",
              3 - reg);
}

static void inputs(float *x) {
    lb_rng r;
    lb_rng_seed(&r, 11);
    for (int i = 0; i < B * IMG; i++) x[i] = lb_rng_uniform(&r) * 2.0f - 1.0f;
}

/* The value the chip should hold for weight i of coded node d (scalar references only). */
static float expect_value(const lb_node *d, const lb_flayer *L, size_t i, float w, int k_reg,
                          int nearest, int *code_out, int *held_out) {
    const lb_quant *q = &d->wq;
    int b = L->spec.bits, ch = q->ch > 1 ? (int)(i / q->inner) : 0;
    int reg = d->wqcfg.kind == LB_Q_REG;
    /* a reg index in two's complement: the signed code k - 2^(b-1) (lb_faults.h) */
    int twos_reg = reg && L->spec.enc == LB_FENC_TWOS, half = twos_reg ? 1 << (b - 1) : 0;
    int code;
    float s = reg ? 0 : lb_quant_step(q, ch);
    if (reg) {
        code = k_reg - half;
    } else {
        float t = w / s;
        t = t < -q->qn ? (float)-q->qn : t > q->qp ? (float)q->qp : t;
        code = (int)rintf(t);
    }
    int held = nearest ? lb_fault_nearest_code(code, b, L->spec.enc, L->sa0[i], L->sa1[i])
                       : lb_fault_code(code, b, L->spec.enc, L->sa0[i], L->sa1[i]);
    *code_out = code + half, *held_out = held + half; /* reg: as level indices */
    float R[9], a[256];
    int sm = L->spec.enc == LB_FENC_SIGNMAG;
    if (reg) /* the deployed levels: what the eval snaps to and the indices index */
        lb_quant_reg_R_deployed(q, ch, R);
    else if (sm) /* a sign cell (no magnitude) and b-1 magnitude cells */
        lb_fault_R_signmag(s, b, R);
    else
        lb_fault_R_twos(s, b, R);
    const float *v = L->var ? L->var + i * (size_t)b : NULL;
    if (twos_reg && !v) { /* the index levels, held at pattern p ^ 2^(b-1) */
        float ak[256];
        lb_fault_levels(R, b, LB_FENC_INDEX, NULL, ak);
        for (unsigned p = 0; p < (1u << b); p++) a[p] = ak[p ^ (unsigned)half];
    } else if (twos_reg) { /* the top cell counts negatively: -R_{b-1}, offset R_b - R_{b-1} */
        float Rt[9];
        memcpy(Rt, R, sizeof Rt);
        Rt[b - 1] = -R[b - 1];
        Rt[b] = R[b] - R[b - 1];
        lb_fault_levels(Rt, b, LB_FENC_INDEX, v, a);
    } else {
        lb_fault_levels(R, b, sm ? LB_FENC_SIGNMAG : LB_FENC_INDEX, v, a);
    }
    int faulty = L->sa0[i] | L->sa1[i];
    for (int j = 0; v && j < b; j++) faulty |= v[j] != 1.0f;
    if (nearest == 2 && faulty) { /* own level: every pattern the programmer can write */
        unsigned best = 0;
        for (unsigned p = 0; p < (1u << b); p++) {
            unsigned h = (p & ~L->sa0[i]) | L->sa1[i], hb = (best & ~L->sa0[i]) | L->sa1[i];
            if (fabsf(w - a[h]) < fabsf(w - a[hb])) best = p;
        }
        best = (best & ~L->sa0[i]) | L->sa1[i];
        *held_out = lb_fault_value(best, b, L->spec.enc) + half;
        return a[best];
    }
    return a[lb_fault_pattern(held, b, L->spec.enc)];
}

/* The eval forward's weights of every coded layer against expect_value. */
static void check_values(lb_net *n, lb_chip *c, const float *x, int nearest, const char *what) {
    lb_net_forward(n, x, B, 0);
    int bad = 0, changed = 0, total = 0;
    for (int i = 0; i < n->nnodes; i++) {
        if (c->layer[i] < 0) continue;
        const lb_node *d = &n->nodes[i];
        const lb_flayer *L = &c->map->layers[c->layer[i]];
        const float *w = n->param + n->params[d->pw].off;
        unsigned char *k = calloc(L->spec.n, 1);
        if (d->wqcfg.kind == LB_Q_REG) lb_quant_reg_codes(&d->wq, 1, w, k);
        for (size_t j = 0; j < L->spec.n; j++) {
            int code, held;
            float v = expect_value(d, L, j, w[j], k[j], nearest, &code, &held);
            if (!(v == d->wqbuf[j])) {
                if (bad++ < 3)
                    fprintf(stderr, "%s: %s[%zu] code %d held %d: %.9g, want %.9g\n", what, d->name,
                            j, code, held, d->wqbuf[j], v);
            }
            changed += code != held;
            total++;
        }
        free(k);
    }
    CHECK(bad == 0, "%s: %d weights differ from the scalar reference", what, bad);
    uint64_t ch, tot;
    lb_chip_count(c, &ch, &tot);
    CHECK(ch == (uint64_t)changed && tot == (uint64_t)total, "%s: count %llu/%llu vs %d/%d", what,
          (unsigned long long)ch, (unsigned long long)tot, changed, total);
}

static void test_kind(lb_qcfg wq2, const char *name) {
    float x[B * IMG];
    inputs(x);
    lb_net *n = make_net(wq2, x);
    CHECK(n != NULL, "%s: net", name);
    if (!n) return;
    lb_flayer_spec sp[8];
    int ns = 0;
    specs_of(n, sp, &ns);
    const float *y = lb_net_forward(n, x, B, 0);
    float ref[B * 5], got[B * 5];
    memcpy(ref, y, sizeof ref);

    /* healthy map with multipliers all 1: nothing changes, bit for bit, nor after the snap */
    lb_fmap m;
    CHECK(lb_fmap_create(&m, "tiny", sp, ns, 1) == LB_OK, "create");
    CHECK(lb_fmap_draw_faults(&m, 0.0, 0.5, 3) == LB_OK &&
              lb_fmap_draw_var(&m, LB_FVAR_GAUSS, 0.0, 4) == LB_OK,
          "draw rate 0, sigma 0");
    CHECK(!lb_fmap_has_var(&m, NULL, NULL, NULL), "multipliers all 1: no variability");
    lb_chip c;
    memset(&c, 0, sizeof c);
    CHECK(lb_chip_attach(&c, n, "tiny", &m, "healthy", 0) == LB_OK, "attach: %s", lb_error_msg());
    char what[64];
    float *w0 = malloc(n->nparam * sizeof *w0);
    memcpy(w0, n->param, n->nparam * sizeof *w0);
    if (g_signmag) { /* sign-magnitude holds -2^(b-1) as -(2^(b-1)-1): those codes, and no other */
        snprintf(what, sizeof what, "%s healthy", name);
        check_values(n, &c, x, 0, what);
    } else {
        memcpy(got, lb_net_forward(n, x, B, 0), sizeof got);
        CHECK(!memcmp(got, ref, sizeof ref), "%s: healthy chip changes the logits", name);
        CHECK(lb_chip_snap_weights(&c) == LB_OK, "snap");
        memcpy(got, lb_net_forward(n, x, B, 0), sizeof got);
        CHECK(!memcmp(got, ref, sizeof ref), "%s: healthy snap changes the logits", name);
    }
    lb_chip_detach(&c);
    CHECK(n->wq_hook == NULL, "detach removes the hook");
    memcpy(n->param, w0, n->nparam * sizeof *w0);

    /* stuck bits (both kinds), then nearest reachable, then lognormal variability */
    CHECK(lb_fmap_draw_faults(&m, 0.2, 0.5, 5) == LB_OK, "draw 20%%");
    for (int nearest = 0; nearest < 2; nearest++) {
        CHECK(lb_chip_attach(&c, n, "tiny", &m, "faulty", nearest) == LB_OK, "attach");
        snprintf(what, sizeof what, "%s faults%s", name, nearest ? " nearest" : "");
        check_values(n, &c, x, nearest, what);
        memcpy(got, lb_net_forward(n, x, B, 0), sizeof got);
        CHECK(memcmp(got, ref, sizeof ref) != 0, "%s: a 20%% chip changes the logits", what);
        /* the snap: the float weights become the eval weights; again, nothing moves */
        CHECK(lb_chip_snap_weights(&c) == LB_OK, "snap");
        float *w1 = malloc(n->nparam * sizeof *w1);
        memcpy(w1, n->param, n->nparam * sizeof *w1);
        float chip_logits[B * 5];
        memcpy(chip_logits, lb_net_forward(n, x, B, 0), sizeof chip_logits);
        CHECK(!memcmp(chip_logits, got, sizeof got), "%s: snapped + chip = chip", what);
        lb_chip_snap_weights(&c);
        CHECK(!memcmp(w1, n->param, n->nparam * sizeof *w1), "%s: snap is idempotent", what);
        lb_chip_detach(&c);
        memcpy(got, lb_net_forward(n, x, B, 0), sizeof got);
        CHECK(!memcmp(chip_logits, got, sizeof got), "%s: snapped net without chip = chip", what);
        free(w1);
        memcpy(n->param, w0, n->nparam * sizeof *w0);
    }
    CHECK(lb_fmap_draw_var(&m, LB_FVAR_LOGNORMAL, 0.3, 6) == LB_OK, "draw var");
    int vl = -1, vb = -1;
    uint64_t vw = 0;
    CHECK(lb_fmap_has_var(&m, &vl, &vw, &vb) && vl == 0 && vw == 0 && vb == 0,
          "variability found at its first cell (%d %llu %d)", vl, (unsigned long long)vw, vb);
    CHECK(lb_chip_attach(&c, n, "tiny", &m, "var", 0) == LB_OK, "attach");
    CHECK(c.nearest == LB_CHIP_OWN_LEVEL, "a map with multipliers programs the nearest own level");
    snprintf(what, sizeof what, "%s faults+var", name);
    check_values(n, &c, x, LB_CHIP_OWN_LEVEL, what);
    /* the snap with multipliers: every coded weight becomes its own level, as the eval uses it */
    float *eval_w = malloc(n->nparam * sizeof *eval_w);
    memcpy(eval_w, n->param, n->nparam * sizeof *eval_w);
    for (int i = 0; i < n->nnodes; i++)
        if (c.layer[i] >= 0)
            memcpy(eval_w + n->params[n->nodes[i].pw].off, n->nodes[i].wqbuf,
                   n->params[n->nodes[i].pw].n * sizeof *eval_w);
    CHECK(lb_chip_snap_weights(&c) == LB_OK, "snap");
    CHECK(!memcmp(eval_w, n->param, n->nparam * sizeof *eval_w),
          "%s: snapped weights = the eval forward's weights", what);
    lb_chip_snap_weights(&c);
    CHECK(!memcmp(eval_w, n->param, n->nparam * sizeof *eval_w), "%s: snap is idempotent", what);
    free(eval_w);
    lb_chip_detach(&c);
    lb_fmap_free(&m);
    free(w0);
    lb_net_free(n);
}

/* The integer model of a snapped network holds the chip's codes, weight for weight. */
static void test_integer(lb_qcfg wq2, const char *name) {
    float x[B * IMG];
    inputs(x);
    lb_net *n = make_net(wq2, x);
    if (!n) return;
    lb_flayer_spec sp[8];
    int ns = 0;
    specs_of(n, sp, &ns);
    lb_fmap m;
    lb_fmap_create(&m, "tiny", sp, ns, 0);
    lb_fmap_draw_faults(&m, 0.15, 0.3, 9);
    lb_chip c;
    memset(&c, 0, sizeof c);
    CHECK(lb_chip_attach(&c, n, "tiny", &m, "int", 0) == LB_OK, "attach");
    /* the chip's codes from the unsnapped weights (scalar references) */
    int *held[3];
    int li = 0;
    for (int i = 0; i < n->nnodes; i++) {
        if (c.layer[i] < 0) continue;
        const lb_node *d = &n->nodes[i];
        const lb_flayer *L = &m.layers[c.layer[i]];
        const float *w = n->param + n->params[d->pw].off;
        unsigned char k[512];
        if (d->wqcfg.kind == LB_Q_REG) lb_quant_reg_codes(&d->wq, 1, w, k);
        held[li] = malloc(L->spec.n * sizeof(int));
        for (size_t j = 0; j < L->spec.n; j++) {
            int code;
            expect_value(d, L, j, w[j], k[j < 512 ? j : 0], 0, &code, &held[li][j]);
            /* fixed reg levels are stored as odd codes 2k - (2^b - 1) (docs/integer.md) */
            if (d->wqcfg.kind == LB_Q_REG && d->wqcfg.levels == LB_REG_FIXED)
                held[li][j] = 2 * held[li][j] - d->wq.qp;
            else if (d->wqcfg.kind == LB_Q_REG)
                held[li][j] -= 1 << (L->spec.bits - 1); /* step: index -> LSQ code */
        }
        li++;
    }
    CHECK(lb_chip_snap_weights(&c) == LB_OK, "snap");
    const float mean[3] = {0, 0, 0}, sd[3] = {1, 1, 1};
    lb_int_model *im = NULL;
    CHECK(lb_int_from_net(n, mean, sd, &im) == LB_OK, "%s: integer model: %s", name,
          lb_error_msg());
    if (im) {
        int bad = 0, conv = 0;
        for (int o = 0; o < im->nops; o++) {
            const lb_int_op *op = &im->ops[o];
            if (op->kind != LB_IOP_CONV) continue;
            size_t K = (size_t)op->cin / op->groups * op->k * op->k;
            for (size_t j = 0; j < (size_t)op->cout * K; j++) bad += op->w[j] != held[conv][j];
            conv++;
        }
        CHECK(conv == 3 && bad == 0, "%s: integer codes = chip codes (%d layers, %d differ)", name,
              conv, bad);
        lb_int_free(im);
    }
    for (int j = 0; j < li; j++) free(held[j]);
    lb_chip_detach(&c);
    lb_fmap_free(&m);
    lb_net_free(n);
}

static void test_errors(void) {
    float x[B * IMG];
    inputs(x);
    lb_qcfg lsq3 = {.kind = LB_Q_LSQ, .bits = 3, .is_signed = 1};
    lb_net *n = make_net(lsq3, x);
    if (!n) return;
    lb_flayer_spec sp[8];
    int ns = 0;
    specs_of(n, sp, &ns);
    lb_chip c;
    memset(&c, 0, sizeof c);
    lb_fmap m;
    lb_fmap_create(&m, "tiny", sp, ns, 0);
    CHECK(lb_chip_attach(&c, n, "other", &m, "m.lbmap", 0) == LB_ESHAPE &&
              strstr(lb_error_msg(), "m.lbmap") && strstr(lb_error_msg(), "other"),
          "another model: %s", lb_error_msg());
    lb_fmap_free(&m);
    sp[1].bits = 4; /* a map made for another bit-width of c2 */
    lb_fmap_create(&m, "tiny", sp, ns, 0);
    CHECK(lb_chip_attach(&c, n, "tiny", &m, "m.lbmap", 0) == LB_ESHAPE &&
              strstr(lb_error_msg(), "'c2'") && strstr(lb_error_msg(), "bits"),
          "another bit-width: %s", lb_error_msg());
    CHECK(n->wq_hook == NULL, "no hook after a failed attach");
    lb_chip_detach(&c);
    CHECK(lb_chip_open(&c, n, "tiny", "/nonexistent/chip.lbmap", 0) != LB_OK &&
              strstr(lb_error_msg(), "/nonexistent/chip.lbmap"),
          "missing file: %s", lb_error_msg());
    lb_chip_detach(&c);
    lb_net_free(n);
    /* a float network: nothing to hold */
    lb_net *f = lb_net_new(1, 8, 8);
    int c1 = lb_net_conv(f, "c1", 0, 2, 3, 1, 1, 1, 0);
    (void)c1;
    CHECK(lb_net_plan(f, 1, 1) == LB_OK, "plan");
    CHECK(lb_chip_attach(&c, f, "tiny", &m, "m.lbmap", 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "float"),
          "float model: %s", lb_error_msg());
    CHECK(lb_chip_open(&c, f, "tiny", "/nonexistent/chip.lbmap", 0) == LB_EINVAL &&
              strstr(lb_error_msg(), "float"),
          "float model before the file: %s", lb_error_msg());
    lb_chip_detach(&c);
    lb_fmap_free(&m);
    lb_net_free(f);
}

int main(void) {
    lb_qcfg lsq = {.kind = LB_Q_LSQ, .bits = 3, .is_signed = 1};
    lb_qcfg regfx = {.kind = LB_Q_REG, .bits = 3, .is_signed = 1, .levels = LB_REG_FIXED};
    lb_qcfg regst = {.kind = LB_Q_REG, .bits = 3, .is_signed = 1, .levels = LB_REG_STEP};
    lb_qcfg regle = {
        .kind = LB_Q_REG, .bits = 3, .is_signed = 1, .per_channel = 1, .levels = LB_REG_LEARNED};
    test_kind(lsq, "lsq");
    test_kind(regfx, "reg fixed");
    test_kind(regst, "reg step");
    test_kind(regle, "reg learned");
    test_integer(lsq, "lsq");
    test_integer(regfx, "reg fixed");
    test_integer(regst, "reg step");
    /* the reg kinds stored in two's complement (faults map --reg-encoding twos) */
    g_twos = 1;
    test_kind(regfx, "reg fixed, twos");
    test_kind(regst, "reg step, twos");
    test_kind(regle, "reg learned, twos");
    test_kind(lsq, "lsq, twos asked (no reg layer: unchanged)");
    test_integer(regfx, "reg fixed, twos");
    test_integer(regst, "reg step, twos");
    g_twos = 0;
    /* signed LSQ and fixed layers in sign-magnitude (faults map --lsq-encoding signmag) */
    g_signmag = 1;
    test_kind(lsq, "lsq, signmag");
    test_kind(regle, "reg learned + lsq/fixed signmag");
    test_integer(lsq, "lsq, signmag");
    test_integer(regst, "reg step + lsq/fixed signmag");
    g_signmag = 0;
    /* a layer of many blocks, on one and two threads, against the same scalar references */
    g_wide = 1;
    for (int t = 1; t <= 2; t++) {
        lb_threads_set(t);
        test_kind(regle, t == 1 ? "wide reg learned, 1 thread" : "wide reg learned, 2 threads");
        test_kind(lsq, t == 1 ? "wide lsq, 1 thread" : "wide lsq, 2 threads");
    }
    g_wide = 0;
    test_errors();
    TEST_MAIN_END("test_chip");
}
