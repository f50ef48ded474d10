/* Derives the integer form of a spiking network (docs/snn.md, "Integer"): weight codes from the
 * quantizers, the image or event planes through a table, accumulators of integer codes, layer
 * norm and batch norm into fixed-point currents, LIF decay as a Q15 multiply, thresholds in
 * membrane units, spikes as 0/1 bytes, the readout as integer counts or current sums. Not the
 * runner (int_snn_run.c) nor the CNN integer model (int_model.c). */
#include "int_snn.h"
#include "int_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAC_FLOAT_MEM 20  /* fraction bits of currents and membranes (float-membrane models) */
#define FRAC_GRID_EXTRA 8  /* with --mem-bits b: currents in membrane steps / 2^8 */
#define LN_MAX_ELEMS 65535 /* the integer layer norm's int64 sums assume fewer elements */

static size_t node_size(const lb_node *d) {
    return (size_t)d->c * d->h * d->w;
}

static lb_status fail(const lb_node *d, const char *why) {
    return lb_int_fail_layer(d, why);
}

static const float *P(const lb_net *n, int idx) {
    return n->param + n->params[idx].off;
}

static int consumer(const lb_net *n, int i, int *count) {
    int who = -1;
    *count = 0;
    for (int j = i + 1; j < n->nnodes; j++)
        for (int k = 0; k < 2; k++)
            if (n->nodes[j].in[k] == i) {
                who = j;
                (*count)++;
            }
    return who;
}

/* The node a conv's output is normalized by, looking through a max pool: LN or BN, else -1. */
static int norm_after(const lb_net *n, int i) {
    int cnt, j = consumer(n, i, &cnt);
    if (cnt != 1) return -1;
    if (n->nodes[j].op == LB_OP_MAXPOOL) j = consumer(n, j, &cnt);
    if (cnt != 1) return -1;
    return n->nodes[j].op == LB_OP_LN || n->nodes[j].op == LB_OP_BN ? j : -1;
}

static int64_t rne64(double v) {
    return (int64_t)llrint(v);
}

typedef struct derive {
    const lb_net *n;
    struct lb_isnn *m;
    double **chs; /* per layer: per-channel scale of an ACC frame (NULL: m->l[i].scale) */
    double *amax;
} derive;

static lb_status make_conv(derive *g, int i) {
    const lb_net *n = g->n;
    const lb_node *d = &n->nodes[i], *s = &n->nodes[d->in[0]];
    lb_isnn_layer *L = &g->m->l[i], *S = &g->m->l[d->in[0]];
    if (d->aqcfg.kind != LB_Q_NONE)
        return fail(d, "an activation quantizer on a spiking network's layer has no integer form "
                       "(spike inputs need none)");
    if (d->wqcfg.kind == LB_Q_NONE) return fail(d, "float weights: quantize them (--quant)");
    if (S->ty != LB_ISN_IMG && S->ty != LB_ISN_SPK && S->ty != LB_ISN_ACC)
        return fail(d, "its input is neither the image, spikes nor sums of spikes");
    double sx = S->ty == LB_ISN_IMG   ? ldexp(1.0, -g->m->img_shift)
                : S->ty == LB_ISN_SPK ? 1.0
                                      : S->scale;
    L->linear = d->op == LB_OP_LINEAR;
    L->cin = L->linear ? (int)node_size(s) : s->c;
    L->ih = L->linear ? 1 : s->h;
    L->iw = L->linear ? 1 : s->w;
    L->k = L->linear ? 1 : d->k;
    L->stride = L->linear ? 1 : d->stride;
    L->pad = L->linear ? 0 : d->pad;
    L->groups = L->linear ? 1 : d->groups;
    int K = L->cin / L->groups * L->k * L->k;
    lb_int_wcodes wc;
    lb_status st = lb_int_weight_codes(n, d, K, &wc);
    if (st != LB_OK) return st;
    /* level-table kinds (reg levels, DoReFa): the runner takes the table's codes densely, the
     * exporter stores the b-bit index and the table, as for CNNs (emit_snn.c) */
    L->wc = wc.w;
    L->widx = wc.idx;
    L->wtab = wc.tab;
    L->ntab = wc.ntab;
    L->ibits = wc.ibits;
    wc.w = NULL;
    wc.idx = NULL;
    wc.tab = NULL;
    if (wc.sumabs * g->amax[d->in[0]] >= 2147483647.0) {
        lb_int_wcodes_free(&wc);
        return fail(d, "its int32 accumulator could overflow (fewer weight bits)");
    }
    g->amax[i] = wc.sumabs * g->amax[d->in[0]];
    const float *bias = d->pb >= 0 ? P(n, d->pb) : NULL;
    L->to_cur = norm_after(n, i) < 0;
    if (!L->to_cur) {
        L->ty = LB_ISN_ACC;
        if (bias) {
            lb_int_wcodes_free(&wc);
            return fail(d, "a bias before a norm has no integer rule here (the zoo has none)");
        }
        g->chs[i] = malloc((size_t)d->c * sizeof(double));
        if (!g->chs[i]) return lb_int_wcodes_free(&wc), lb_int_oom();
        for (int c = 0; c < d->c; c++) g->chs[i][c] = sx * wc.sw[c];
        L->scale = g->chs[i][0];
    } else {
        L->ty = LB_ISN_CUR;
        L->rq = malloc((size_t)d->c * sizeof *L->rq);
        if (!L->rq) return lb_int_wcodes_free(&wc), lb_int_oom();
        for (int c = 0; c < d->c && st == LB_OK; c++)
            st = lb_int_rq_from_real(sx * wc.sw[c] * ldexp(1.0, g->m->frac),
                                     bias ? bias[c] * ldexp(1.0, g->m->frac) : 0.0, &L->rq[c]);
        if (st != LB_OK) st = fail(d, "its current has no fixed-point form (scale out of range)");
    }
    lb_int_wcodes_free(&wc);
    return st;
}

