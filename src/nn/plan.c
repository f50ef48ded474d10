/* Memory planning and initialization: adds the quantizer tensors, decides which nodes run in
 * place, sizes every buffer for the maximum batch and allocates the arrays once. */
#include "nn_internal.h"
#include "lb_backend.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void add_quant_tensors(lb_net *n, int id) {
    lb_node *d = &n->nodes[id];
    int cout = d->c;
    /* MSQE's second moments keep a value per weight: the kinds size them from the tensor */
    d->wqcfg.numel = (long)n->params[d->pw].n;
    d->aqcfg.numel = 0;
    int np = lb_quant_nparam(&d->wqcfg, d->wqcfg.per_channel ? cout : 1);
    int ns = lb_quant_nstate(&d->wqcfg, d->wqcfg.per_channel ? cout : 1);
    /* learned reg levels R train at their own rate (LB_GROUP_LEVELS), other parameters of a
     * weight quantizer are steps */
    lb_group g = d->wqcfg.kind == LB_Q_REG && d->wqcfg.levels == LB_REG_LEARNED ? LB_GROUP_LEVELS
                                                                                : LB_GROUP_QUANT;
    if (np > 0) d->pwq = lb_net_add_param(n, id, "wq.param", 1, &np, g);
    if (ns > 0) d->swq = lb_net_add_state(n, id, "wq.state", 1, &ns);
    np = lb_quant_nparam(&d->aqcfg, 1);
    ns = lb_quant_nstate(&d->aqcfg, 1);
    if (np > 0) d->paq = lb_net_add_param(n, id, "aq.param", 1, &np, LB_GROUP_QUANT);
    if (ns > 0) d->saq = lb_net_add_state(n, id, "aq.state", 1, &ns);
}

static lb_status bind_quants(lb_net *n, lb_node *d) {
    const lb_node *s = &n->nodes[d->in[0]];
    size_t wn = n->params[d->pw].n;
    int cout = d->c;
    int wch = d->wqcfg.per_channel ? cout : 1;
    float *wp = d->pwq >= 0 ? n->param + n->params[d->pwq].off : NULL;
    float *wg = d->pwq >= 0 ? n->grad + n->params[d->pwq].off : NULL;
    float *ws = d->swq >= 0 ? n->state + n->states[d->swq].off : NULL;
    /* LSQ's N: the elements one step governs (all weights, or one output channel's) */
    lb_status st =
        lb_quant_bind(&d->wq, &d->wqcfg, wch, wn / (size_t)wch, wn / (size_t)wch, wp, wg, ws);
    if (st != LB_OK) return st;
    float *ap = d->paq >= 0 ? n->param + n->params[d->paq].off : NULL;
    float *ag = d->paq >= 0 ? n->grad + n->params[d->paq].off : NULL;
    float *as = d->saq >= 0 ? n->state + n->states[d->saq].off : NULL;
    /* activations: N is the per-sample feature count C*H*W of the layer's input */
    return lb_quant_bind(&d->aq, &d->aqcfg, 1, lb_node_size(s), lb_node_size(s), ap, ag, as);
}

