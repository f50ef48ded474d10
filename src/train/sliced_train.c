/* --quant sliced in the trainer (methods.md sec. 4, docs/mixed.md): the three phases, the size
 * penalty with its ramp, quantizer gradients clipped to [-d, d] and applied every K steps, BN
 * re-estimation after the last epoch and the budget check on the exported model's bytes. The
 * quantizer itself (forward, gradients, size in kB) is src/quant/sliced.c's.
 *
 * "Applied every K steps" is done by putting the quantizer parameters back after the optimizer on
 * the other steps (and on every step of a frozen phase): whatever the optimizer (momentum, Adam,
 * weight decay) would have moved, they stay exactly where they were, and the saved copy is the
 * only memory this needs (planned once). */
#include "train_internal.h"
#include "lb_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct lb_sliced_run {
    int epochs, spe; /* the run's epochs, steps per epoch */
    int ph[3];       /* phase lengths in epochs (all 0: the whole run is the mixed phase) */
    int phase;       /* this epoch's: 0 frozen QAT, 1 mixed, 2 frozen fine-tune */
    int every;       /* K */
    double tw, ta;   /* budgets in kB (0: none) */
    float *save;     /* the sliced quantizers' parameters before an update they must not take */
    size_t nsave;
    float *gd, *gx;          /* per-slice size gradients (scratch, the widest quantizer's slices) */
    int restore;             /* this step's update of the quantizer parameters is undone */
    double sw, sa, pen, rho; /* the last step's sizes (kB), penalty and ramp */
    char fit[1024]; /* what lb_sliced_fit_budget did, when ("" nothing), for the final line */
};

static const char *const phase_name[3] = {"qat", "mixed", "finetune"};

/* Calls fn on every sliced quantizer with the number of elements its size counts (weights: the
 * tensor; activations: one sample) and whether it is a weight quantizer. */
typedef void (*qfn)(void *ctx, lb_quant *q, size_t n, int weight);
static void each_sliced(lb_net *n, qfn fn, void *ctx) {
    for (int i = 1; i < n->nnodes; i++) {
        lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        if (d->wqcfg.kind == LB_Q_SLICED) fn(ctx, &d->wq, (size_t)d->wqcfg.numel, 1);
        if (d->aqcfg.kind == LB_Q_SLICED) fn(ctx, &d->aq, d->aq.inner, 0);
    }
}

lb_status lb_sliced_cfg_check(const lb_train_cfg *c) {
    lb_qkind w = lb_quant_plan_wkind(&c->model.q), a = lb_quant_plan_akind(&c->model.q);
    int any = c->phases[0] || c->phases[1] || c->phases[2];
    if (w != LB_Q_SLICED && a != LB_Q_SLICED) {
        if (any || c->budget_w_kb || c->budget_a_kb)
            return lb_error_set(LB_EINVAL, "--phases, --budget-weights and --budget-acts need "
                                           "sliced quantizers (--quant sliced, or --wquant / "
                                           "--aquant sliced)");
        return LB_OK;
    }
    if (c->phases[0] < 0 || c->phases[1] < 0 || c->phases[2] < 0)
        return lb_error_set(LB_EINVAL, "--phases %d,%d,%d: epoch counts must be >= 0", c->phases[0],
                            c->phases[1], c->phases[2]);
    if (!(c->budget_w_kb >= 0) || !(c->budget_a_kb >= 0))
        return lb_error_set(LB_EINVAL, "--budget-weights / --budget-acts must be > 0 kB");
    if (c->budget_w_kb > 0 && w != LB_Q_SLICED)
        return lb_error_set(LB_EINVAL, "--budget-weights needs sliced weights (--wquant sliced)");
    if (c->budget_a_kb > 0 && a != LB_Q_SLICED)
        return lb_error_set(LB_EINVAL, "--budget-acts needs sliced activations (--aquant sliced)");
    if (c->sliced_every < 1)
        return lb_error_set(LB_EINVAL, "--sliced-every must be >= 1, got %d", c->sliced_every);
    if (c->learn_bits)
        return lb_error_set(LB_EINVAL, "--learn-bits adaqat and --quant sliced both learn the "
                                       "bit-widths: choose one");
    return LB_OK;
}

