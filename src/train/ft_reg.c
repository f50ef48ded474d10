/* The per-step side of fine-tuning for a chip (methods.md sec. 3): the fault- and
 * variability-aware regularizer (lowbit), QFALT's Gaussian one and its clamp, and fault injection
 * (a random map's faulty weights under the gradient). Not the run's schedule or files
 * (finetune.c), not the regularizers' math (src/faults/freg.c). */
#include "ft_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const lb_node *node_of(const ft_state *s, int i) {
    return &s->net->nodes[s->sl[i].node];
}

/* R of slice i as the regularizer sees it, and the level spacing (QFALT's sigma unit). Reg kinds:
 * the layer's own R (training sees R itself, docs/reg.md); LSQ and fixed: their step's grid in the
 * layer's encoding (lb_fault_R_uniform). */
static float slice_R(const ft_state *s, int i, float *R) {
    const lb_node *d = node_of(s, i);
    const lb_flayer *L = &s->chip->map->layers[s->sl[i].layer];
    int b = L->spec.bits, ch = s->sl[i].ch;
    if (d->wqcfg.kind == LB_Q_REG) {
        lb_quant_reg_R(&d->wq, ch, R);
        float sp = R[0];
        if (L->spec.enc == LB_FENC_TWOS) {
            float Rt[LB_FMAX_BITS + 1];
            lb_fault_R_reg_twos(R, b, Rt);
            memcpy(R, Rt, (size_t)(b + 1) * sizeof *R);
        }
        return sp;
    }
    float st = lb_quant_step(&d->wq, ch);
    lb_fault_R_uniform(st, b, L->spec.enc, R);
    return st;
}

/* No stuck cell and every multiplier exactly 1. */
static int healthy(const lb_flayer *L) {
    for (uint64_t w = 0; w < L->spec.n; w++)
        if (L->sa0[w] | L->sa1[w]) return 0;
    for (uint64_t k = 0; L->var && k < L->spec.n * (uint64_t)L->spec.bits; k++)
        if (L->var[k] != 1.0f) return 0;
    return 1;
}

