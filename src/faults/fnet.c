/* A chip on a network: a checked fault map attached to a planned lb_net so that its eval forward
 * uses the weights as that chip holds them, and the snap of the float weights to those values.
 * Not the map files (fmap*.c), not the regularizers (freg.c), not fine-tuning. Rules in
 * lb_faults.h; the why in docs/faults.md. */
#include "lb_faults.h"
#include "lb_nn.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The uniform quantizers' code of w (lb_quant_uniform_forward's rule: true division, clamp,
 * round half to even), so the stored code is exactly the one the float eval and the integer
 * model use. A NaN weight stores the lowest code, as a reg quantizer's NaN stores its lowest
 * level. */
static int uniform_code(float w, float s, int qn, int qp) {
    float t = w / s, lo = (float)-qn, hi = (float)qp;
    if (t != t) return -qn;
    t = t < lo ? lo : t > hi ? hi : t;
    return (int)rintf(t);
}

/* LB_CHIP_OWN_LEVEL: the pattern the chip ends up holding when the weight is programmed with the
 * code whose value on this chip (stuck cells applied, then its own multipliers) is nearest to w,
 * ties to the lowest pattern. A healthy weight keeps its code p (its levels are the quantizer's,
 * and p is the nearest of them by the quantizer's own rounding). */
static unsigned own_level(float w, const float *R, const float *a, int b, lb_fenc enc,
                          const float *v, unsigned s0, unsigned s1, unsigned p) {
    int healthy = !(s0 | s1);
    for (int j = 0; v && healthy && j < b; j++) healthy = v[j] == 1.0f;
    if (healthy) return p;
    unsigned best = lb_fault_apply(0, s0, s1);
    float bd = INFINITY;
    for (unsigned q = 0; q < (1u << b); q++) {
        unsigned h = lb_fault_apply(q, s0, s1);
        float d = fabsf(w - (v ? lb_fault_level_at(R, b, enc, v, h) : a[h]));
        if (d < bd) bd = d, best = h;
    }
    return best;
}

/* R of the quantizer of node d, channel ch, in layer L's encoding, and the levels a[p] of the
 * patterns. An unsigned uniform grid (index encoding) is s * [2^0, .., 2^(b-1)] with no offset:
 * its code is its own index. A reg layer in two's complement permutes its index levels (the same
 * floats as the quantizer's, whatever rounding Rt's offset had). */
static void R_of(const lb_node *d, const lb_flayer *L, int ch, float *R, float *a) {
    const lb_quant *q = &d->wq;
    int b = L->spec.bits;
    if (d->wqcfg.kind == LB_Q_REG) {
        lb_quant_reg_R_deployed(q, ch, R); /* the levels the eval snaps to and the indices index */
        lb_fault_levels(R, b, LB_FENC_INDEX, NULL, a);
        if (L->spec.enc != LB_FENC_TWOS) return;
        float Rt[LB_FMAX_BITS + 1], ak[1 << LB_FMAX_BITS];
        lb_fault_R_reg_twos(R, b, Rt);
        memcpy(R, Rt, (size_t)(b + 1) * sizeof *R);
        memcpy(ak, a, sizeof(float) << b);
        for (unsigned p = 0; p < (1u << b); p++) a[p] = ak[p ^ (1u << (b - 1))];
        return;
    }
    lb_fault_R_uniform(lb_quant_step(q, ch), b, L->spec.enc, R);
    lb_fault_levels(R, b, L->spec.enc, NULL, a);
}

/* One coded layer: from the float weights w, the chip's values into wq where they differ from
 * what wq holds (wq may be NULL: count only). Returns how many weights hold another code. */