typedef struct count_ctx {
    size_t nparam;
    int maxch;
    double min_w, min_a; /* the smallest sizes: every slice at K = 1 */
} count_ctx;

static void count_fn(void *ctx, lb_quant *q, size_t n, int weight) {
    count_ctx *k = ctx;
    k->nparam += (size_t)q->nparam;
    k->maxch = q->ch > k->maxch ? q->ch : k->maxch;
    double b = q->cfg.is_signed ? 2 : 1;
    *(weight ? &k->min_w : &k->min_a) += (double)n * b / 8000.0;
}

typedef struct floor_ctx {
    float *buf;
    size_t off;
    int phase; /* 0 save and set K = 1, 1 put back */
} floor_ctx;

static void floor_fn(void *ctx, lb_quant *q, size_t n, int weight) {
    (void)n;
    floor_ctx *f = ctx;
    if (!weight) return;
    if (f->phase == 0) {
        memcpy(f->buf + f->off, q->param, (size_t)q->nparam * sizeof *q->param);
        for (int c = 0; c < q->ch; c++) { /* d = xmax: K = 1 */
            float v = fminf(q->param[q->ch + c], lb_sliced_dmax(q));
            q->param[c] = q->param[q->ch + c] = v;
        }
    } else {
        memcpy(q->param, f->buf + f->off, (size_t)q->nparam * sizeof *q->param);
    }
    f->off += (size_t)q->nparam;
    lb_quant_sliced_sync(q, "sliced floor"); /* valid by construction: sets the bounds */
}

/* The budgets against the exporter's own figures for the smallest model this graph can give:
 * every weight slice at K = 1 (2 bits; the codes, the requantization constants and the input
 * table), and the activations, whose exported peak does not depend on their widths (the integer
 * model keeps every code in a byte). The weight parameters are put back afterwards. */
lb_status lb_sliced_export_bytes(const run *r, const lb_train_cfg *c, size_t *wb, size_t *ab) {
    lb_int_model *im;
    lb_status st = lb_int_from_net(r->net, c->model.norm.mean, c->model.norm.std, &im);
    if (st != LB_OK) return st;
    st = lb_int_export_bytes(im, wb, ab);
    lb_int_free(im);
    return st;
}

static lb_status check_floor(run *r, const lb_train_cfg *c) {
    size_t n = 0;
    for (int i = 1; i < r->net->nnodes; i++)
        if (r->net->nodes[i].wqcfg.kind == LB_Q_SLICED) n += (size_t)r->net->nodes[i].wq.nparam;
    floor_ctx f = {malloc((n ? n : 1) * sizeof(float)), 0, 0};
    if (!f.buf) return lb_error_set(LB_ENOMEM, "out of memory (sliced)");
    each_sliced(r->net, floor_fn, &f);
    size_t wb = 0, ab = 0;
    lb_status st = lb_sliced_export_bytes(r, c, &wb, &ab);
    f.off = 0, f.phase = 1;
    each_sliced(r->net, floor_fn, &f);
    free(f.buf);
    if (st != LB_OK) {
        char why[400]; /* lb_error_msg's buffer is the one written next */
        snprintf(why, sizeof why, "%s", lb_error_msg());
        return lb_error_set(LB_EINVAL,
                            "--budget-weights/--budget-acts: the model has no integer form whose "
                            "bytes could be counted (%s)",
                            why);
    }
    if (c->budget_w_kb > 0 && (double)wb > lb_sliced_budget_bytes(c->budget_w_kb))
        return lb_error_set(LB_EINVAL,
                            "--budget-weights %g kB is below the smallest possible model: %.3f kB "
                            "(the exported model with every weight slice at 2 bits: codes, "
                            "requantization constants, input table)",
                            c->budget_w_kb, (double)wb / 1000.0);
    if (c->budget_a_kb > 0 && (double)ab > lb_sliced_budget_bytes(c->budget_a_kb))
        return lb_error_set(LB_EINVAL,
                            "--budget-acts %g kB is below the smallest possible model: %.3f kB "
                            "(the exported integer model keeps every activation code in a byte "
                            "whatever its width, so its peak activation memory is the same at "
                            "any bits)",
                            c->budget_a_kb, (double)ab / 1000.0);
    return LB_OK;
}

