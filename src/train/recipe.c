/* The defaults that adapt to the data (docs/robust.md): the epoch count sized so a small data set
 * still gets enough optimizer steps, the linear warm-up, the per-model rate, and the checks that
 * a schedule leaves something to train. Not the schedule arithmetic itself (optim/sched.c). */
#include "train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

float lb_train_default_lr(const char *arch, int batch) {
    /* The cnn's 3136->10 head has no BN behind it and diverges above ~0.03 (also in PyTorch,
     * see ../shared/peer/RESULTS.md); the ResNets take the classic 0.1. Both are rates for batch
     * 128, scaled linearly with the batch (Goyal et al. 2017): at batch 32 the cnn's 0.02 blows
     * its first steps up to losses of 4-7, its 0.005 does not. */
    /* an imported graph is most often fine-tuned from trained weights: the gentler rate */
    float base = strcmp(arch, "cnn") == 0 || strcmp(arch, "graph") == 0 ? 0.02f : 0.1f;
    return base * (float)batch / (float)LB_LR_BATCH;
}

int lb_train_default_batch(int n) {
    int b = LB_LR_BATCH;
    while (b > LB_MIN_AUTO_BATCH && n / b < LB_MIN_EPOCH_STEPS) b /= 2;
    return b;
}

/* The float phase (--quant-delay, docs/robust.md): by default the warm-up's steps where LSQ
 * weights train from random ones, where a 2-bit net's codes barely move in its first steps and
 * its steps initialize from weights that have not learned yet. Trained weights (--init) are
 * what LSQ's own recipe initializes from: no float phase. A resumed run keeps the recorded
 * steps (its --init is not recorded). */
static lb_status resolve_quant_delay(lb_train_cfg *c, const lb_sched *sch, int steps_per_epoch) {
    if (c->resume[0]) return LB_OK;
    lb_qkind wk = lb_quant_plan_wkind(&c->model.q), ak = lb_quant_plan_akind(&c->model.q);
    c->quant_delay_open = 0;
    c->quant_delay_ema = NAN;
    if (c->quant_delay_epochs < 0) {
        int from_scratch = !c->init[0] && !lb_model_is_snn(&c->model) && !c->learn_bits;
        c->quant_delay = wk == LB_Q_LSQ && from_scratch ? sch->warmup : 0;
        c->quant_delay_open = c->quant_delay > 0; /* on while the net has not started to learn */
        return LB_OK;
    }
    c->quant_delay = (long)(c->quant_delay_epochs * (float)steps_per_epoch);
    if (c->quant_delay == 0) return LB_OK;
    if (wk == LB_Q_NONE && ak == LB_Q_NONE)
        return lb_error_set(LB_EINVAL,
                            "--quant-delay %g: the model has no quantizers to delay "
                            "(--quant is none)",
                            (double)c->quant_delay_epochs);
    if (c->learn_bits || wk == LB_Q_SLICED || ak == LB_Q_SLICED)
        return lb_error_set(LB_EINVAL,
                            "--quant-delay cannot be combined with %s: its bit-widths are learned "
                            "through the quantizers from the first step",
                            c->learn_bits ? "--learn-bits" : "--quant sliced");
    if (c->quant_delay >= sch->total)
        return lb_error_set(LB_EINVAL,
                            "--quant-delay %g epochs (%ld steps) is not shorter than the run (%ld "
                            "steps): the quantizers would never start",
                            (double)c->quant_delay_epochs, c->quant_delay, sch->total);
    return LB_OK;
}

