/* Fine-tuning a trained checkpoint for one chip (methods.md sec. 3, docs/faults.md): the run's
 * set-up from the checkpoint, the reset schedule, the per-method schedules (lambda, QFALT's
 * sigma, the injected maps), the chip's evaluation every epoch, checkpoint and metrics. Not the
 * per-step regularizers (ft_reg.c) nor the step itself (train.c's lb_train_step). */
#include "ft_internal.h"
#include "lb_ops.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const method_names[LB_FT_COUNT] = {"lowbit", "inject", "qfalt"};

const char *lb_ft_method_name(lb_ft_method m) {
    return (unsigned)m < LB_FT_COUNT ? method_names[m] : "?";
}

lb_status lb_ft_method_parse(const char *s, lb_ft_method *out) {
    for (int i = 0; i < LB_FT_COUNT; i++)
        if (s && strcmp(s, method_names[i]) == 0) {
            *out = (lb_ft_method)i;
            return LB_OK;
        }
    return lb_error_set(LB_EINVAL, "--method: expected lowbit, inject or qfalt, got '%s'",
                        s ? s : "(null)");
}

void lb_ft_cfg_default(lb_ft_cfg *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->data_dir, sizeof c->data_dir, "/usr/share/datasets/fashion-mnist");
    c->method = LB_FT_LOWBIT;
    c->epochs = 1;
    c->batch = 128;
    c->threads = 2;
    c->seed = 1;
    c->reset_units = LB_FT_RESET_UNITS;
    c->reset_f1 = LB_FT_RESET_F1;
    c->reset_f2 = LB_FT_RESET_F2;
    c->start_snap = 1;
    c->chip_forward = 1;
}

float lb_ft_lambda(lb_ft_method m, float given, int has_var) {
    if (m == LB_FT_INJECT) return 0;
    if (given > 0) return given;
    if (m == LB_FT_QFALT) return LB_FT_QFALT_LAMBDA;
    return has_var ? LB_FT_LAMBDA_VAR : LB_FT_LAMBDA;
}

float lb_ft_cfg_lambda(const lb_ft_cfg *c, lb_ft_method m) {
    if ((unsigned)m < LB_FT_COUNT && c->lambda_of[m] > 0) return c->lambda_of[m];
    return c->lambda;
}

/* One number of --lambda: finite, 0..1e9, the whole text. */
static int lambda_num(const char *s, size_t len, float *out) {
    char buf[64], *end;
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = 0;
    errno = 0;
    double v = strtod(buf, &end);
    if (*end || errno || !isfinite(v) || v < 0 || v > 1e9) return 0;
    *out = (float)v;
    return 1;
}

lb_status lb_ft_lambda_parse(const char *s, lb_ft_cfg *c) {
    const char *want = "expected a number >= 0, or method=X pairs such as lowbit=1000,qfalt=1e-4";
    if (!s || !*s) return lb_error_set(LB_EINVAL, "--lambda: %s, got ''", want);
    if (!strchr(s, '=')) {
        if (!lambda_num(s, strlen(s), &c->lambda))
            return lb_error_set(LB_EINVAL, "--lambda: %s, got '%s'", want, s);
        return LB_OK;
    }
    float of[LB_FT_COUNT] = {0};
    int seen[LB_FT_COUNT] = {0};
    for (const char *p = s;;) {
        size_t n = strcspn(p, ","), k = strcspn(p, "=");
        if (k >= n) return lb_error_set(LB_EINVAL, "--lambda: %s, got '%s'", want, s);
        char name[16] = "";
        lb_ft_method m = LB_FT_COUNT;
        if (k < sizeof name) memcpy(name, p, k);
        if (k >= sizeof name || lb_ft_method_parse(name, &m) != LB_OK)
            return lb_error_set(LB_EINVAL, "--lambda: '%.*s' is not a method (lowbit, qfalt)",
                                (int)k, p);
        if (m == LB_FT_INJECT)
            return lb_error_set(LB_EINVAL, "--lambda: inject has no chip regularizer to weigh");
        if (seen[m]++) return lb_error_set(LB_EINVAL, "--lambda: %s is given twice", name);
        if (!lambda_num(p + k + 1, n - k - 1, &of[m]))
            return lb_error_set(LB_EINVAL, "--lambda: %s: expected a number >= 0, got '%.*s'", name,
                                (int)(n - k - 1), p + k + 1);
        if (!p[n]) break;
        p += n + 1;
    }
    memcpy(c->lambda_of, of, sizeof of);
    return LB_OK;
}