/* A budget in bytes: kB times 1000, rounded to the byte, so that a budget written with three
 * decimals (a model's own bytes, as bench/pareto gives them) is that many bytes exactly and not a
 * hair below them (180.896 * 1000 is not 180896 in binary floating point). 0: none. */
double lb_sliced_budget_bytes(double kb) {
    return kb > 0 ? (double)llround(kb * 1000.0) : 0.0;
}

lb_status lb_sliced_setup(run *r, const lb_train_cfg *c, int steps_per_epoch) {
    count_ctx k = {0};
    each_sliced(r->net, count_fn, &k);
    if (!k.nparam) return LB_OK;
    int sum = c->phases[0] + c->phases[1] + c->phases[2];
    if (sum && sum != c->epochs)
        return lb_error_set(LB_EINVAL,
                            "--phases %d,%d,%d: the phases add up to %d epochs, the run has %d "
                            "(--epochs)",
                            c->phases[0], c->phases[1], c->phases[2], sum, c->epochs);
    if (sum && !c->phases[1] && (c->budget_w_kb > 0 || c->budget_a_kb > 0))
        return lb_error_set(LB_EINVAL,
                            "--phases %d,0,%d: a budget needs a mixed phase (its "
                            "penalty acts there only)",
                            c->phases[0], c->phases[2]);
    if (c->budget_w_kb > 0 && lb_sliced_budget_bytes(c->budget_w_kb) < llround(k.min_w * 1000.0))
        return lb_error_set(LB_EINVAL,
                            "--budget-weights %g kB is below the smallest possible model: %.3f kB "
                            "(every weight at 2 bits, one code each side of 0)",
                            c->budget_w_kb, k.min_w);
    if (c->budget_a_kb > 0 && lb_sliced_budget_bytes(c->budget_a_kb) < llround(k.min_a * 1000.0))
        return lb_error_set(LB_EINVAL,
                            "--budget-acts %g kB is below the smallest possible model: %.3f kB "
                            "(every quantized activation at 1 bit unsigned, 2 signed)",
                            c->budget_a_kb, k.min_a);
    if (c->budget_w_kb > 0 || c->budget_a_kb > 0) {
        lb_status st = check_floor(r, c);
        if (st != LB_OK) return st;
    }
    lb_sliced_run *s = calloc(1, sizeof *s);
    if (!s) return lb_error_set(LB_ENOMEM, "out of memory (sliced)");
    r->sl = s;
    s->save = malloc(k.nparam * sizeof *s->save);
    s->gd = malloc((size_t)k.maxch * sizeof *s->gd);
    s->gx = malloc((size_t)k.maxch * sizeof *s->gx);
    if (!s->save || !s->gd || !s->gx) return lb_error_set(LB_ENOMEM, "out of memory (sliced)");
    s->nsave = k.nparam;
    s->epochs = c->epochs;
    s->spe = steps_per_epoch;
    memcpy(s->ph, c->phases, sizeof s->ph);
    if (!sum) s->ph[1] = c->epochs;
    s->every = c->sliced_every;
    s->tw = c->budget_w_kb;
    s->ta = c->budget_a_kb;
    return LB_OK;
}

void lb_sliced_free(run *r) {
    if (!r->sl) return;
    free(r->sl->save);
    free(r->sl->gd);
    free(r->sl->gx);
    free(r->sl);
    r->sl = NULL;
}

/* lb_sliced_fit_budget, its note kept after those of earlier fits, saying when */
static lb_status fit_at(run *r, const lb_train_cfg *c, const char *when) {
    lb_sliced_run *s = r->sl;
    char note[400];
    lb_status st = lb_sliced_fit_budget(r, c, note, sizeof note);
    size_t n = strlen(s->fit);
    if (st == LB_OK && note[0])
        snprintf(s->fit + n, sizeof s->fit - n, "%s%s: %s", n ? "\n" : "", when, note);
    return st;
}