static lb_status make_norm(derive *g, int i) {
    const lb_node *d = &g->n->nodes[i];
    lb_isnn_layer *L = &g->m->l[i];
    const double *cs = g->chs[d->in[0]];
    if (g->m->l[d->in[0]].ty != LB_ISN_ACC || !cs)
        return fail(d, "a norm must follow a conv (or its max pool)");
    L->ty = LB_ISN_CUR;
    if (d->op == LB_OP_LN) {
        for (int c = 1; c < d->c; c++)
            if (fabs(cs[c] - cs[0]) > 1e-12 * fabs(cs[0]))
                return fail(d, "per-channel weight steps before a layer norm have no integer "
                               "form: train with per-tensor steps");
        if (node_size(d) > LN_MAX_ELEMS) return fail(d, "more than 65535 elements a frame");
        int ex;
        double fr = frexp(LB_LN_EPS / (cs[0] * cs[0]), &ex); /* in [0.5, 1) * 2^ex */
        L->eps_m = rne64(ldexp(fr, 29));
        L->eps_e = ex - 29;
        return LB_OK;
    }
    const lb_net *n = g->n;
    const float *ga = P(n, d->pw), *be = P(n, d->pb);
    const float *rm = n->state + n->states[d->smean].off, *rv = n->state + n->states[d->svar].off;
    L->rq = malloc((size_t)d->c * sizeof *L->rq);
    if (!L->rq) return lb_int_oom();
    for (int c = 0; c < d->c; c++) {
        double inv = 1.0 / sqrt((double)rv[c] + 1e-5), f = ldexp(1.0, g->m->frac);
        if (lb_int_rq_from_real(cs[c] * ga[c] * inv * f, (be[c] - ga[c] * rm[c] * inv) * f,
                                &L->rq[c]) != LB_OK)
            return fail(d, "its folded affine has no fixed-point form");
    }
    return LB_OK;
}

static lb_status make_lif(derive *g, int i) {
    const lb_node *d = &g->n->nodes[i];
    lb_isnn_layer *L = &g->m->l[i];
    if (g->m->l[d->in[0]].ty != LB_ISN_CUR) return fail(d, "its input is not a current");
    L->ty = LB_ISN_SPK;
    L->reset = d->lif.k.reset;
    L->mem_bits = d->lif.k.mem_bits;
    L->beta_q = malloc((size_t)d->c * sizeof *L->beta_q);
    if (!L->beta_q) return lb_int_oom();
    for (int c = 0; c < d->c; c++) {
        float b = d->pw < 0 ? d->lif.beta : P(g->n, d->pw)[d->lif.learn_beta == 2 ? c : 0];
        b = b < 0 ? 0 : b > 1 ? 1 : b; /* the float forward's clamp */
        L->beta_q[c] = (int32_t)lrint((double)b * 32768.0);
    }
    if (L->mem_bits) {
        L->theta_q = 1 << (L->mem_bits - 2); /* theta / (theta / 2^(b-2)) */
        L->mlo = -(1 << (L->mem_bits - 1));
        L->mhi = (1 << (L->mem_bits - 1)) - 1;
    } else {
        double t = ldexp((double)d->lif.k.theta, g->m->frac);
        if (t >= 1e9) return fail(d, "threshold too large for a Q20 membrane");
        L->theta_q = (int32_t)lrint(t);
    }
    g->amax[i] = 1;
    return LB_OK;
}