/* One pass over the nodes sizing (counting arena) or carving (real arena) every buffer. */
static void carve(lb_net *n, size_t *scratch, size_t *dtmp, size_t *dwtmp) {
    int B = n->max_batch;
    lb_arena *a = &n->act;
    *scratch = *dtmp = *dwtmp = 0;
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        const lb_node *s = &n->nodes[d->in[0]];
        int fb = lb_node_frames(d, B);
        size_t out = (size_t)fb * lb_node_size(d),
               in = (size_t)lb_node_frames(s, B) * lb_node_size(s);
        if (d->alias) {
            d->y = s->y;
            d->dy = s->dy;
        } else {
            d->y = lb_arena_floats(a, out);
            d->dy = d->dx_inplace ? s->dy : lb_arena_floats(a, out);
        }
        switch (d->op) {
        case LB_OP_CONV:
        case LB_OP_LINEAR: {
            size_t wn = n->params[d->pw].n;
            if (d->aqcfg.kind != LB_Q_NONE) {
                d->xq = lb_arena_floats(a, in);
                if (in > *dtmp) *dtmp = in;
            }
            if (d->wqcfg.kind != LB_Q_NONE) {
                d->wqbuf = lb_arena_floats(a, wn);
                if (wn > *dwtmp) *dwtmp = wn;
            }
            if (d->wstd) { /* standardized weights, their invstd, their gradient in dwtmp */
                d->wsbuf = lb_arena_floats(a, wn);
                d->wsinv = lb_arena_floats(a, (size_t)d->c);
                if (wn > *dwtmp) *dwtmp = wn;
            }
            if (d->op == LB_OP_CONV) {
                lb_conv2d_desc cd;
                lb_conv2d_desc_init(&cd, fb, s->c, s->h, s->w, d->c, d->k, d->stride, d->pad,
                                    d->groups);
                size_t sc = n->be->conv2d_scratch_floats(&cd, n->nthreads);
                if (sc > *scratch) *scratch = sc;
            }
            break;
        }
        case LB_OP_BN:
            /* LBN saves its statistics per sample, BN per channel */
            d->mean = lb_arena_floats(a, (size_t)(d->norm && fb > d->c ? fb : d->c));
            d->invstd = lb_arena_floats(a, (size_t)(d->norm && fb > d->c ? fb : d->c));
            /* A conv whose only reader is this BN hands over its output planes' moments, taken
             * while each image's output is still in cache: BN's statistics pass over the whole
             * tensor goes away. The bits are the same either way (lb_bn_plane_moments). */
            if (s->op == LB_OP_CONV && s->consumers == 1 && !d->norm && !getenv("LOWBIT_NO_FUSE")) {
                d->moments = lb_arena_alloc(a, (size_t)fb * d->c * 2 * sizeof(double));
                n->nodes[d->in[0]].moments = d->moments;
            }
            break;
        case LB_OP_LN:
            d->mean = lb_arena_floats(a, (size_t)fb);
            d->invstd = lb_arena_floats(a, (size_t)fb);
            break;
        case LB_OP_LIF:
            d->mem = lb_arena_floats(a, out);
            {
                lb_lif_desc k = {.n = B, .c = d->c, .hw = d->h * d->w};
                d->part = lb_arena_floats(a, lb_lif_scratch_floats(&k));
            }
            break;
        case LB_OP_MAXPOOL:
            d->argmax = lb_arena_alloc(a, out * sizeof(int32_t));
            break;
        case LB_OP_DROPOUT:
            d->mask = lb_arena_alloc(a, out);
            break;
        default:
            break;
        }
    }
}