/* The schedule line `lowbit train` prints first: each value with where it came from. */
static void schedule_note(const lb_train_cfg *c, const lb_sched *sch, int steps_per_epoch,
                          int n_train, int auto_epochs, int auto_warm, char *note, size_t cap) {
    static const char epochs_auto[] =
        "default: at least " LB_STR(LB_DEFAULT_EPOCHS) " epochs and " LB_STR(LB_MIN_STEPS) " steps";
    static const char warm_auto[] = "default: " LB_STR(
        LB_WARMUP_PCT) "% of the run, at least " LB_STR(LB_WARMUP_MIN) " or a tenth";
    static const char batch_auto[] = " (default: " LB_STR(LB_LR_BATCH) ", halved down to " LB_STR(
        LB_MIN_AUTO_BATCH) " while an epoch has fewer than " LB_STR(LB_MIN_EPOCH_STEPS) " steps)";
    int k = snprintf(note, cap,
                     "schedule: %d epochs x %d steps = %ld steps (%s), %s lr %g%s with %ld warm-up "
                     "steps (%s), %d training images, batch %d%s",
                     c->epochs, steps_per_epoch, sch->total, auto_epochs ? epochs_auto : "--epochs",
                     lb_sched_name(sch->kind), (double)sch->base,
                     c->lr_given ? "" : " (default for the model and batch)", sch->warmup,
                     auto_warm ? warm_auto : "--warmup", n_train, c->batch,
                     c->batch_auto ? batch_auto : "");
    if (c->quant_delay > 0 && k > 0 && (size_t)k < cap) {
        char why[160];
        if (c->quant_delay_open)
            snprintf(why, sizeof why,
                     "default: the warm-up, for LSQ from random weights, and on while the training "
                     "loss is not below %.0f%% of chance, at most half the run",
                     100 * LB_FLOAT_PHASE_LEARNED);
        else
            snprintf(why, sizeof why, "%s",
                     c->quant_delay_epochs < 0 ? "default: the warm-up, for LSQ from random weights"
                                               : "--quant-delay");
        snprintf(note + k, cap - (size_t)k,
                 "; quantizers off for the first %ld steps (%s), then initialized from the weights "
                 "and activations reached",
                 c->quant_delay, why);
    }
}

lb_status lb_train_resolve(lb_train_cfg *c, int n_train, int steps_per_epoch, lb_sched *sch,
                           char *note, size_t cap) {
    int auto_epochs = c->epochs == 0;
    if (auto_epochs) {
        long need = (LB_MIN_STEPS + steps_per_epoch - 1) / steps_per_epoch;
        c->epochs = need > LB_DEFAULT_EPOCHS ? (int)need : LB_DEFAULT_EPOCHS;
        if (c->epochs > LB_MAX_AUTO_EPOCHS) c->epochs = LB_MAX_AUTO_EPOCHS;
    }
    *sch = c->sched;
    sch->total = (long)c->epochs * steps_per_epoch;
    int auto_warm = c->warmup_epochs < 0;
    if (auto_warm) {
        /* a share of the run, but never fewer than LB_WARMUP_MIN steps unless the run is short
         * (then a tenth of it): the first steps are the wild ones whatever the run's length */
        long share = (long)((double)LB_WARMUP_PCT / 100.0 * (double)sch->total);
        long floor = sch->total / 10 < LB_WARMUP_MIN ? sch->total / 10 : LB_WARMUP_MIN;
        sch->warmup = share > floor ? share : floor;
    } else {
        sch->warmup = (long)(c->warmup_epochs * (float)steps_per_epoch);
    }
    sch->step_every = c->sched.step_every * (long)steps_per_epoch;
    if (sch->warmup >= sch->total)
        return lb_error_set(LB_EINVAL,
                            "--warmup %g epochs (%ld steps) is not shorter than the run (%d epochs "
                            "x %d steps = %ld steps): nothing would train at the full rate",
                            (double)c->warmup_epochs, sch->warmup, c->epochs, steps_per_epoch,
                            sch->total);
    if (sch->kind == LB_SCHED_STEP && c->sched.step_every >= c->epochs)
        return lb_error_set(LB_EINVAL,
                            "--step-epochs %ld is not shorter than the run (%d epochs): the step "
                            "schedule would never lower the rate (use --sched const for that)",
                            c->sched.step_every, c->epochs);
    lb_status st = lb_sched_check(sch);
    if (st == LB_OK) st = resolve_quant_delay(c, sch, steps_per_epoch);
    if (st != LB_OK) return st;
    if (note) schedule_note(c, sch, steps_per_epoch, n_train, auto_epochs, auto_warm, note, cap);
    return LB_OK;
}

lb_status lb_on_collapse_parse(const char *s, lb_on_collapse *out) {
    if (s && strcmp(s, "stop") == 0) {
        *out = LB_ON_COLLAPSE_STOP;
        return LB_OK;
    }
    if (s && strcmp(s, "warn") == 0) {
        *out = LB_ON_COLLAPSE_WARN;
        return LB_OK;
    }
    return lb_error_set(LB_EINVAL, "--on-collapse: expected warn or stop, got '%s'",
                        s ? s : "(null)");
}