/* The input table: normalized pixel * 2^img_shift, the largest shift (at most 2^20) that keeps
 * the first layer's accumulator inside int32 for any weight codes of its bits: finer than the
 * float input's own rounding matters (a spiking net amplifies a flipped spike layer by layer). */
static void make_lut(struct lb_isnn *m, const lb_net *n, const float mean[3], const float std[3]) {
    double big = 1e-9, kmax = 1;
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            double x = fabs(((double)v / 255.0 - mean[c]) / std[c]);
            big = x > big ? x : big;
        }
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        double K = (double)n->params[d->pw].n / d->c;
        kmax = K * ldexp(1.0, d->wqcfg.bits > 0 ? d->wqcfg.bits - 1 : 8);
        break; /* the first conv/linear reads the image */
    }
    int s = 0;
    while (s < 20 && kmax * ldexp(big, s + 1) < 2147483647.0) s++;
    m->img_shift = s;
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++)
            m->lut[c][v] =
                (int32_t)lrint(ldexp(((double)((float)v / 255.0f) - mean[c]) / (double)std[c], s));
}

static lb_status make_layer(derive *g, int i) {
    const lb_net *n = g->n;
    const lb_node *d = &n->nodes[i];
    lb_isnn_layer *L = &g->m->l[i];
    const lb_isnn_layer *S = i ? &g->m->l[d->in[0]] : NULL;
    snprintf(L->name, sizeof L->name, "%s", d->name);
    L->in[0] = d->in[0];
    L->in[1] = d->in[1];
    L->c = d->c;
    L->h = d->h;
    L->w = d->w;
    L->timed = d->tm > 1 || (S && S->timed) || d->op == LB_OP_ENCODE;
    if (S) L->scale = S->scale, L->ty = S->ty, g->amax[i] = g->amax[d->in[0]];
    switch (d->op) {
    case LB_OP_INPUT:
        return LB_OK; /* typed by the encode */
    case LB_OP_ENCODE:
        L->kind = LB_ISK_ENCODE;
        L->enc = d->enc;
        g->m->steps = d->tm;
        if (d->enc == LB_ENC_RATE) L->ty = LB_ISN_SPK, g->amax[i] = 1;
        if (d->enc == LB_ENC_DIRECT && S->ty != LB_ISN_CUR)
            return fail(d, "direct encoding must repeat a normalized current");
        return LB_OK;
    case LB_OP_CONV:
    case LB_OP_LINEAR:
        L->kind = LB_ISK_CONV;
        return make_conv(g, i);
    case LB_OP_MAXPOOL:
        L->kind = LB_ISK_MAXPOOL;
        L->pk = d->k;
        L->pstride = d->stride;
        if (d->pad) return fail(d, "padded max pool");
        if (S->ty == LB_ISN_ACC) {
            g->chs[i] = malloc((size_t)d->c * sizeof(double));
            if (!g->chs[i]) return lb_int_oom();
            memcpy(g->chs[i], g->chs[d->in[0]], (size_t)d->c * sizeof(double));
        }
        return LB_OK;
    case LB_OP_LN:
    case LB_OP_BN:
        L->kind = d->op == LB_OP_LN ? LB_ISK_LN : LB_ISK_BN;
        return make_norm(g, i);
    case LB_OP_LIF:
        L->kind = LB_ISK_LIF;
        return make_lif(g, i);
    case LB_OP_ADD:
        L->kind = LB_ISK_ADD;
        if (S->ty != LB_ISN_CUR ||
            (g->m->l[d->in[1]].ty != LB_ISN_CUR && g->m->l[d->in[1]].ty != LB_ISN_SPK))
            return fail(d, "adds a current and a current or spikes only");
        return LB_OK;
    case LB_OP_SHORTCUT:
        L->kind = LB_ISK_SHORTCUT;
        L->pstride = d->stride;
        return S->ty == LB_ISN_SPK ? LB_OK : fail(d, "shortcut of something else than spikes");
    case LB_OP_GAP:
        L->kind = LB_ISK_GAP;
        L->ty = LB_ISN_ACC;
        L->scale = 1.0 / ((double)n->nodes[d->in[0]].h * n->nodes[d->in[0]].w);
        g->amax[i] = (double)n->nodes[d->in[0]].h * n->nodes[d->in[0]].w;
        return S->ty == LB_ISN_SPK ? LB_OK : fail(d, "global pool of something else than spikes");
    case LB_OP_FLATTEN:
    case LB_OP_DROPOUT: /* evaluation: identity */
        L->kind = LB_ISK_PASS;
        return LB_OK;
    case LB_OP_TSUM:
        L->kind = LB_ISK_TSUM;
        if (i != n->nnodes - 1) return fail(d, "the readout must be the last layer");
        if (S->ty != LB_ISN_SPK && S->ty != LB_ISN_CUR)
            return fail(d, "reads neither spikes nor currents");
        return LB_OK;
    default:
        return fail(d, "op has no integer form in a spiking network");
    }
}