static uint64_t layer_pass(const lb_chip *c, const lb_node *d, const lb_flayer *L, const float *w,
                           float *wq) {
    const lb_quant *q = &d->wq;
    int b = L->spec.bits, reg = d->wqcfg.kind == LB_Q_REG;
    lb_fenc enc = L->spec.enc;
    if (reg) lb_quant_reg_codes(q, 1, w, c->k); /* cannot fail: the kind is reg */
    /* a reg index in two's complement is the signed code k - 2^(b-1) */
    int shift = reg && enc == LB_FENC_TWOS ? 1 << (b - 1) : 0;
    /* blocks of weights in parallel (the snap runs every step with the chip in the forward);
     * each weight is computed alone and the count is an integer sum: the same on any thread
     * count. A block recomputes its channel's levels where the channel changes. */
    const long blk = 4096, n = (long)L->spec.n, nblk = (n + blk - 1) / blk;
    uint64_t changed = 0;
#pragma omp parallel for schedule(static) reduction(+ : changed) if (nblk > 1)
    for (long bi = 0; bi < nblk; bi++) {
        float R[LB_FMAX_BITS + 1], a[1 << LB_FMAX_BITS], s = 0;
        size_t i0 = (size_t)bi * (size_t)blk, inner = q->ch > 1 ? q->inner : (size_t)n;
        size_t end = i0 + (size_t)blk < (size_t)n ? i0 + (size_t)blk : (size_t)n;
        int ch = 0;
        size_t next = i0; /* where the levels of channel ch are (re)computed: first at i0 */
        for (size_t i = i0; i < end; i++) {
            if (i == next) {
                ch = (int)(i / inner);
                R_of(d, L, ch, R, a);
                s = reg ? 0 : lb_quant_step(q, ch);
                next = (size_t)(ch + 1) * inner;
            }
            int code = reg ? (int)c->k[i] - shift : uniform_code(w[i], s, q->qn, q->qp);
            unsigned p = lb_fault_pattern(code, b, enc), s0 = L->sa0[i], s1 = L->sa1[i], ph = p;
            const float *vi = L->var ? L->var + i * (size_t)b : NULL;
            if (c->nearest == LB_CHIP_OWN_LEVEL)
                ph = own_level(w[i], R, a, b, enc, vi, s0, s1, p);
            else if (s0 | s1)
                ph = c->nearest
                         ? lb_fault_pattern(lb_fault_nearest_code(code, b, enc, s0, s1), b, enc)
                         : lb_fault_apply(p, s0, s1);
            /* by value: signmag has two zeros, and holds the code -2^(b-1) as -(2^(b-1)-1),
             * another code on a healthy chip too */
            changed += lb_fault_value(ph, b, enc) != code;
            if (!wq) continue;
            float v = vi ? lb_fault_level_at(R, b, enc, vi, ph) : a[ph];
            if (v != wq[i]) wq[i] = v; /* equal: keep the quantizer's bits (the sign of a 0) */
        }
    }
    return changed;
}

static const float *weights_of(const lb_net *n, const lb_node *d) {
    return n->param + n->params[d->pw].off;
}

static void chip_hook(void *ctx, const lb_net *n, int node, float *wq) {
    const lb_chip *c = ctx;
    int li = c->layer[node];
    if (li < 0) return;
    const lb_node *d = &n->nodes[node];
    layer_pass(c, d, &c->map->layers[li], weights_of(n, d), wq);
}

int lb_fmap_has_var(const lb_fmap *m, int *layer, uint64_t *weight, int *bit) {
    for (int l = 0; l < m->nlayers; l++) {
        const lb_flayer *L = &m->layers[l];
        if (!L->var) continue;
        size_t nv = (size_t)L->spec.n * (size_t)L->spec.bits;
        for (size_t i = 0; i < nv; i++)
            if (L->var[i] != 1.0f) {
                if (layer) *layer = l;
                if (weight) *weight = i / (size_t)L->spec.bits;
                if (bit) *bit = (int)(i % (size_t)L->spec.bits);
                return 1;
            }
    }
    return 0;
}

