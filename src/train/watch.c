/* Collapse detection (watch.h): the rules that call a run broken or stuck, and their wording. The
 * thresholds are documented in docs/robust.md; the trainer owns reporting and stopping. */
#include "watch.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../nn/nn_internal.h"

/* A loss-window verdict: "at ln(classes)" within this share of it; "diverging" above this
 * multiple of it (a constant prediction scores exactly ln(classes); above it is worse than
 * guessing). */
#define CHANCE_LOSS_TOL 0.05
#define DIVERGE_LOSS_MULT 1.5

static const char *const kind_names[LB_CK_COUNT] = {
    [LB_CK_NONFINITE] = "nonfinite",          [LB_CK_CHANCE] = "chance",
    [LB_CK_DIVERGING] = "diverging",          [LB_CK_FLOOR] = "step_floor",
    [LB_CK_ZERO_CODES] = "zero_codes",        [LB_CK_DEAD] = "dead_layer",
    [LB_CK_EPOCH_CHANCE] = "epoch_at_chance", [LB_CK_EVAL_CHANCE] = "eval_at_chance"};

const char *lb_collapse_kind_name(lb_collapse_kind k) {
    return (unsigned)k < LB_CK_COUNT ? kind_names[k] : "?";
}

lb_status lb_watch_init(lb_watch *w, int classes, int window, long quiet_until, float lr) {
    memset(w, 0, sizeof *w);
    w->classes = classes > 1 ? classes : 2;
    w->ln_c = log((double)w->classes);
    w->chance_loss = w->ln_c;
    w->window = window > 0 ? window : 1;
    w->quiet_until = quiet_until;
    w->lr_hint = lr;
    w->loss = calloc((size_t)w->window, sizeof *w->loss);
    w->acc = calloc((size_t)w->window, sizeof *w->acc);
    if (!w->loss || !w->acc) return lb_error_set(LB_ENOMEM, "out of memory (collapse watch)");
    return LB_OK;
}

lb_status lb_label_shares(const int32_t *labels, long n, int classes, double *major,
                          double *entropy) {
    *major = 0;
    if (entropy) *entropy = 0;
    if (n <= 0 || classes < 1) return LB_OK;
    long *hist = calloc((size_t)classes, sizeof *hist);
    if (!hist) return lb_error_set(LB_ENOMEM, "out of memory (label counts)");
    for (long i = 0; i < n; i++)
        if (labels[i] >= 0 && labels[i] < classes) hist[labels[i]]++;
    double h = 0, top = 0;
    for (int k = 0; k < classes; k++) {
        double p = (double)hist[k] / (double)n;
        if (p > 0) h -= p * log(p);
        top = p > top ? p : top;
    }
    free(hist);
    *major = top;
    if (entropy) *entropy = h;
    return LB_OK;
}

lb_status lb_watch_set_prior(lb_watch *w, const int32_t *labels, long n) {
    if (n <= 0) return LB_OK;
    return lb_label_shares(labels, n, w->classes, &w->train_major, &w->chance_loss);
}

void lb_watch_free(lb_watch *w) {
    free(w->loss);
    free(w->acc);
    w->loss = NULL;
    w->acc = NULL;
}

void lb_watch_epoch_start(lb_watch *w) {
    w->nonfinite_epoch = 0;
    w->epoch_events = 0;
    w->reported &= ~(1u << LB_CK_NONFINITE);
}

double lb_watch_chance_bound(int classes, double major, long n) {
    double p = classes > 0 ? 1.0 / classes : 0.5;
    if (major > p) p = major;
    return p + 3.0 * sqrt(p * (1.0 - p) / (double)(n > 0 ? n : 1));
}

/* "ln(10) = 2.303", or for imbalanced classes "0.325, the entropy of the training split's class
 * shares (ln(2) = 0.693 if balanced)" */
static void chance_level(const lb_watch *w, char *b, size_t cap) {
    if (fabs(w->chance_loss - w->ln_c) <= 1e-3 * w->ln_c)
        snprintf(b, cap, "ln(%d) = %.3f", w->classes, w->ln_c);
    else
        snprintf(b, cap,
                 "%.3f, the entropy of the training split's class shares (ln(%d) = %.3f if "
                 "balanced)",
                 w->chance_loss, w->classes, w->ln_c);
}

