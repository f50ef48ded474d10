/* Forward and backward passes over the planned graph; each node is a call into lb_ops / lb_quant.
 * No allocation happens here. */
#include "nn_internal.h"
#include "lb_backend.h"

#include <string.h>
#include <time.h>

static float *P(const lb_net *n, int idx) {
    return idx >= 0 ? n->param + n->params[idx].off : NULL;
}
static float *G(const lb_net *n, int idx) {
    return idx >= 0 ? n->grad + n->params[idx].off : NULL;
}
static float *S(const lb_net *n, int idx) {
    return idx >= 0 ? n->state + n->states[idx].off : NULL;
}

/* Per-node timing for `lowbit bench --profile`: off unless n->prof is set. */
static double prof_now(const lb_net *n) {
    if (!n->prof) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void conv_desc(const lb_net *n, const lb_node *d, int B, lb_conv2d_desc *cd) {
    const lb_node *s = &n->nodes[d->in[0]];
    lb_conv2d_desc_init(cd, B, s->c, s->h, s->w, d->c, d->k, d->stride, d->pad, d->groups);
}

static void pool_desc(const lb_net *n, const lb_node *d, int B, lb_pool_desc *pd) {
    const lb_node *s = &n->nodes[d->in[0]];
    lb_pool_desc_init(pd, B, s->c, s->h, s->w, d->k, d->stride, d->pad);
}

/* Quantized operands of a conv/linear node: input codes*step and weight codes*step. */
static void quant_operands(lb_net *n, lb_node *d, int B, const float *x, const float **xin,
                           const float **win) {
    *xin = x;
    *win = P(n, d->pw);
    if (d->wstd) { /* MaQD's weight standardization: the quantizer sees the standardized weights */
        size_t wn = n->params[d->pw].n;
        lb_wstd_forward(d->c, wn / (size_t)d->c, *win, d->wsbuf, NULL, d->wsinv);
        *win = d->wsbuf;
    }
    if (n->quant_off) return; /* the float phase: the float operands themselves */
    if (d->aqcfg.kind != LB_Q_NONE) {
        lb_quant_forward(&d->aq, (size_t)B, x, d->xq, n->training);
        *xin = d->xq;
    }
    if (d->wqcfg.kind != LB_Q_NONE) {
        /* the float accuracy of a reg model: its training forward without the snap, once its
         * levels exist (an uninitialized quantizer must not initialize in an eval forward) */
        int tr = n->training || (n->reg_float && d->wqcfg.kind == LB_Q_REG && d->wq.state[0] != 0);
        lb_quant_forward(&d->wq, 1, *win, d->wqbuf, tr);
        /* a chip (lb_chip_attach) replaces the quantized weights by the ones it holds */
        if (!n->training && n->wq_hook)
            n->wq_hook(n->wq_hook_ctx, n, (int)(d - n->nodes), d->wqbuf);
        *win = d->wqbuf;
    }
}

/* The LIF kernel's description for a batch of Bn samples. */
static lb_lif_desc lif_desc(const lb_net *n, const lb_node *d, int Bn, const float **beta) {
    lb_lif_desc k = d->lif.k;
    k.t = d->tm;
    k.n = Bn;
    k.c = d->c;
    k.hw = d->h * d->w;
    *beta = d->pw >= 0 ? P(n, d->pw) : &d->lif.beta;
    return k;
}

/* The spiking nodes' forward (Bn samples; their frames are Bn * T). */
static void forward_snn(lb_net *n, lb_node *d, const lb_node *s, int Bn, const float *in) {
    size_t ssz = lb_node_size(s), dsz = lb_node_size(d);
    switch (d->op) {
    case LB_OP_ENCODE:
        if (d->enc == LB_ENC_DIRECT)
            lb_repeat_forward(d->tm, (size_t)Bn * ssz, in, d->y);
        else if (d->enc == LB_ENC_RATE) /* training: fresh draws from the checkpointed RNG */
            lb_rate_encode(d->tm, Bn, ssz, in, d->y,
                           n->training ? lb_rng_u64(&n->rng) : LB_RATE_EVAL_KEY, n->training);
        else
            lb_frames_forward(d->tm, Bn, d->c, (size_t)d->h * d->w, in, d->y);
        break;
    case LB_OP_LIF: {
        const float *beta;
        lb_lif_desc k = lif_desc(n, d, Bn, &beta);
        n->be->lif_forward(&k, in, beta, d->y, d->mem);
        break;
    }
    case LB_OP_LN:
        lb_ln_forward(lb_node_frames(d, Bn), dsz, in, d->y, d->mean, d->invstd);
        break;
    case LB_OP_TSUM:
        lb_tsum_forward(d->k, (size_t)Bn * dsz, d->scale, in, d->y);
        break;
    default:
        break;
    }
}

const float *lb_net_forward(lb_net *n, const float *x, int Bn, int training) {
    /* kernels size their per-thread scratch by lb_threads_get(): run with the planned count */
    if (lb_threads_get() != n->nthreads) lb_threads_set(n->nthreads);
    n->batch = Bn;
    n->training = training;
    n->nodes[0].y = (float *)x; /* read only: nothing writes the input node */
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        const lb_node *s = &n->nodes[d->in[0]];
        const float *in = s->y;
        int B = lb_node_frames(d, Bn); /* frames: T*Bn inside a spiking network */
        double t0 = prof_now(n);
        size_t cnt = (size_t)B * lb_node_size(d);
        switch (d->op) {
        case LB_OP_CONV: {
            const float *xin, *win;
            quant_operands(n, d, B, in, &xin, &win);
            lb_conv2d_desc cd;
            conv_desc(n, d, B, &cd);
            if (training) cd.moments = d->moments;
            n->be->conv2d_forward(&cd, xin, win, P(n, d->pb), d->y, n->scratch);
            break;
        }
        case LB_OP_LINEAR: {
            const float *xin, *win;
            quant_operands(n, d, B, in, &xin, &win);
            n->be->linear_forward(B, (int)lb_node_size(s), d->c, xin, win, P(n, d->pb), d->y);
            break;
        }
        case LB_OP_BN: {
            const lb_bn_desc bd = {.n = B,
                                   .c = d->c,
                                   .hw = d->h * d->w,
                                   .eps = 1e-5f,
                                   .momentum = 0.1f,
                                   .act = d->act,
                                   .moments = d->moments,
                                   .res = d->res ? n->nodes[d->res].y : NULL};
            if (training && d->norm)
                n->be->lbn_forward_train(&bd, in, P(n, d->pw), P(n, d->pb), d->y, d->mean,
                                         d->invstd, S(n, d->smean), S(n, d->svar));
            else if (training)
                n->be->bn_forward_train(&bd, in, P(n, d->pw), P(n, d->pb), d->y, d->mean, d->invstd,
                                        S(n, d->smean), S(n, d->svar));
            else
                n->be->bn_forward_eval(&bd, in, P(n, d->pw), P(n, d->pb), S(n, d->smean),
                                       S(n, d->svar), d->y);
            break;
        }
        case LB_OP_RELU: /* fused: BN or the add applied it */
            if (!d->fused) n->be->relu_forward(cnt, in, d->y);
            break;
        case LB_OP_RELU6:
            if (!d->fused) n->be->relu6_forward(cnt, in, d->y);
            break;
        case LB_OP_FLATTEN:
            if (!d->alias) memcpy(d->y, in, cnt * sizeof(float));
            break;
        case LB_OP_MAXPOOL: {
            lb_pool_desc pd;
            pool_desc(n, d, B, &pd);
            n->be->maxpool_forward(&pd, in, d->y, d->argmax);
            break;
        }
        case LB_OP_AVGPOOL: {
            lb_pool_desc pd;
            pool_desc(n, d, B, &pd);
            n->be->avgpool_forward(&pd, in, d->y);
            break;
        }
        case LB_OP_GAP:
            n->be->gap_forward(B, s->c, s->h * s->w, in, d->y);
            break;
        case LB_OP_ADD: /* fused: its BN operand's forward did it */
            if (!d->fused) n->be->add_forward(cnt, d->act, in, n->nodes[d->in[1]].y, d->y);
            break;
        case LB_OP_SHORTCUT:
            n->be->shortcut_forward(B, s->c, s->h, s->w, d->c, d->stride, in, d->y);
            break;
        case LB_OP_DROPOUT:
            if (training && d->p > 0)
                n->be->dropout_forward(cnt, d->p, in, d->y, d->mask, &n->rng);
            else
                memcpy(d->y, in, cnt * sizeof(float));
            break;
        default:
            forward_snn(n, d, s, Bn, in);
            break;
        }
        if (n->prof) n->prof[2 * i] += prof_now(n) - t0;
    }
    return n->nodes[n->nnodes - 1].y;
}