lb_status lb_net_plan(lb_net *n, int max_batch, int nthreads) {
    if (n->err != LB_OK) return n->err;
    if (max_batch < 1) return lb_error_set(LB_EINVAL, "batch must be >= 1, got %d", max_batch);
    if (n->param) return lb_error_set(LB_EINVAL, "network already planned");
    if (n->nodes[n->nnodes - 1].tm != 1)
        return lb_error_set(LB_EINVAL,
                            "a spiking network must end with a readout over time (its output "
                            "layer '%s' has %d steps)",
                            n->nodes[n->nnodes - 1].name, n->nodes[n->nnodes - 1].tm);
    n->max_batch = max_batch;
    n->nthreads = nthreads < 1 ? 1 : nthreads;
    for (int i = 0; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op == LB_OP_CONV || d->op == LB_OP_LINEAR) {
            lb_status st = lb_qcfg_check(&d->wqcfg);
            if (st == LB_OK) st = lb_qcfg_check(&d->aqcfg);
            if (st != LB_OK) { /* lb_error_msg's buffer is the one written next: copy it first */
                char why[256];
                snprintf(why, sizeof why, "%s", lb_error_msg());
                return lb_error_set(st, "layer '%s': %s", d->name, why);
            }
            if ((d->wqcfg.kind == LB_Q_MSQE_PO2 || d->wqcfg.kind == LB_Q_GRAD_PO2) &&
                d->wqcfg.per_channel && d->c < 2)
                return lb_error_set(LB_EINVAL,
                                    "layer '%s': per-channel %s scales, but the layer has one "
                                    "output channel (per-tensor is the same scale; drop "
                                    "--per-channel or quantize the layer otherwise)",
                                    d->name, lb_qkind_name(d->wqcfg.kind));
            add_quant_tensors(n, i);
        }
        for (int j = 0; j < 2; j++)
            if (d->in[j] >= 0) n->nodes[d->in[j]].consumers++;
    }
    if (n->err != LB_OK) return n->err;
    /* In place: ReLU/flatten overwrite their producer's buffers when nobody else reads them
     * (no producer needs its own output in backward: BN keeps its input, pools their argmax). */
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        const lb_node *s = &n->nodes[d->in[0]];
        /* (not over a layer norm: its backward reads its own output) */
        if ((d->op == LB_OP_RELU || d->op == LB_OP_RELU6 || d->op == LB_OP_FLATTEN) &&
            d->in[0] > 0 && s->consumers == 1 && (s->op != LB_OP_LN || d->op == LB_OP_FLATTEN))
            d->alias = 1;
        /* An add overwrites its first operand when nothing else reads it: saves a buffer and,
         * in backward, the copy of the gradient into that operand. */
        if (d->op == LB_OP_ADD && d->in[0] > 0 && d->in[0] != d->in[1] && s->consumers == 1)
            d->alias = 1;
        /* BN's input gradient over its output gradient, when BN is its producer's only reader:
         * every element of dx depends on its own dy and per-channel sums taken first, so the
         * backward can overwrite dy. Saves a tensor, and the dx stores go to lines just read
         * rather than to a cold buffer (one DRAM stream less per BN backward). */
        if (d->op == LB_OP_BN && d->in[0] > 0 && s->consumers == 1 && !getenv("LOWBIT_NO_FUSE"))
            d->dx_inplace = 1;
        /* BN followed by its only reader, a ReLU/ReLU6: one kernel applies both and masks the
         * gradient inside BN's backward passes. */
        /* The same for an add (e.g. a residual block's output): one pass each way. */
        if (d->alias && (d->op == LB_OP_RELU || d->op == LB_OP_RELU6) &&
            (s->op == LB_OP_BN || s->op == LB_OP_ADD) && !getenv("LOWBIT_NO_FUSE")) {
            d->fused = 1;
            n->nodes[d->in[0]].act = d->op == LB_OP_RELU ? 1 : 2;
        }
    }
    /* A residual add right after BN, of an earlier tensor, with an activation (ResNet's bn2 +
     * identity + ReLU) folds into BN: its affine pass adds the residual and applies the
     * activation, its backward masks once and hands the residual its gradient. The add and its
     * ReLU become no-ops; the BN output buffer never holds the bare BN result. */
    for (int i = 1; i + 1 < n->nnodes; i++) {
        lb_node *b = &n->nodes[i], *a = &n->nodes[i + 1];
        if (b->op == LB_OP_BN && b->act == 0 && a->op == LB_OP_ADD && a->alias && a->in[0] == i &&
            a->in[1] > 0 && a->in[1] < i && a->act != 0 && !getenv("LOWBIT_NO_FUSE")) {
            b->act = a->act;
            b->res = a->in[1];
            a->fused = 1;
        }
    }
    n->param = calloc(n->nparam ? n->nparam : 1, sizeof(float));
    n->grad = calloc(n->nparam ? n->nparam : 1, sizeof(float));
    n->state = calloc(n->nstate ? n->nstate : 1, sizeof(float));
    if (!n->param || !n->grad || !n->state)
        return lb_error_set(LB_ENOMEM, "cannot allocate %zu parameters", n->nparam);
    size_t scratch, dtmp, dwtmp;
    lb_arena_init_counting(&n->act);
    carve(n, &scratch, &dtmp, &dwtmp);
    size_t need = n->act.used + (scratch + dtmp + dwtmp + 3 * 16) * sizeof(float);
    lb_status st = lb_arena_reserve(&n->act, need);
    if (st != LB_OK) return st;
    carve(n, &scratch, &dtmp, &dwtmp);
    n->scratch_floats = scratch;
    n->scratch = lb_arena_floats(&n->act, scratch ? scratch : 1);
    n->dtmp = lb_arena_floats(&n->act, dtmp ? dtmp : 1);
    n->dwtmp = lb_arena_floats(&n->act, dwtmp ? dwtmp : 1);
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op == LB_OP_CONV || d->op == LB_OP_LINEAR) {
            st = bind_quants(n, d);
            if (st != LB_OK) { /* lb_error_msg's buffer is the one written next: copy it first */
                char why[256];
                snprintf(why, sizeof why, "%s", lb_error_msg());
                return lb_error_set(st, "layer '%s': %s", d->name, why);
            }
        }
    }
    return LB_OK;
}