lb_status lb_sliced_epoch_start(run *r, const lb_train_cfg *c, int epoch) {
    lb_sliced_run *s = r->sl;
    if (!s) return LB_OK;
    s->phase = epoch < s->ph[0] ? 0 : epoch < s->ph[0] + s->ph[1] ? 1 : 2;
    /* The budget is a constraint: the mixed phase starts from a model that meets it, when the
     * fixed-bit phase has initialized the quantizers (the penalty alone moves a width by about a
     * bit an epoch, so the weights would otherwise meet the budget's widths in the fine-tune
     * only), and so does the fine-tune (the mixed phase may have widened slices again). */
    if (s->ph[0] > 0 && s->ph[1] > 0 && epoch == s->ph[0]) return fit_at(r, c, "mixed phase");
    if (s->ph[2] > 0 && epoch == s->ph[0] + s->ph[1]) return fit_at(r, c, "fine-tune");
    return LB_OK;
}

typedef struct pen_ctx {
    lb_sliced_run *s;
    int grads;     /* second pass: add the gradient */
    double sw, sa; /* sizes in kB */
    double cw, ca; /* dP/dS_w, dP/dS_a */
    size_t off;    /* into save */
    int save;      /* copy the parameters */
    int clip;      /* clip the gradients to [-d, d] */
} pen_ctx;

static void pen_fn(void *ctx, lb_quant *q, size_t n, int weight) {
    pen_ctx *p = ctx;
    lb_sliced_run *s = p->s;
    if (!p->grads) {
        *(weight ? &p->sw : &p->sa) += lb_quant_sliced_kb(q, n, NULL, NULL);
        return;
    }
    double coef = weight ? p->cw : p->ca;
    if (coef != 0) {
        lb_quant_sliced_kb(q, n, s->gd, s->gx);
        for (int c = 0; c < q->ch; c++) {
            q->dparam[c] += (float)(coef * s->gd[c]);
            q->dparam[q->ch + c] += (float)(coef * s->gx[c]);
        }
    }
    for (int c = 0; p->clip && c < q->ch; c++) { /* methods.md: clipped to [-d, d] */
        float d = q->param[c];
        for (int j = 0; j < 2; j++) {
            float *g = &q->dparam[j * q->ch + c];
            *g = *g > d ? d : *g < -d ? -d : *g;
        }
    }
    if (p->save) { /* not applied: no gradient either, so momentum does not store it up */
        memcpy(s->save + p->off, q->param, (size_t)q->nparam * sizeof *q->param);
        memset(q->dparam, 0, (size_t)q->nparam * sizeof *q->dparam);
    }
    p->off += (size_t)q->nparam;
}

double lb_sliced_before_update(run *r, long step) {
    lb_sliced_run *s = r->sl;
    if (!s) return 0;
    pen_ctx p = {.s = s};
    each_sliced(r->net, pen_fn, &p); /* sizes */
    s->sw = p.sw, s->sa = p.sa, s->pen = 0, s->rho = 0;
    if (s->phase == 1) {
        /* rho rises linearly 0.01 -> 1 over the first half of the mixed phase, then stays */
        long b0 = (long)s->ph[0] * s->spe, half = (long)s->ph[1] * s->spe / 2;
        double t = half > 0 ? (double)(step - b0) / (double)half : 1;
        s->rho = 0.01 + 0.99 * (t < 0 ? 0 : t > 1 ? 1 : t);
        double ew = s->tw > 0 && p.sw > s->tw ? p.sw - s->tw : 0;
        double ea = s->ta > 0 && p.sa > s->ta ? p.sa - s->ta : 0;
        s->pen = s->rho * 1e-4 * (ew * ew + ea * ea);
        p.cw = s->rho * 1e-4 * 2 * ew;
        p.ca = s->rho * 1e-4 * 2 * ea;
    }
    s->restore = s->phase != 1 || step % s->every != 0;
    p.grads = 1;
    p.save = s->restore;
    p.clip = s->phase == 1;
    each_sliced(r->net, pen_fn, &p);
    return s->pen;
}

typedef struct back_ctx {
    const float *src;
    size_t off;
} back_ctx;