/* The gradient destination for producer `p` of the current node: NULL for the input image;
 * whether to accumulate follows from earlier contributions. */
static float *grad_target(lb_net *n, int p, int *acc) {
    lb_node *s = &n->nodes[p];
    if (s->op == LB_OP_INPUT) {
        *acc = 0;
        return NULL;
    }
    *acc = s->dy_written;
    s->dy_written = 1;
    return s->dy;
}

static void add_grad(float *dx, const float *dy, size_t cnt, int acc) {
    if (!dx) return;
    if (acc)
        for (size_t i = 0; i < cnt; i++) dx[i] += dy[i];
    else
        memcpy(dx, dy, cnt * sizeof(float));
}

static lb_status backward_linear_or_conv(lb_net *n, lb_node *d, int B) {
    const lb_node *s = &n->nodes[d->in[0]];
    int acc;
    float *dx = grad_target(n, d->in[0], &acc);
    int aq = !n->quant_off && d->aqcfg.kind != LB_Q_NONE;
    int wq = !n->quant_off && d->wqcfg.kind != LB_Q_NONE;
    if (n->quant_off) { /* quantizers that did not run: no gradient (a quantizer's backward
                         * overwrites its own, so nothing else would clear it) */
        if (d->aq.nparam > 0) memset(d->aq.dparam, 0, (size_t)d->aq.nparam * sizeof(float));
        if (d->wq.nparam > 0) memset(d->wq.dparam, 0, (size_t)d->wq.nparam * sizeof(float));
    }
    const float *xin = aq ? d->xq : s->y;
    const float *win = wq ? d->wqbuf : d->wstd ? d->wsbuf : P(n, d->pw);
    /* with an activation quantizer the conv's input gradient lands in dtmp first; it is needed
     * even for the image input, since the step size gets its gradient from it */
    float *dxin = aq ? n->dtmp : dx;
    int acc_in = aq ? 0 : acc;
    float *dw = wq || d->wstd ? n->dwtmp : G(n, d->pw);
    if (d->op == LB_OP_CONV) {
        lb_conv2d_desc cd;
        conv_desc(n, d, B, &cd);
        n->be->conv2d_backward(&cd, xin, win, d->dy, dxin, acc_in, dw, G(n, d->pb), n->scratch);
    } else {
        n->be->linear_backward(B, (int)lb_node_size(s), d->c, xin, win, d->dy, dxin, acc_in, dw,
                               G(n, d->pb));
    }
    if (aq) lb_quant_backward(&d->aq, (size_t)B, s->y, n->dtmp, dx ? dx : n->dtmp, dx ? acc : 0);
    if (wq && !d->wstd) lb_quant_backward(&d->wq, 1, P(n, d->pw), n->dwtmp, G(n, d->pw), 0);
    if (d->wstd) { /* through the quantizer (in place in dwtmp), then the standardization */
        size_t wn = n->params[d->pw].n;
        if (wq) lb_quant_backward(&d->wq, 1, d->wsbuf, n->dwtmp, n->dwtmp, 0);
        lb_wstd_backward(d->c, wn / (size_t)d->c, d->wsbuf, d->wsinv, n->dwtmp, G(n, d->pw));
    }
    return lb_check_finite(d->name, G(n, d->pw), n->params[d->pw].n);
}