lb_status lb_ft_state_init(ft_state *s, lb_ft_method m, lb_net *net, const lb_chip *chip,
                           const char *arch, int chip_forward) {
    memset(s, 0, sizeof *s);
    s->method = m;
    s->net = net;
    s->chip = chip;
    s->sigma = 1;
    int n = 0;
    for (int i = 0; i < net->nnodes; i++)
        if (chip->layer[i] >= 0) n += net->nodes[i].wq.ch;
    s->sl = malloc((size_t)(n ? n : 1) * sizeof *s->sl);
    s->loss = malloc((size_t)(n ? n : 1) * sizeof *s->loss);
    s->dR = malloc((size_t)(n ? n : 1) * (LB_FMAX_BITS + 1) * sizeof *s->dR);
    if (!s->sl || !s->loss || !s->dR) return lb_error_set(LB_ENOMEM, "out of memory (fine-tune)");
    /* The reference has no coded first and last layers (they stay float): their (2^b-1)/N is
     * the largest of the net (an 8-bit grid over the cnn's 288 first-conv weights), and at lambda
     * 1000 its pull overshoots (docs/faults.md: 53% against 87% at lambda 100 on a 10% chip).
     * They stay on the chip (evaluation, resets), outside the regularizer, when there is a body. */
    int first = -1, last = -1, coded = 0;
    for (int i = 0; i < net->nnodes; i++)
        if (chip->layer[i] >= 0) last = i, first = first < 0 ? i : first, coded++;
    for (int i = 0; i < net->nnodes; i++) {
        if (coded > 2 && (i == first || i == last)) continue;
        for (int c = 0; chip->layer[i] >= 0 && c < net->nodes[i].wq.ch; c++)
            s->sl[s->nsl++] = (ft_slice){i, chip->layer[i], c};
    }
    if (m != LB_FT_INJECT) {
        if (!chip_forward) return LB_OK;
        s->saved = malloc(net->nparam * sizeof *s->saved);
        return s->saved ? LB_OK : lb_error_set(LB_ENOMEM, "out of memory (chip forward)");
    }
    /* the injected maps: the chip's layers, drawn at its measured rate and SA1 share (a measured
     * map records no rate), with its variability when it has any */
    const lb_fmap *cm = chip->map;
    lb_flayer_spec *specs = malloc((size_t)cm->nlayers * sizeof *specs);
    s->saved = malloc(net->nparam * sizeof *s->saved);
    if (!specs || !s->saved) {
        free(specs);
        return lb_error_set(LB_ENOMEM, "out of memory (fault injection)");
    }
    /* a chip whose first and last layers are spared (lb_fmap_spare) gets injected maps spared
     * the same way, and its rate is measured over the other layers */
    s->inj_spare =
        cm->nlayers > 2 && healthy(&cm->layers[0]) && healthy(&cm->layers[cm->nlayers - 1]);
    double cells = 0, stuck = 0, sa1 = 0, vs = 0, vs2 = 0, nv = 0;
    for (int l = 0; l < cm->nlayers; l++) {
        const lb_flayer *L = &cm->layers[l];
        specs[l] = L->spec;
        if (s->inj_spare && (l == 0 || l == cm->nlayers - 1)) continue;
        for (uint64_t w = 0; w < L->spec.n; w++) {
            stuck += __builtin_popcount(L->sa0[w] | L->sa1[w]);
            sa1 += __builtin_popcount(L->sa1[w]);
            for (int j = 0; L->var && j < L->spec.bits; j++) {
                double v = L->var[w * (uint64_t)L->spec.bits + j];
                vs += v, vs2 += v * v, nv++;
            }
        }
        cells += (double)L->spec.n * L->spec.bits;
    }
    s->inj_rate = cells > 0 ? stuck / cells : 0;
    s->inj_share = stuck > 0 ? sa1 / stuck : 0;
    s->inj_kind = LB_FVAR_NONE;
    if (cm->prov.var_kind != LB_FVAR_NONE && cm->prov.var_ratio > 0) {
        s->inj_kind = cm->prov.var_kind;
        s->inj_var = cm->prov.var_ratio;
    } else if (nv > 0) { /* measured multipliers: their spread as a Gaussian ratio */
        double mu = vs / nv, var = vs2 / nv - mu * mu;
        s->inj_kind = LB_FVAR_GAUSS;
        s->inj_var = var > 0 && mu > 0 ? sqrt(var) / mu : 0;
    }
    lb_status st = lb_fmap_create(&s->inj_map, arch, specs, cm->nlayers, 0);
    free(specs);
    if (st == LB_OK) st = lb_chip_bind(&s->inj, net, arch, &s->inj_map, "injected faults", 0);
    return st;
}

void lb_ft_state_free(ft_state *s) {
    lb_chip_detach(&s->inj);
    lb_fmap_free(&s->inj_map);
    free(s->sl);
    free(s->loss);
    free(s->dR);
    free(s->saved);
    memset(s, 0, sizeof *s);
}

lb_status lb_ft_inject_draw(ft_state *s, uint64_t seed) {
    lb_status st = lb_fmap_draw_faults(&s->inj_map, s->inj_rate, s->inj_share, seed);
    if (st == LB_OK && s->inj_kind != LB_FVAR_NONE && s->inj_var > 0)
        st = lb_fmap_draw_var(&s->inj_map, s->inj_kind, s->inj_var, seed);
    if (st == LB_OK) lb_fmap_spare(&s->inj_map, s->inj_spare);
    return st;
}

/* Only the coded weight tensors change between a begin and its end (the update comes after the
 * hook): they alone are kept and put back, at their offsets in `saved`. */
static void copy_coded(const ft_state *s, float *dst, const float *src) {
    const lb_net *n = s->net;
    for (int i = 0; i < n->nnodes; i++) {
        if (s->chip->layer[i] < 0) continue;
        const lb_tensor_info *t = &n->params[n->nodes[i].pw];
        memcpy(dst + t->off, src + t->off, t->n * sizeof *dst);
    }
}

lb_status lb_ft_snap_reachable(lb_chip *c) {
    int keep = c->nearest;
    if (keep != LB_CHIP_OWN_LEVEL) c->nearest = LB_CHIP_REACHABLE;
    lb_status st = lb_chip_snap_weights(c);
    c->nearest = keep;
    return st;
}