/* lb_chip_attach on a chip whose `own` map may already be set (lb_chip_open). */
static lb_status attach(lb_chip *c, lb_net *net, const char *arch, const lb_fmap *map,
                        const char *name, int nearest, int hook) {
    if (!net->param) return lb_error_set(LB_EINVAL, "chip %s: the network is not planned", name);
    if (hook && net->wq_hook)
        return lb_error_set(LB_EINVAL, "chip %s: the network has a chip already", name);
    lb_flayer_spec *specs = malloc(LB_FMAX_LAYERS * sizeof *specs);
    if (!specs) return lb_error_set(LB_ENOMEM, "out of memory (chip %s)", name);
    int ns = 0;
    lb_status st = lb_fmap_specs_of_net(net, specs, LB_FMAX_LAYERS, &ns);
    if (st == LB_OK && ns == 0)
        st = lb_error_set(LB_EINVAL,
                          "model '%s' has no coded weights (a float, unquantized model): there is "
                          "nothing for chip %s to hold",
                          arch, name);
    if (st == LB_OK) st = lb_fmap_check_model(map, name, arch, specs, ns);
    free(specs);
    if (st != LB_OK) return st;
    size_t maxn = 1;
    c->layer = malloc((size_t)net->nnodes * sizeof *c->layer);
    if (!c->layer) return lb_error_set(LB_ENOMEM, "out of memory (chip %s)", name);
    /* specs_of_net lists the coded nodes in node order, and the map matched it layer by layer */
    int li = 0;
    for (int i = 0; i < net->nnodes; i++) {
        const lb_node *d = &net->nodes[i];
        lb_qkind k = d->wqcfg.kind;
        int coded = (d->op == LB_OP_CONV || d->op == LB_OP_LINEAR) && d->pw >= 0 &&
                    (k == LB_Q_REG || k == LB_Q_LSQ || k == LB_Q_FIXED);
        c->layer[i] = coded ? li++ : -1;
        if (coded && net->params[d->pw].n > maxn) maxn = net->params[d->pw].n;
    }
    if (!(c->k = malloc(maxn))) {
        free(c->layer);
        c->layer = NULL;
        return lb_error_set(LB_ENOMEM, "out of memory (chip %s)", name);
    }
    c->net = net;
    c->map = map;
    /* methods.md's evaluation with variability: each weight's code is the nearest of its own
     * levels (the programmer knows the measured multipliers); then `nearest` has no say */
    c->nearest = lb_fmap_has_var(map, NULL, NULL, NULL) ? LB_CHIP_OWN_LEVEL
                 : nearest                              ? LB_CHIP_REACHABLE
                                                        : LB_CHIP_SNAP;
    if (!hook) return LB_OK;
    net->wq_hook = chip_hook;
    net->wq_hook_ctx = c;
    return LB_OK;
}

lb_status lb_chip_attach(lb_chip *c, lb_net *net, const char *arch, const lb_fmap *map,
                         const char *name, int nearest) {
    memset(c, 0, sizeof *c);
    return attach(c, net, arch, map, name, nearest, 1);
}

lb_status lb_chip_bind(lb_chip *c, lb_net *net, const char *arch, const lb_fmap *map,
                       const char *name, int nearest) {
    memset(c, 0, sizeof *c);
    return attach(c, net, arch, map, name, nearest, 0);
}

lb_status lb_chip_open(lb_chip *c, lb_net *net, const char *arch, const char *path, int nearest) {
    memset(c, 0, sizeof *c);
    lb_flayer_spec *specs = malloc(LB_FMAX_LAYERS * sizeof *specs);
    if (!specs) return lb_error_set(LB_ENOMEM, "out of memory (chip %s)", path);
    int ns = 0;
    lb_status st = lb_fmap_specs_of_net(net, specs, LB_FMAX_LAYERS, &ns);
    /* a float model first: its message says more than "0 coded layers" */
    if (st == LB_OK && ns == 0) st = attach(c, net, arch, &c->own, path, nearest, 1);
    if (st == LB_OK) st = lb_fmap_read_for(path, arch, specs, ns, &c->own);
    free(specs);
    if (st == LB_OK) st = attach(c, net, arch, &c->own, path, nearest, 1);
    if (st == LB_OK) return LB_OK;
    lb_chip_detach(c);
    return st;
}

void lb_chip_detach(lb_chip *c) {
    if (c->net && c->net->wq_hook_ctx == c) {
        c->net->wq_hook = NULL;
        c->net->wq_hook_ctx = NULL;
    }
    free(c->layer);
    free(c->k);
    lb_fmap_free(&c->own);
    memset(c, 0, sizeof *c);
}

lb_status lb_chip_snap_weights(lb_chip *c) {
    lb_net *n = c->net;
    if (!n) return lb_error_set(LB_EINVAL, "chip not attached");
    for (int i = 0; i < n->nnodes; i++) {
        if (c->layer[i] < 0) continue;
        lb_node *d = &n->nodes[i];
        float *w = n->param + n->params[d->pw].off;
        size_t cnt = n->params[d->pw].n;
        /* the node's quantized-weight buffer is rewritten by every forward: free scratch here */
        lb_quant_forward(&d->wq, 1, w, d->wqbuf, 0);
        layer_pass(c, d, &c->map->layers[c->layer[i]], w, d->wqbuf);
        memcpy(w, d->wqbuf, cnt * sizeof *w);
    }
    return LB_OK;
}

void lb_chip_count(const lb_chip *c, uint64_t *changed, uint64_t *total) {
    *changed = *total = 0;
    const lb_net *n = c->net;
    if (!n) return;
    for (int i = 0; i < n->nnodes; i++) {
        if (c->layer[i] < 0) continue;
        const lb_node *d = &n->nodes[i];
        *changed += layer_pass(c, d, &c->map->layers[c->layer[i]], weights_of(n, d), NULL);
        *total += n->params[d->pw].n;
    }
}