/* The spiking nodes' backward. */
static void backward_snn(lb_net *n, lb_node *d, const lb_node *s, int Bn) {
    size_t ssz = lb_node_size(s), dsz = lb_node_size(d);
    int acc;
    float *dx = grad_target(n, d->in[0], &acc);
    switch (d->op) {
    case LB_OP_ENCODE: /* rate spikes and event frames come from data: nothing to pass back */
        if (dx && d->enc == LB_ENC_DIRECT)
            lb_repeat_backward(d->tm, (size_t)Bn * ssz, d->dy, dx, acc);
        break;
    case LB_OP_LIF: {
        const float *beta;
        lb_lif_desc k = lif_desc(n, d, Bn, &beta);
        float *db = d->pw >= 0 ? G(n, d->pw) : NULL;
        if (dx) n->be->lif_backward(&k, beta, d->y, d->mem, d->dy, dx, acc, db, d->part);
        break;
    }
    case LB_OP_LN:
        if (dx) lb_ln_backward(lb_node_frames(d, Bn), dsz, d->y, d->invstd, d->dy, dx, acc);
        break;
    case LB_OP_TSUM:
        if (dx) lb_tsum_backward(d->k, (size_t)Bn * dsz, d->scale, d->dy, dx, acc);
        break;
    default:
        break;
    }
}