static void back_fn(void *ctx, lb_quant *q, size_t n, int weight) {
    (void)n, (void)weight;
    back_ctx *b = ctx;
    memcpy(q->param, b->src + b->off, (size_t)q->nparam * sizeof *q->param);
    b->off += (size_t)q->nparam;
    lb_quant_project(q); /* the grid bounds follow the restored parameters */
}

void lb_sliced_after_update(run *r) {
    if (!r->sl || !r->sl->restore) return;
    back_ctx b = {r->sl->save, 0};
    each_sliced(r->net, back_fn, &b);
}

/* BN re-estimation (methods.md's end of training): one pass over the training batches in training
 * mode, which updates the running statistics only (no backward, no update); the quantizers are
 * initialized already, so their forwards change nothing. */
lb_status lb_sliced_epoch_end(run *r, const lb_train_cfg *c, int epoch) {
    if (!r->sl || epoch != c->epochs - 1) return LB_OK;
    if (r->sl->ph[2] == 0) { /* no fine-tune phase: the budget is met here, before BN */
        lb_status st = fit_at(r, c, "end of the run");
        if (st != LB_OK) return st;
    }
    lb_loader_start(r->loader, epoch + 1);
    int b;
    while ((b = lb_loader_next(r->loader, r->x, r->y)) > 0) lb_net_forward(r->net, r->x, b, 1);
    return LB_OK;
}

void lb_sliced_metrics(const run *r, char *buf, size_t cap) {
    const lb_sliced_run *s = r->sl;
    if (!s || cap < 2) return;
    snprintf(buf, cap,
             ",\"phase\":\"%s\",\"size_weights_kb\":%.6g,\"size_acts_kb\":%.6g,"
             "\"size_penalty\":%.6g,\"rho\":%.4g",
             phase_name[s->phase], s->sw, s->sa, s->pen, s->rho);
}

lb_status lb_sliced_final(const run *r, const lb_train_cfg *c, char *note, size_t cap) {
    note[0] = 0;
    if (!r->sl || (!(c->budget_w_kb > 0) && !(c->budget_a_kb > 0))) return LB_OK;
    size_t wb = 0, ab = 0;
    lb_status st = lb_sliced_export_bytes(r, c, &wb, &ab);
    if (st != LB_OK) {
        char why[400]; /* lb_error_msg's buffer is the one written next */
        snprintf(why, sizeof why, "%s", lb_error_msg());
        return lb_error_set(LB_EBUDGET,
                            "budget: the trained model has no integer form whose bytes could be "
                            "counted (%s)",
                            why);
    }
    double tw = lb_sliced_budget_bytes(c->budget_w_kb), ta = lb_sliced_budget_bytes(c->budget_a_kb);
    int miss_w = c->budget_w_kb > 0 && (double)wb > tw,
        miss_a = c->budget_a_kb > 0 && (double)ab > ta;
    snprintf(note, cap, "budget: exported weight_bytes %zu%s%s, activation_bytes %zu%s%s%s%s", wb,
             c->budget_w_kb > 0 ? (miss_w ? " OVER " : " within ") : "",
             c->budget_w_kb > 0 ? "--budget-weights" : "", ab,
             c->budget_a_kb > 0 ? (miss_a ? " OVER " : " within ") : "",
             c->budget_a_kb > 0 ? "--budget-acts" : "", r->sl->fit[0] ? "\n" : "", r->sl->fit);
    if (!miss_w && !miss_a) return LB_OK;
    char part[2][160] = {"", ""};
    if (miss_w)
        snprintf(part[0], sizeof part[0], "weights %zu bytes, %.0f over --budget-weights %g kB", wb,
                 (double)wb - tw, c->budget_w_kb);
    if (miss_a)
        snprintf(part[1], sizeof part[1], "%sactivations %zu bytes, %.0f over --budget-acts %g kB",
                 miss_w ? "; " : "", ab, (double)ab - ta, c->budget_a_kb);
    return lb_error_set(LB_EBUDGET,
                        "budget missed by the exported model: %s%s. The checkpoint %s holds the "
                        "trained model; a longer mixed phase (--phases) or a larger budget may "
                        "meet it",
                        part[0], part[1], c->out);
    return LB_OK;
}