void lb_net_init(lb_net *n, uint64_t seed) {
    lb_rng r;
    lb_rng_seed(&r, seed);
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op == LB_OP_CONV) {
            const lb_tensor_info *t = &n->params[d->pw];
            /* Kaiming normal, fan_out, ReLU gain (as torch.nn.init.kaiming_normal_) */
            float sd = sqrtf(2.0f / (float)(t->shape[0] * t->shape[2] * t->shape[3]));
            float *w = n->param + t->off;
            for (size_t j = 0; j < t->n; j++) w[j] = sd * lb_rng_normal(&r);
            if (d->pb >= 0) memset(n->param + n->params[d->pb].off, 0, d->c * sizeof(float));
        } else if (d->op == LB_OP_LINEAR) {
            const lb_tensor_info *t = &n->params[d->pw];
            /* PyTorch's nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), the classifier too:
             * a smaller classifier (0.1x, zero bias) started runs at exactly ln(classes) but
             * made the head's LSQ step 10x smaller and 10x easier to drive to its floor (sweep
             * runs on a colour set collapsed that way; docs/robust.md) */
            float b = 1.0f / sqrtf((float)t->shape[1]);
            float *w = n->param + t->off;
            for (size_t j = 0; j < t->n; j++) w[j] = b * (2 * lb_rng_uniform(&r) - 1);
            if (d->pb >= 0) {
                float *bb = n->param + n->params[d->pb].off;
                for (int j = 0; j < d->c; j++) bb[j] = b * (2 * lb_rng_uniform(&r) - 1);
            }
        } else if (d->op == LB_OP_BN) {
            float *g = n->param + n->params[d->pw].off, *b = n->param + n->params[d->pb].off;
            float *rv = n->state + n->states[d->svar].off, *rm = n->state + n->states[d->smean].off;
            for (int j = 0; j < d->c; j++) {
                g[j] = 1;
                b[j] = 0;
                rm[j] = 0;
                rv[j] = 1;
            }
        }
        if (d->op == LB_OP_LIF && d->pw >= 0) {
            float *b = n->param + n->params[d->pw].off;
            for (size_t j = 0; j < n->params[d->pw].n; j++) b[j] = d->lif.beta;
        }
        if (d->op == LB_OP_CONV || d->op == LB_OP_LINEAR) {
            /* re-bind resets quantizer parameters to their defaults (not yet initialized) */
            bind_quants(n, d);
        }
    }
    lb_rng_derive(&n->rng, seed, 0xD80, 0);
}