static void emit(lb_watch *w, lb_collapse_kind k, long step, const char *layer, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));
static void emit(lb_watch *w, lb_collapse_kind k, long step, const char *layer, const char *fmt,
                 ...) {
    if (w->reported & (1u << k)) return;
    w->reported |= 1u << k;
    w->epoch_events++;
    if (w->n >= LB_WATCH_MAX_EVENTS) return;
    lb_collapse_event *e = &w->ev[w->n++];
    e->kind = k;
    e->step = step;
    snprintf(e->layer, sizeof e->layer, "%s", layer ? layer : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
}

static int all_zero(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

void lb_watch_forward(lb_watch *w, const lb_net *n, int batch, long step) {
    unsigned want = (1u << LB_CK_DEAD) | (1u << LB_CK_ZERO_CODES);
    if ((w->reported & want) == want) return;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        /* an aliased node shares its producer's buffer: the producer is reported instead */
        if (d->alias || !d->y) continue;
        /* spikes: a layer that is silent for a batch is normal while the membranes charge up
         * at the start (surrogate gradients still flow); only after the warm-up is it a verdict */
        if ((d->binary || d->op == LB_OP_TSUM) && step < w->quiet_until) continue;
        if (all_zero(d->y, (size_t)batch * d->tm * lb_node_size(d))) {
            emit(w, LB_CK_DEAD, step, d->name,
                 "collapse: layer '%s' (%s) outputs only zeros for a whole batch at step %ld "
                 "(a dead layer: nothing after it can learn). Likely fix: a lower --lr (now %g) "
                 "or a longer --warmup",
                 d->name, lb_op_name(d->op), step, (double)w->lr_hint);
            return;
        }
    }
    /* the float phase (--quant-delay) has no codes yet: the buffers hold nothing of this batch */
    for (int i = 1; i < n->nnodes && !n->quant_off; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op != LB_OP_CONV && d->op != LB_OP_LINEAR) continue;
        const char *which = NULL;
        if (d->wqcfg.kind != LB_Q_NONE && d->wqbuf && all_zero(d->wqbuf, n->params[d->pw].n))
            which = "weight";
        else if (d->aqcfg.kind != LB_Q_NONE && d->xq &&
                 all_zero(d->xq, (size_t)batch * lb_node_size(&n->nodes[d->in[0]])))
            which = "input-activation";
        if (which) {
            emit(w, LB_CK_ZERO_CODES, step, d->name,
                 "collapse: every %s code of layer '%s' is 0 at step %ld (its quantizer passes "
                 "nothing). Likely fix: a lower --lr (now %g) or --qlr-scale, a longer --warmup",
                 which, d->name, step, (double)w->lr_hint);
            return;
        }
    }
}

void lb_watch_nonfinite(lb_watch *w, long step, const char *layer) {
    w->nonfinite_epoch++;
    if (layer && layer[0])
        emit(w, LB_CK_NONFINITE, step, layer,
             "collapse: the gradient of '%s' is not finite at step %ld; the update was skipped "
             "(every further one is too). Likely fix: a lower --lr (now %g) or a longer --warmup",
             layer, step, (double)w->lr_hint);
    else
        emit(w, LB_CK_NONFINITE, step, "",
             "collapse: the loss is not finite at step %ld (NaN/Inf logits); the update was "
             "skipped (every further one is too). Likely fix: a lower --lr (now %g) or a longer "
             "--warmup; check the data",
             step, (double)w->lr_hint);
}