static int is_alias(const lb_isnn_layer *L) {
    return L->kind == LB_ISK_PASS || (L->kind == LB_ISK_ENCODE && L->enc == LB_ENC_DIRECT);
}

static size_t frame_bytes(const struct lb_isnn *m, int i) {
    const lb_isnn_layer *L = &m->l[i];
    size_t n = i == 0 ? (size_t)m->in_c * m->in_h * m->in_w : (size_t)L->c * L->h * L->w;
    size_t es = L->ty == LB_ISN_SPK || L->ty == LB_ISN_PIX ? 1 : 4;
    if (L->kind == LB_ISK_TSUM) n = (size_t)m->classes, es = 4;
    return (n * es + 7) & ~(size_t)7;
}

/* The per-image workspace. What must outlive a step is kept apart: the input, the layers before
 * the encoding (computed once), every LIF's spikes (its S[t-1]) and membranes, the readout. The
 * other frames live within one step, from the layer that writes them to the last that reads them
 * (through flatten / dropout / direct-encode aliases), and share memory first-fit by those
 * lifetimes (as the CNN exporter plans its arenas): the exported C's RAM is this figure. */
static void layout(struct lb_isnn *m) {
    int nl = m->nl;
    int *root = malloc((size_t)nl * sizeof *root), *last = malloc((size_t)nl * sizeof *last);
    size_t off = 0;
    for (int i = 0; i < nl; i++) {
        root[i] = is_alias(&m->l[i]) ? root[m->l[i].in[0]] : i;
        last[i] = i;
    }
    for (int j = 1; j < nl; j++)
        for (int k = 0; k < 2; k++)
            if (m->l[j].in[k] >= 0 && last[root[m->l[j].in[k]]] < j) last[root[m->l[j].in[k]]] = j;
    for (int i = 0; i < nl; i++) { /* the persistent region */
        lb_isnn_layer *L = &m->l[i];
        if (is_alias(L)) continue;
        int keep = !L->timed || L->kind == LB_ISK_LIF || L->kind == LB_ISK_TSUM;
        if (!keep) continue;
        L->off = off;
        off += frame_bytes(m, i);
        if (L->kind == LB_ISK_LIF) {
            L->state_off = off;
            off += (size_t)L->c * L->h * L->w * 4;
        }
    }
    size_t base = off, top = off;
    for (int i = 0; i < nl; i++) { /* the per-step frames */
        lb_isnn_layer *L = &m->l[i];
        if (is_alias(L) || !L->timed || L->kind == LB_ISK_LIF || L->kind == LB_ISK_TSUM) continue;
        size_t need = frame_bytes(m, i), at = base;
        for (int again = 1; again;) {
            again = 0;
            for (int u = 0; u < i; u++) {
                const lb_isnn_layer *U = &m->l[u];
                if (is_alias(U) || !U->timed || U->kind == LB_ISK_LIF || U->kind == LB_ISK_TSUM)
                    continue;
                if (last[u] < i) continue; /* dead before this one is written */
                size_t un = frame_bytes(m, u);
                if (at < U->off + un && U->off < at + need) {
                    at = U->off + un;
                    again = 1;
                }
            }
        }
        L->off = at;
        if (at + need > top) top = at + need;
    }
    for (int i = 0; i < nl; i++)
        if (is_alias(&m->l[i])) m->l[i].off = m->l[m->l[i].in[0]].off;
    m->ws_bytes = top ? top : 8;
    free(root);
    free(last);
}