int lb_ft_reset_due(int unit, int units, int f1, int f2) {
    if (unit < 0 || unit >= units || f1 < 1 || f2 < 1) return 0;
    int f = 2 * unit < units ? f1 : f2;
    return unit % f == f - 1;
}

long lb_ft_unit_end(int unit, int units, long total) {
    return (long)(((double)(unit + 1) * (double)total) / (double)units + 1e-9) - 1;
}

static lb_status check(const lb_ft_cfg *f) {
    if ((unsigned)f->method >= LB_FT_COUNT) return lb_error_set(LB_EINVAL, "--method: unknown");
    if (!f->ckpt[0]) return lb_error_set(LB_EINVAL, "a checkpoint is required");
    if (!f->chip[0]) return lb_error_set(LB_EINVAL, "--chip MAP is required");
    if (f->eval_only) return LB_OK;
    if (!f->out[0]) return lb_error_set(LB_EINVAL, "-o OUT is required");
    if (f->epochs < 1 || f->epochs > 1000)
        return lb_error_set(LB_EINVAL, "--epochs must be 1..1000, got %d", f->epochs);
    for (int m = -1; m < LB_FT_COUNT; m++) {
        float l = m < 0 ? f->lambda : f->lambda_of[m];
        if (!(isfinite(l) && l >= 0))
            return lb_error_set(LB_EINVAL, "--lambda must be a finite number >= 0");
    }
    if (!(f->lr >= 0 && f->lr <= 100)) return lb_error_set(LB_EINVAL, "--lr must be in (0, 100]");
    if (f->reset_units < 0 || f->reset_f1 < 1 || f->reset_f2 < 1)
        return lb_error_set(LB_EINVAL, "--reset-units must be >= 0, --reset-f1/--reset-f2 >= 1");
    return LB_OK;
}

/* The trainer's config for the fine-tune: the checkpoint's model and optimizer, the caller's
 * data, sizes and seed; a constant-free cosine from half the model's rate, no warm-up
 * (the weights are trained already). */
static void train_cfg_of(const lb_ft_cfg *f, const lb_ckpt_info *info, lb_train_cfg *c) {
    lb_train_cfg_default(c);
    c->model = info->model;
    if (!info->weights_only) {
        c->opt = info->train.opt;
        c->label_smoothing = info->train.label_smoothing;
        c->qlr_scale = info->train.qlr_scale;
        c->levels_lr = info->train.levels_lr;
        c->aug = info->train.aug;
    }
    memcpy(c->data_dir, f->data_dir, sizeof c->data_dir);
    c->img = f->img;
    if (lb_dataset_dir_images(f->data_dir)) { /* the images as the model saw them */
        c->img.h = info->model.in_h;
        c->img.w = info->model.in_w;
        c->img.c = info->model.in_c;
    }
    c->epochs = f->epochs > 0 ? f->epochs : 1;
    c->batch = f->batch;
    c->threads = f->threads;
    c->train_limit = f->train_limit;
    c->test_limit = f->test_limit;
    c->seed = f->seed;
    c->sched.kind = LB_SCHED_COSINE;
    c->lr_given = f->lr > 0;
    /* half the model's training rate: measured on 10% chips (docs/faults.md), a tenth left
     * cnn and resnet20 0.7 point lower after the same fine-tune */
    c->sched.base = f->lr > 0 ? f->lr : lb_train_default_lr(c->model.arch, c->batch) / 2;
    /* a spiking model fine-tunes with its own recipe's optimizer (AdamW), at a tenth of its rate */
    if (lb_model_is_snn(&c->model) && f->lr <= 0) c->sched.base = 1e-4f;
    c->warmup_epochs = 0;
    c->quant_delay_epochs = 0; /* a trained model: its quantizers are what is fine-tuned */
    /* the classifier at the common rate: these runs start trained (a confident softmax has
     * little curvature; docs/robust.md) and their recipes were measured so */
    c->head_lr = c->head_lr_scale = 1;
    c->on_collapse = LB_ON_COLLAPSE_WARN;
    snprintf(c->out, sizeof c->out, "%s", f->out);
    if (f->metrics[0])
        snprintf(c->metrics, sizeof c->metrics, "%s", f->metrics);
    else
        snprintf(c->metrics, sizeof c->metrics, "%.490s.metrics.jsonl", f->out);
}