void lb_watch_step(lb_watch *w, const lb_net *n, long step, float loss, int hits, int seen, int at,
                   int node, int is_weight) {
    if (at > 0 && node > 0) {
        const lb_node *d = &n->nodes[node];
        emit(w, LB_CK_FLOOR, step, d->name,
             "collapse: the learned %s step of layer '%s' is held at its floor (%g of its initial "
             "step) at step %ld: training keeps pushing it towards zero. Likely fix: a lower "
             "--lr (now %g) or --qlr-scale, a longer --warmup",
             is_weight ? "weight" : "activation", d->name, (double)LB_LSQ_FLOOR, step,
             (double)w->lr_hint);
    }
    w->loss[w->pos] = loss;
    w->acc[w->pos] = seen > 0 ? (float)hits / (float)seen : 0;
    w->pos = (w->pos + 1) % w->window;
    if (w->fill < w->window) w->fill++;
    if (w->fill < w->window || step < w->quiet_until) return;
    double ml = 0, ma = 0;
    for (int i = 0; i < w->window; i++) {
        ml += w->loss[i];
        ma += w->acc[i];
    }
    ml /= w->window;
    ma /= w->window;
    if (ml > DIVERGE_LOSS_MULT * w->ln_c) {
        emit(w, LB_CK_DIVERGING, step, "",
             "collapse: the training loss has averaged %.3f over the last %d steps (step %ld), "
             "far above ln(%d) = %.3f, worse than guessing: training is diverging. Likely fix: "
             "a lower --lr (now %g) or a longer --warmup",
             ml, w->window, step, w->classes, w->ln_c, (double)w->lr_hint);
    } else if (fabs(ml - w->chance_loss) <= CHANCE_LOSS_TOL * w->chance_loss &&
               ma <= lb_watch_chance_bound(w->classes, w->train_major,
                                           (long)w->window * (seen ? seen : 1))) {
        char lvl[128];
        chance_level(w, lvl, sizeof lvl);
        emit(w, LB_CK_CHANCE, step, "",
             "collapse: the training loss has stayed at %s (mean %.4f) with chance accuracy "
             "(%.4f) over the last %d steps (step %ld): the network has stopped learning. Likely "
             "fix: a lower --lr (now %g) or a longer --warmup",
             lvl, ml, ma, w->window, step, (double)w->lr_hint);
    }
}

int lb_watch_epoch_end(lb_watch *w, int epoch, long step, float test_acc, double major, long n_test,
                       float train_acc, long n_train) {
    if (step < w->quiet_until) return 0;
    double bound = lb_watch_chance_bound(w->classes, major, n_test);
    if (!(test_acc <= bound)) return 0;
    /* chance on the training side: the training split's majority share (1/classes unless
     * lb_watch_set_prior said otherwise) */
    double tbound = lb_watch_chance_bound(w->classes, w->train_major, n_train);
    /* the epoch's mean hides a run that starts slowly and is learning by the end of it: a
     * training loss clearly below chance level over the last window is not a collapse */
    double ml = 0;
    for (int i = 0; i < w->fill; i++) ml += w->loss[i];
    const int late = w->fill > 0 && ml / w->fill < (1 - CHANCE_LOSS_TOL) * w->chance_loss;
    char lvl[128];
    chance_level(w, lvl, sizeof lvl);
    if (train_acc > tbound || late) {
        w->reported &= ~(1u << LB_CK_EVAL_CHANCE);
        emit(w, LB_CK_EVAL_CHANCE, step, "",
             "collapse: epoch %d's test accuracy %.4f is at chance (up to %.4f on %ld images) "
             "while its training accuracy is %.4f and its training loss %.4f over the last %d "
             "steps (chance: %s): the model learns but its evaluation disagrees (batch-norm "
             "running statistics or activation steps unsettled). Not stopping; likely fix: a "
             "lower --lr (now %g) or more epochs",
             epoch, (double)test_acc, bound, n_test, (double)train_acc,
             w->fill > 0 ? ml / w->fill : 0.0, w->fill, lvl, (double)w->lr_hint);
        return 0;
    }
    /* reported every time it happens: with --on-collapse warn each such epoch is news */
    w->reported &= ~(1u << LB_CK_EPOCH_CHANCE);
    emit(w, LB_CK_EPOCH_CHANCE, step, "",
         "collapse: epoch %d ends at chance: test accuracy %.4f and training accuracy %.4f "
         "(chance: %.4f for %d classes, majority class %.4f in the test split and %.4f in the "
         "training split; anything up to %.4f is chance on %ld test images). Likely fix: a "
         "lower --lr (now %g) or a longer --warmup",
         epoch, (double)test_acc, (double)train_acc, 1.0 / w->classes, w->classes, major,
         w->train_major > 0 ? w->train_major : 1.0 / w->classes, bound, n_test, (double)w->lr_hint);
    return 1;
}