lb_status lb_net_backward(lb_net *n, const float *dlogits) {
    int Bn = n->batch;
    if (lb_threads_get() != n->nthreads) lb_threads_set(n->nthreads);
    for (int i = 0; i < n->nnodes; i++) n->nodes[i].dy_written = 0;
    lb_node *last = &n->nodes[n->nnodes - 1];
    memcpy(last->dy, dlogits, (size_t)Bn * lb_node_size(last) * sizeof(float));
    last->dy_written = 1;
    for (int i = n->nnodes - 1; i >= 1; i--) {
        lb_node *d = &n->nodes[i];
        const lb_node *s = &n->nodes[d->in[0]];
        int B = lb_node_frames(d, Bn);
        size_t cnt = (size_t)B * lb_node_size(d);
        if (!d->dy_written) memset(d->dy, 0, cnt * sizeof(float)); /* output unused */
        double t0 = prof_now(n);
        int acc;
        float *dx;
        switch (d->op) {
        case LB_OP_CONV:
        case LB_OP_LINEAR: {
            lb_status st = backward_linear_or_conv(n, d, B);
            if (st != LB_OK) return st;
            break;
        }
        case LB_OP_BN: {
            lb_bn_desc bd = {.n = B,
                             .c = d->c,
                             .hw = d->h * d->w,
                             .eps = 1e-5f,
                             .momentum = 0.1f,
                             .act = d->act};
            dx = grad_target(n, d->in[0], &acc);
            if (d->res) bd.dres = grad_target(n, d->res, &bd.dres_acc);
            if (d->norm) /* LBN: one kernel, with or without the fused activation */
                n->be->lbn_backward(&bd, s->y, d->y, P(n, d->pw), d->mean, d->invstd, d->dy, dx,
                                    acc, G(n, d->pw), G(n, d->pb));
            else if (d->act)
                n->be->bn_backward_act(&bd, s->y, d->y, P(n, d->pw), d->mean, d->invstd, d->dy, dx,
                                       acc, G(n, d->pw), G(n, d->pb));
            else
                n->be->bn_backward(&bd, s->y, P(n, d->pw), d->mean, d->invstd, d->dy, dx, acc,
                                   G(n, d->pw), G(n, d->pb));
            break;
        }
        case LB_OP_RELU:
        case LB_OP_RELU6:
            dx = grad_target(n, d->in[0], &acc);
            if (!dx || d->fused) break; /* fused: BN's / the add's backward applies the mask */
            if (d->alias) acc = 0;      /* dx == dy: the sole consumer rewrites in place */
            if (d->op == LB_OP_RELU)
                n->be->relu_backward(cnt, d->y, d->dy, dx, acc);
            else
                n->be->relu6_backward(cnt, d->y, d->dy, dx, acc);
            break;
        case LB_OP_FLATTEN:
            dx = grad_target(n, d->in[0], &acc);
            if (!d->alias) add_grad(dx, d->dy, cnt, acc);
            break;
        case LB_OP_MAXPOOL: {
            lb_pool_desc pd;
            pool_desc(n, d, B, &pd);
            dx = grad_target(n, d->in[0], &acc);
            if (dx) n->be->maxpool_backward(&pd, d->argmax, d->dy, dx, acc);
            break;
        }
        case LB_OP_AVGPOOL: {
            lb_pool_desc pd;
            pool_desc(n, d, B, &pd);
            dx = grad_target(n, d->in[0], &acc);
            if (dx) n->be->avgpool_backward(&pd, d->dy, dx, acc);
            break;
        }
        case LB_OP_GAP:
            dx = grad_target(n, d->in[0], &acc);
            if (dx) n->be->gap_backward(B, s->c, s->h * s->w, d->dy, dx, acc);
            break;
        case LB_OP_ADD: {
            if (d->fused) { /* BN (operand 0, in place) masks dy and writes operand 1's gradient */
                grad_target(n, d->in[0], &acc);
                break;
            }
            /* in place over operand 0: its gradient is d->dy itself (masked there if fused) */
            int acc1;
            float *da = grad_target(n, d->in[0], &acc);
            float *db = grad_target(n, d->in[1], &acc1);
            if (d->alias) da = d->dy, acc = 0;
            n->be->add_backward(cnt, d->act, d->y, d->dy, da, acc, db, acc1);
            break;
        }
        case LB_OP_SHORTCUT:
            dx = grad_target(n, d->in[0], &acc);
            if (dx) n->be->shortcut_backward(B, s->c, s->h, s->w, d->c, d->stride, d->dy, dx, acc);
            break;
        case LB_OP_DROPOUT:
            dx = grad_target(n, d->in[0], &acc);
            if (!dx) break;
            if (n->training && d->p > 0)
                n->be->dropout_backward(cnt, d->p, d->mask, d->dy, dx, acc);
            else
                add_grad(dx, d->dy, cnt, acc);
            break;
        default:
            backward_snn(n, d, s, Bn);
            break;
        }
        if (n->prof) n->prof[2 * i + 1] += prof_now(n) - t0;
    }
    return LB_OK;
}

float lb_net_reg(lb_net *n) {
    float r = 0;
    if (n->quant_off) return 0;
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if ((d->op == LB_OP_CONV || d->op == LB_OP_LINEAR) && d->wqcfg.kind != LB_Q_NONE)
            r += lb_quant_reg(&d->wq, 1, P(n, d->pw), G(n, d->pw));
    }
    return r;
}

int lb_net_project(lb_net *n, int *node, int *is_weight) {
    int at = 0;
    if (node) *node = 0;
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op == LB_OP_LIF && d->pw >= 0) { /* beta into [0, 1], as snnTorch clamps it */
            float *b = P(n, d->pw);
            for (size_t j = 0; j < n->params[d->pw].n; j++)
                b[j] = b[j] < 0 ? 0 : b[j] > 1 ? 1 : b[j];
        }
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        int w = lb_quant_project(&d->wq), a = lb_quant_project(&d->aq);
        if ((w || a) && node && !*node) {
            *node = i;
            if (is_weight) *is_weight = w > 0;
        }
        at += w + a;
    }
    return at;
}