/* The final lambda of the checkpoint's own reg schedule: INJECT is plain QAT, whose reg models
 * keep their plain regularizer. */
static float plain_lambda(const lb_ckpt_info *info) {
    const lb_quant_plan *q = &info->model.q;
    if (q->kind != LB_Q_REG) return 0;
    int e = info->train.epochs > 0 ? info->train.epochs : 1;
    return (float)lb_reg_lambda(q->reg_lambda0, q->reg_lambda_max, q->reg_ramp, e - 1, e);
}

/* QFALT's schedule over the first half of the run (t in [0, 1]): sigma from one level spacing to
 * a quarter, lambda from a tenth of its final value up, both geometric (our design: methods.md
 * gives the direction, not the curve). */
static void qfalt_sched(ft_state *s, double lambda, double t) {
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    s->sigma = pow(0.25, t);
    s->lambda = lambda * pow(10.0, t - 1);
}

static lb_status metrics_line(const char *path, int first, const lb_ft_cfg *f, int e, int epochs,
                              double train_loss, float acc_before, float acc, const ft_state *s,
                              int resets, float lr, double secs, double img_s) {
    FILE *fp = fopen(path, first ? "w" : "a");
    if (!fp) return lb_error_set(LB_EIO, "%s: cannot write metrics: %s", path, strerror(errno));
    double reg = s->reg_steps ? s->reg_sum / (double)s->reg_steps : 0;
    fprintf(fp,
            "{\"epoch\":%d,\"epochs\":%d,\"method\":\"%s\",\"chip_acc_before\":%.6f,"
            "\"chip_acc\":%.6f,\"train_loss\":%.6g,\"reg\":%.6g,\"lambda\":%.6g,"
            "\"sigma_steps\":%.6g,\"resets\":%d,\"lr\":%.6g,\"epoch_s\":%.2f,"
            "\"img_per_s\":%.1f}\n",
            e, epochs, lb_ft_method_name(f->method), (double)acc_before, (double)acc,
            isfinite(train_loss) ? train_loss : -1.0, reg, s->lambda,
            f->method == LB_FT_QFALT ? s->sigma : 0.0, resets, (double)lr, secs, img_s);
    if (fclose(fp) != 0) return lb_error_set(LB_EIO, "%s: write failed: %s", path, strerror(errno));
    return LB_OK;
}

static void note(lb_progress_fn fn, void *ctx, const char *msg, int warning) {
    if (!fn) return;
    lb_progress p = {0};
    p.note = msg;
    p.warning = warning;
    fn(ctx, &p);
}