static lb_status begin(ft_state *s, lb_chip *c, int reachable) {
    copy_coded(s, s->saved, s->net->param);
    s->snapped = 1;
    return reachable ? lb_ft_snap_reachable(c) : lb_chip_snap_weights(c);
}

lb_status lb_ft_forward_begin(ft_state *s, lb_chip *c) {
    return begin(s, c, 1);
}

lb_status lb_ft_inject_begin(ft_state *s) {
    return begin(s, &s->inj, 0);
}

void lb_ft_inject_end(ft_state *s) {
    if (!s->snapped) return;
    copy_coded(s, s->net->param, s->saved);
    s->snapped = 0;
}

double lb_ft_hook(void *ctx, lb_net *n) {
    ft_state *s = ctx;
    lb_ft_inject_end(s); /* the gradient of the faulty weights lands on the floats */
    if (s->method == LB_FT_INJECT) return 0;
    const int nb = LB_FMAX_BITS + 1;
    /* slices write disjoint parts of the gradient; losses and dR are per slice, summed below in
     * slice order, so the result does not depend on the thread count */
#pragma omp parallel for schedule(dynamic, 4)
    for (int i = 0; i < s->nsl; i++) {
        const lb_node *d = node_of(s, i);
        const lb_flayer *L = &s->chip->map->layers[s->sl[i].layer];
        size_t inner = d->wq.inner, off = (size_t)s->sl[i].ch * inner, N = n->params[d->pw].n;
        const float *w = n->param + n->params[d->pw].off + off;
        float *dw = n->grad + n->params[d->pw].off + off, R[LB_FMAX_BITS + 1];
        double *dR = s->dR + (size_t)i * nb;
        memset(dR, 0, nb * sizeof *dR);
        float sp = slice_R(s, i, R);
        lb_fslice mk = lb_fslice_of(L, off);
        if (s->method == LB_FT_LOWBIT)
            s->loss[i] = lb_freg_mse(w, inner, N, R, L->spec.bits, mk, s->lambda, dw, dR);
        else
            s->loss[i] = lb_freg_qfalt(w, inner, R, L->spec.bits, mk, s->lambda,
                                       s->sigma * (double)sp, dw, dR);
    }
    double loss = 0;
    for (int i = 0; i < s->nsl; i++) {
        loss += s->loss[i];
        const lb_node *d = node_of(s, i);
        /* learned levels get their gradient from the regularizer alone (docs/reg.md); the other
         * kinds' levels are not trained by it (fixed R, or a step the regularizer leaves be) */
        if (d->wqcfg.kind != LB_Q_REG || d->wqcfg.levels != LB_REG_LEARNED) continue;
        int b = d->wqcfg.bits;
        float *g = d->wq.dparam + (size_t)s->sl[i].ch * (b + 1);
        double *dR = s->dR + (size_t)i * nb;
        if (s->chip->map->layers[s->sl[i].layer].spec.enc == LB_FENC_TWOS) {
            /* back through lb_fault_R_reg_twos: Rt_{b-1} = -R_{b-1}, Rt_b = R_b - R_{b-1} */
            dR[b - 1] = -dR[b - 1] - dR[b];
        }
        for (int j = 0; j <= b; j++) g[j] += (float)dR[j];
    }
    s->reg_sum += loss;
    s->reg_steps++;
    return loss;
}

void lb_ft_clamp(ft_state *s) {
    lb_net *n = s->net;
    for (int i = 0; i < s->nsl; i++) {
        const lb_node *d = node_of(s, i);
        const lb_flayer_spec *sp = &s->chip->map->layers[s->sl[i].layer].spec;
        int b = sp->bits;
        float R[LB_FMAX_BITS + 1], a[1 << LB_FMAX_BITS];
        slice_R(s, i, R);
        lb_fault_levels(R, b, sp->enc, NULL, a);
        float lo = a[0], hi = a[0];
        for (int p = 1; p < (1 << b); p++) lo = fminf(lo, a[p]), hi = fmaxf(hi, a[p]);
        size_t inner = d->wq.inner;
        float *w = n->param + n->params[d->pw].off + (size_t)s->sl[i].ch * inner;
        for (size_t k = 0; k < inner; k++) w[k] = w[k] < lo ? lo : w[k] > hi ? hi : w[k];
    }
}