lb_status lb_isnn_derive(const lb_net *n, const float mean[3], const float std[3],
                         struct lb_isnn **out) {
    *out = NULL;
    struct lb_isnn *m = calloc(1, sizeof *m);
    derive g = {n, m, calloc((size_t)n->nnodes, sizeof(double *)),
                calloc((size_t)n->nnodes, sizeof(double))};
    if (!m || !g.chs || !g.amax) {
        free(m), free(g.chs), free(g.amax);
        return lb_int_oom();
    }
    m->l = calloc((size_t)n->nnodes, sizeof *m->l);
    m->nl = n->nnodes;
    m->classes = lb_net_classes(n);
    m->in_c = n->nodes[0].c;
    m->in_h = n->nodes[0].h;
    m->in_w = n->nodes[0].w;
    lb_status st = m->l ? LB_OK : lb_int_oom();
    int mem_bits = 0;
    lb_encoding enc = LB_ENC_DIRECT;
    for (int i = 1; i < n->nnodes; i++) {
        if (n->nodes[i].op == LB_OP_LIF) mem_bits = n->nodes[i].lif.k.mem_bits;
        if (n->nodes[i].op == LB_OP_ENCODE) enc = n->nodes[i].enc;
    }
    m->frac = mem_bits ? mem_bits - 2 + FRAC_GRID_EXTRA : FRAC_FLOAT_MEM;
    make_lut(m, n, mean, std);
    if (st == LB_OK) {
        m->l[0].ty = enc == LB_ENC_RATE ? LB_ISN_PIX : LB_ISN_IMG;
        m->l[0].kind = LB_ISK_INPUT;
        m->l[0].in[0] = m->l[0].in[1] = -1;
        m->l[0].c = m->in_c;
        m->l[0].h = m->in_h;
        m->l[0].w = m->in_w;
        m->l[0].scale = ldexp(1.0, -m->img_shift);
        snprintf(m->l[0].name, sizeof m->l[0].name, "input");
        double big = 0;
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++) big = fmax(big, fabs((double)m->lut[c][v]));
        g.amax[0] = m->l[0].ty == LB_ISN_PIX ? 255 : big;
    }
    for (int i = 1; i < n->nnodes && st == LB_OK; i++) st = make_layer(&g, i);
    if (st == LB_OK && n->nodes[n->nnodes - 1].op != LB_OP_TSUM)
        st = lb_error_set(LB_EINVAL, "a spiking network's integer form needs a readout layer");
    for (int i = 0; i < n->nnodes; i++) free(g.chs[i]);
    free(g.chs);
    free(g.amax);
    if (st != LB_OK) {
        lb_isnn_free(m);
        return st;
    }
    m->pol = enc == LB_ENC_EVENTS && m->steps ? m->in_c / m->steps : m->in_c;
    layout(m);
    *out = m;
    return LB_OK;
}

void lb_isnn_free(struct lb_isnn *m) {
    if (!m) return;
    for (int i = 0; i < m->nl; i++) {
        free(m->l[i].wc);
        free(m->l[i].widx);
        free(m->l[i].wtab);
        free(m->l[i].rq);
        free(m->l[i].beta_q);
    }
    free(m->l);
    free(m);
}

lb_status lb_int_from_snn(const lb_net *n, const float mean[3], const float std[3],
                          lb_int_model **out) {
    lb_int_model *m = calloc(1, sizeof *m);
    if (!m) return lb_int_oom();
    lb_status st = lb_isnn_derive(n, mean, std, &m->snn);
    if (st != LB_OK) {
        free(m);
        return st;
    }
    m->in_c = m->snn->in_c;
    m->in_h = m->snn->in_h;
    m->in_w = m->snn->in_w;
    m->classes = m->snn->classes;
    for (int c = 0; c < 3; c++) m->mean[c] = mean[c], m->std[c] = std[c];
    /* counts are integers; summed currents are Q(frac) */
    m->logit_frac_bits = m->snn->l[m->snn->nl - 1].in[0] >= 0 &&
                                 m->snn->l[m->snn->l[m->snn->nl - 1].in[0]].ty == LB_ISN_CUR
                             ? m->snn->frac
                             : 0;
    m->arena_bytes = m->snn->ws_bytes;
    *out = m;
    return LB_OK;
}
