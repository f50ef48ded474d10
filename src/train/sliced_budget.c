/* The weight budget of --quant sliced made a hard constraint: before the frozen fine-tune (or at
 * the end of a run without one), a model whose exported weight bytes exceed --budget-weights has
 * slices lowered, greedily, a bit at a time until the export fits. Not the
 * size penalty of the mixed phase (sliced_train.c), which only steers towards the budget. */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The export stores a slice's codes in exactly its width's bits (docs/mixed.md); the fit does not
 * go below 2 bits, the narrowest signed grid with a nonzero level. */
enum { MIN_BITS = 2 };

/* A candidate: lower slice c of weight quantizer q (inner elements a slice) by one bit, at this
 * much added squared quantization error per byte saved. */
typedef struct cand {
    lb_quant *q;
    int node, c, to;    /* the layer, the slice, its new width */
    double saved, cost; /* bytes the codes lose, added error per byte */
} cand;

typedef struct cand_list {
    cand *v;
    int n, cap;
    lb_net *net;
} cand_list;

/* The quantized value of x on a signed grid of step d, range xmax. */
static float qval(float x, float d, float xm) {
    float v = x < -xm ? -xm : x > xm ? xm : x;
    return d * rintf(v / d);
}

/* d and xmax for width b (signed weights): K = 2^(b-1) - 1 codes each side, the range kept where
 * the step's upper bound allows (the init's formula, methods.md). */
static void width_params(const lb_quant *q, int c, int b, float *d, float *xm) {
    float k = (float)((1 << (b - 1)) - 1), dmax = lb_sliced_dmax(q);
    *xm = fminf(q->param[q->ch + c], k * dmax);
    *d = *xm / k;
}

static int collect(cand_list *L) {
    for (int i = 1; i < L->net->nnodes; i++) {
        lb_node *nd = &L->net->nodes[i];
        if ((nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR) || nd->wqcfg.kind != LB_Q_SLICED)
            continue;
        lb_quant *q = &nd->wq;
        const float *w = L->net->param + L->net->params[nd->pw].off;
        size_t in = q->inner;
        for (int c = 0; c < q->ch; c++) {
            int s = lb_quant_sliced_bits(q, c);
            if (s <= MIN_BITS) continue;
            int to = s - 1;
            float d0 = lb_quant_sliced_d(q, c), x0 = q->param[q->ch + c], d1, x1;
            width_params(q, c, to, &d1, &x1);
            double e = 0;
            for (size_t k = 0; k < in; k++) { /* a weight tensor is [ch][inner] */
                float x = w[(size_t)c * in + k];
                double a = (double)qval(x, d0, x0) - x, b = (double)qval(x, d1, x1) - x;
                e += b * b - a * a;
            }
            if (L->n == L->cap) {
                int cap = L->cap ? 2 * L->cap : 256;
                cand *v = realloc(L->v, (size_t)cap * sizeof *v);
                if (!v) return 0;
                L->v = v, L->cap = cap;
            }
            double saved = (double)in * (s - to) / 8.0;
            double cost = e / saved;
            L->v[L->n++] = (cand){q, i, c, to, saved, isfinite(cost) ? cost : HUGE_VAL};
        }
    }
    return 1;
}

static int by_cost(const void *a, const void *b) {
    const cand *x = a, *y = b; /* ties: network order, so the choice is deterministic */
    if (x->cost != y->cost) return x->cost < y->cost ? -1 : 1;
    return x->node != y->node ? x->node - y->node : x->c - y->c;
}

static void lower(cand *k) {
    lb_quant *q = k->q;
    float d, xm;
    width_params(q, k->c, k->to, &d, &xm);
    q->param[k->c] = d;
    q->param[q->ch + k->c] = xm;
    /* a po2 step rounds d: double it until the width is reached (d stays <= xmax) */
    while (q->cfg.po2 && lb_quant_sliced_bits(q, k->c) > k->to && q->param[k->c] < xm)
        q->param[k->c] = fminf(2 * q->param[k->c], xm);
}

/* Slices wider than the integer model's 8-bit codes go to 8 bits first: the export could not
 * count (or hold) them otherwise. Returns how many. */
static int cap_at_8(lb_net *n) {
    int k = 0;
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *nd = &n->nodes[i];
        if ((nd->op != LB_OP_CONV && nd->op != LB_OP_LINEAR) || nd->wqcfg.kind != LB_Q_SLICED)
            continue;
        for (int c = 0; c < nd->wq.ch; c++)
            if (lb_quant_sliced_bits(&nd->wq, c) > 8) {
                cand w = {&nd->wq, i, c, 8, 0, 0};
                lower(&w);
                k++;
            }
        lb_quant_project(&nd->wq);
    }
    return k;
}

lb_status lb_sliced_fit_budget(run *r, const lb_train_cfg *c, char *note, size_t cap) {
    note[0] = 0;
    double budget = lb_sliced_budget_bytes(c->budget_w_kb);
    if (!r->sl || !(budget > 0)) return LB_OK;
    int wide = cap_at_8(r->net);
    size_t wb0 = 0, wb = 0;
    size_t ab = 0;
    lb_status st = lb_sliced_export_bytes(r, c, &wb0, &ab);
    if (st != LB_OK) return st;
    wb = wb0;
    int lowered = 0;
    /* Rounds: rank the slices by added error per byte saved, lower the cheapest until the
     * estimated saving covers the excess, then count the export again (its per-row packing
     * makes the saving of one slice depend on its layer's others). */
    while ((double)wb > budget) {
        cand_list L = {NULL, 0, 0, r->net};
        if (!collect(&L)) {
            free(L.v);
            return lb_error_set(LB_ENOMEM, "out of memory (sliced budget)");
        }
        if (!L.n) {
            free(L.v);
            return lb_error_set(LB_EBUDGET,
                                "budget: every weight slice is at 2 bits and the export still "
                                "has %zu bytes, over --budget-weights %g kB",
                                wb, c->budget_w_kb);
        }
        qsort(L.v, (size_t)L.n, sizeof *L.v, by_cost);
        double need = (double)wb - budget, got = 0;
        for (int i = 0; i < L.n && got < need; i++, lowered++) {
            got += L.v[i].saved;
            lower(&L.v[i]);
        }
        free(L.v);
        for (int i = 1; i < r->net->nnodes; i++)
            if (r->net->nodes[i].wqcfg.kind == LB_Q_SLICED) lb_quant_project(&r->net->nodes[i].wq);
        if ((st = lb_sliced_export_bytes(r, c, &wb, &ab)) != LB_OK) return st;
    }
    if (lowered)
        snprintf(note, cap,
                 "budget: the exported weights had %zu bytes, over --budget-weights %g kB; %d "
                 "one-bit lowerings of weight slices (least added error per byte "
                 "first): %zu bytes",
                 wb0, c->budget_w_kb, lowered, wb);
    if (wide)
        snprintf(note + strlen(note), cap - strlen(note),
                 "%sbudget: %d weight slices wider than "
                 "8 bits set to 8 (the integer model's widest codes)",
                 lowered ? "\n" : "", wide);
    return LB_OK;
}