lb_status lb_ft_run(const lb_ft_cfg *f, lb_progress_fn fn, void *ctx, lb_ft_result *res) {
    memset(res, 0, sizeof *res);
    lb_status st = check(f);
    if (st != LB_OK) return st;
    lb_ckpt_info info;
    if ((st = lb_ckpt_peek(f->ckpt, &info)) != LB_OK) return st;
    lb_train_cfg c;
    train_cfg_of(f, &info, &c);
    lb_threads_set(c.threads);
    run r;
    memset(&r, 0, sizeof r);
    lb_chip chip;
    memset(&chip, 0, sizeof chip);
    ft_state s;
    memset(&s, 0, sizeof s);
    lb_watch w;
    memset(&w, 0, sizeof w);
    r.ckpt_classes = c.model.classes; /* the checkpoint's head, for data with fewer labels */
    if ((st = lb_run_setup(&r, &c)) != LB_OK) goto out;
    lb_ckpt_info li;
    if ((st = lb_ckpt_load(f->ckpt, r.net, NULL, &li)) != LB_OK) goto out;
    if ((st = lb_ckpt_check_started(f->ckpt, &li)) != LB_OK) goto out;
    if ((st = lb_chip_open(&chip, r.net, c.model.arch, f->chip, f->nearest)) != LB_OK) goto out;
    lb_chip_count(&chip, &res->changed, &res->total);
    st = lb_evaluate(r.net, &r.test, &c.model.norm, c.test_limit, c.batch, NULL, &res->acc_before);
    if (st != LB_OK || f->eval_only) {
        res->acc_after = res->acc_before;
        goto out;
    }
    double t_start = now_s();
    int spe = lb_loader_batches(r.loader);
    lb_sched sch;
    char msg[512];
    if ((st = lb_train_resolve(&c, lb_loader_samples(r.loader), spe, &sch, msg, sizeof msg)) !=
        LB_OK)
        goto out;
    note(fn, ctx, msg, 0);
    if ((st = lb_ft_state_init(&s, f->method, r.net, &chip, c.model.arch,
                               f->method == LB_FT_LOWBIT && f->chip_forward)) != LB_OK)
        goto out;
    float lambda = lb_ft_lambda(f->method, lb_ft_cfg_lambda(f, f->method),
                                lb_fmap_has_var(chip.map, NULL, NULL, NULL));
    res->lambda = lambda;
    /* the plain reg regularizer gives way to the chip's (lowbit, qfalt); inject keeps it */
    lb_net_reg_set_lambda(r.net, f->method == LB_FT_INJECT ? plain_lambda(&info) : 0);
    s.lambda = lambda;
    if (f->method == LB_FT_QFALT) qfalt_sched(&s, lambda, 0);
    /* With multipliers the chip programs each weight with its nearest own level
     * (LB_CHIP_OWN_LEVEL), the level the variability-aware regularizer pulls to, so the snaps and
     * the regularizer agree as they do for stuck cells alone */
    lb_chip *snap = &chip;
    if (f->method == LB_FT_LOWBIT && f->start_snap) {
        /* the nearest reachable code of every weight: reachable codes are their own faulty
         * code, so from here the chip holds what the weights say */
        if ((st = lb_ft_snap_reachable(snap)) != LB_OK) goto out;
    }
    r.reg_hook = lb_ft_hook;
    r.reg_hook_ctx = &s;
    long win = sch.total / 10;
    win = win < 10 ? 10 : win > 100 ? 100 : win;
    if ((st = lb_watch_init(&w, lb_net_classes(r.net), (int)win, win, sch.base)) != LB_OK) goto out;
    long n_tr = lb_dataset_count(&r.train, c.train_limit);
    if ((st = lb_watch_set_prior(&w, r.train.labels, n_tr)) != LB_OK) goto out;
    /* reset units: a unit is 1/units of the run's steps (0: an epoch); never more than steps */
    int units = f->reset_units ? f->reset_units : c.epochs;
    if (units > sch.total) units = (int)sch.total;
    int unit = 0, resets = 0;
    long step = 0;
    float acc = res->acc_before;
    for (int e = 0; e < c.epochs; e++) {
        double t0 = now_s();
        lb_loader_start(r.loader, e);
        lb_watch_epoch_start(&w);
        s.reg_sum = 0;
        s.reg_steps = 0;
        if (f->method == LB_FT_INJECT) {
            lb_rng g;
            lb_rng_derive(&g, c.seed, 0x696e6a656374ull /* "inject" */, (uint64_t)e);
            if ((st = lb_ft_inject_draw(&s, lb_rng_u64(&g))) != LB_OK) goto out;
        }
        double sum_loss = 0;
        long counted = 0, hits = 0, seen = 0;
        lb_progress p = {0};
        p.epoch = e + 1;
        p.epochs = c.epochs;
        p.steps = spe;
        int b;
        float lr = 0;
        while ((b = lb_loader_next(r.loader, r.x, r.y)) > 0) {
            lr = lb_sched_lr(&sch, step);
            float loss;
            int nc;
            if (f->method == LB_FT_INJECT && (st = lb_ft_inject_begin(&s)) != LB_OK) goto out;
            if (f->method == LB_FT_LOWBIT && f->chip_forward &&
                (st = lb_ft_forward_begin(&s, snap)) != LB_OK)
                goto out;
            st = lb_train_step(&r, &c, &w, step, b, lr, &loss, &nc, NULL);
            lb_ft_inject_end(&s); /* a skipped step never reached the hook */
            if (st != LB_OK) goto out;
            for (int i = 0; i < w.n; i++) note(fn, ctx, w.ev[i].message, 1);
            w.n = 0;
            if (f->method == LB_FT_QFALT) lb_ft_clamp(&s);
            if (unit < units && step == lb_ft_unit_end(unit, units, sch.total)) {
                if (lb_ft_reset_due(unit, units, f->reset_f1, f->reset_f2) &&
                    f->method != LB_FT_INJECT) {
                    /* methods.md: the float weights become the chip's quantized faulty copy;
                     * QFALT also starts its optimizer afresh */
                    if ((st = lb_chip_snap_weights(snap)) != LB_OK) goto out;
                    if (f->method == LB_FT_QFALT)
                        lb_optim_init(&r.opt, &c.opt, r.net->nparam, r.opt_state);
                    resets++;
                }
                unit++;
                if (f->method == LB_FT_QFALT) qfalt_sched(&s, lambda, 2.0 * unit / units);
            }
            step++;
            if (isfinite(loss)) sum_loss += (double)loss * b, counted += b;
            hits += nc;
            seen += b;
            p.step++;
            p.loss = counted ? (float)(sum_loss / (double)counted) : NAN;
            p.acc = seen ? (float)hits / (float)seen : 0;
            double dt = now_s() - t0;
            p.img_per_s = (float)((double)seen / dt);
            p.eta_s = (float)(dt / p.step * (spe - p.step));
            p.lr = lr;
            if (fn) fn(ctx, &p);
        }
        /* the chip's accuracy: the hook is on for every eval forward */
        st = lb_evaluate(r.net, &r.test, &c.model.norm, c.test_limit, c.batch, &p.test_loss,
                         &p.test_acc);
        if (st != LB_OK) goto out;
        acc = p.test_acc;
        lb_ckpt_info oi;
        memset(&oi, 0, sizeof oi);
        oi.model = c.model;
        oi.train = c;
        oi.epoch = e + 1;
        oi.step = step;
        oi.test_acc = acc;
        oi.class_names = r.train.class_names;
        if ((st = lb_ckpt_save(c.out, r.net, &r.opt, &oi)) != LB_OK) goto out;
        p.epoch_s = (float)(now_s() - t0);
        res->reg = s.reg_steps ? s.reg_sum / (double)s.reg_steps : 0;
        st = metrics_line(c.metrics, e == 0, f, e + 1, c.epochs, p.loss, res->acc_before, acc, &s,
                          resets, lr, p.epoch_s, p.img_per_s);
        if (st != LB_OK) goto out;
        p.done = 1;
        if (fn) fn(ctx, &p);
    }
    res->acc_after = acc;
    res->resets = resets;
    res->seconds = now_s() - t_start;
out:
    lb_watch_free(&w);
    lb_ft_state_free(&s);
    lb_chip_detach(&chip);
    lb_run_free(&r);
    return st;
}
