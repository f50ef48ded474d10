/* The training driver: data -> model -> epochs of SGD/AdamW -> evaluation -> checkpoint, with
 * resume from a checkpoint continuing bit for bit (data order and augmentation derive from
 * (seed, epoch); parameters, optimizer, quantizer and RNG state come from the file). */
#include "train_internal.h"
#include "lb_ops.h"
#include "watch.h"

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

void lb_train_cfg_default(lb_train_cfg *c) {
    memset(c, 0, sizeof *c);
    lb_model_cfg_default(&c->model);
    snprintf(c->data_dir, sizeof c->data_dir, "/usr/share/datasets/fashion-mnist");
    c->epochs = 0; /* from the data set's size (recipe.c) */
    c->batch = 128;
    c->threads = 2;
    c->seed = 1;
    c->opt.kind = LB_OPT_SGD;
    c->opt.momentum = 0.9f;
    c->opt.nesterov = 1;
    c->opt.weight_decay = 5e-4f;
    c->opt.beta1 = 0.9f;
    c->opt.beta2 = 0.999f;
    c->opt.eps = 1e-8f;
    c->sched.kind = LB_SCHED_COSINE;
    c->sched.base = 0; /* 0: the model's default (lb_train_default_lr) */
    c->sched.warmup_start = 0.1f;
    c->sched.gamma = 0.1f;
    c->warmup_epochs = -1; /* LB_WARMUP_PCT percent of the run */
    c->qlr_scale = 1.0f;
    c->quant_delay_epochs = -1; /* auto: the warm-up for LSQ from random weights (recipe.c) */
    c->quant_delay_ema = NAN;
    c->head_lr = -1.0f; /* auto */
    c->levels_lr = LB_LEVELS_LR;
    c->label_smoothing = 0;
    c->aug.crop_pad = 2;
    c->aug.hflip = 0; /* opt-in: a flip changes the class of digits and letters */
    c->bits_lr = LB_ADAQAT_LR;
    c->bits_lambda = LB_ADAQAT_LAMBDA;
    c->bits_until = LB_ADAQAT_UNTIL;
    c->sliced_every = LB_SLICED_EVERY;
}

lb_status lb_evaluate(lb_net *n, const lb_dataset *d, const lb_norm *norm, int limit, int batch,
                      float *loss, float *acc) {
    return lb_evaluate_logits(n, d, norm, limit, batch, NULL, loss, acc);
}

lb_status lb_evaluate_logits(lb_net *n, const lb_dataset *d, const lb_norm *norm, int limit,
                             int batch, float *out, float *loss, float *acc) {
    int classes = lb_net_classes(n);
    lb_loader_cfg lc = {batch, 0, limit, {0, 0}, 0, 1, {0}};
    if (norm) lc.norm = *norm;
    lb_loader *l;
    lb_status st = lb_loader_new(d, &lc, &l);
    if (st != LB_OK) return st;
    size_t per = (size_t)lb_dataset_planes(d) * d->h * d->w;
    float *x = malloc((size_t)batch * per * sizeof *x);
    float *probs = malloc((size_t)batch * classes * sizeof *probs);
    int32_t *y = malloc((size_t)batch * sizeof *y);
    if (!x || !probs || !y) {
        st = lb_error_set(LB_ENOMEM, "out of memory for evaluation buffers");
        goto out;
    }
    lb_loader_start(l, 0);
    double tl = 0;
    long correct = 0, seen = 0;
    int b;
    while ((b = lb_loader_next(l, x, y)) > 0) {
        const float *logits = lb_net_forward(n, x, b, 0);
        if (out) memcpy(out + (size_t)seen * classes, logits, (size_t)b * classes * sizeof *out);
        int nc = 0;
        tl += (double)lb_xent_forward(b, classes, logits, y, 0, probs, &nc) * b;
        correct += nc;
        seen += b;
    }
    if (loss) *loss = seen ? (float)(tl / (double)seen) : 0;
    if (acc) *acc = seen ? (float)correct / (float)seen : 0;
out:
    free(x);
    free(probs);
    free(y);
    lb_loader_free(l);
    return st;
}

static lb_status check_cfg(const lb_train_cfg *c) {
    lb_status st;
    if (c->epochs < 0) return lb_error_set(LB_EINVAL, "--epochs must be >= 1, got %d", c->epochs);
    if (c->batch < 1 || c->batch > 65536)
        return lb_error_set(LB_EINVAL, "--batch must be 1..65536, got %d", c->batch);
    if (c->threads < 1 || c->threads > 1024)
        return lb_error_set(LB_EINVAL, "--threads must be 1..1024, got %d", c->threads);
    if (!(c->sched.base > 0) || c->sched.base > 100)
        return lb_error_set(LB_EINVAL, "--lr must be in (0, 100], got %g", c->sched.base);
    if (c->train_limit < 0 || c->test_limit < 0)
        return lb_error_set(LB_EINVAL, "--train-limit/--test-limit must be >= 0");
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 1))
        return lb_error_set(LB_EINVAL, "--label-smoothing must be in [0, 1)");
    if (!(c->qlr_scale >= 0)) return lb_error_set(LB_EINVAL, "--qlr-scale must be >= 0");
    if (c->on_collapse != LB_ON_COLLAPSE_STOP && c->on_collapse != LB_ON_COLLAPSE_WARN)
        return lb_error_set(LB_EINVAL, "--on-collapse: expected warn or stop");
    if (!c->out[0]) return lb_error_set(LB_EINVAL, "--out FILE is required");
    if ((st = lb_adaqat_cfg_check(c)) != LB_OK) return st;
    if ((st = lb_sliced_cfg_check(c)) != LB_OK) return st;
    return lb_reg_cfg_check(c);
}

void lb_run_free(run *r) {
    lb_loader_free(r->loader);
    lb_net_free(r->net);
    free(r->opt_state);
    free(r->seg);
    free(r->x);
    free(r->probs);
    free(r->dlogits);
    free(r->y);
    free(r->state_save);
    free(r->ada);
    lb_sliced_free(r);
    free(r->fire);
    lb_dataset_free(&r->train);
    lb_dataset_free(&r->test);
}

/* Everything a run needs, planned once: data, model, optimizer, batch buffers. */
lb_status lb_run_setup(run *r, lb_train_cfg *c) {
    /* Image folders: a resumed run sees its images as the first run did (the model's size and
     * channels, the recorded held-out fraction and seed) */
    lb_image_opts io = c->img;
    io.seed = c->seed;
    if (c->resume[0] && lb_dataset_dir_images(c->data_dir)) {
        io.h = c->model.in_h;
        io.w = c->model.in_w;
        io.c = c->model.in_c;
    }
    int events = lb_model_reads_events(&c->model);
    const lb_image_opts *use = lb_dataset_dir_images(c->data_dir) && !events ? &io : &c->img;
    lb_status st =
        lb_model_data_load(&c->model, c->data_dir, 1, use, c->seed, c->train_limit, &r->train);
    if (st == LB_OK && use == &io) { /* the defaults are resolved: no second pass over headers */
        io.h = r->train.h;
        io.w = r->train.w;
        io.c = r->train.c;
    }
    if (st == LB_OK)
        st = lb_model_data_load(&c->model, c->data_dir, 0, use, c->seed, c->test_limit, &r->test);
    if (st != LB_OK) return st;
    if (!events && r->train.frames > 0)
        return lb_error_set(LB_EINVAL,
                            "%s: event data needs a spiking model with --encoding "
                            "events",
                            c->data_dir);
    if (r->auto_batch) { /* the default batch for this set's size (recipe.c, docs/robust.md) */
        int n = lb_dataset_count(&r->train, c->train_limit);
        int b = lb_train_default_batch(n);
        c->batch_auto = 1;
        if (b != c->batch) {
            c->batch = b;
            if (!c->lr_given) { /* a default rate follows the batch it was set for */
                c->sched.base = 0;
                lb_snn_recipe(c);
                if (c->sched.base == 0)
                    c->sched.base = lb_train_default_lr(c->model.arch, c->batch);
            }
        }
    }
    c->model.in_c = lb_dataset_planes(&r->train);
    c->model.in_h = r->train.h;
    c->model.in_w = r->train.w;
    /* Classes: named ones (image folders) are the training split's, checked against a resumed
     * checkpoint's names (check_classes); label-indexed ones (idx, CIFAR) are the larger of the
     * two splits', and data whose labels fit a checkpoint's classes keeps its head (a subset of
     * its classes, or a split that lacks the last label) */
    int dk = r->train.classes;
    if (!r->train.class_names && r->test.classes > dk) dk = r->test.classes;
    if (!r->train.class_names && r->ckpt_classes > 0) {
        if (dk > r->ckpt_classes)
            return lb_error_set(LB_EINVAL,
                                "%s: labels up to %d, but the checkpoint's model has %d classes "
                                "(0..%d)",
                                c->data_dir, dk - 1, r->ckpt_classes, r->ckpt_classes - 1);
        dk = r->ckpt_classes;
    }
    c->model.classes = dk;
    /* The normalization belongs to the model: a fresh run takes the training split's; a resumed
     * or fine-tuning run arrives with its checkpoint's (unset only for older files, whose runs
     * used the training split's too, so a resume stays bit for bit). */
    if (!c->model.norm.set) {
        lb_dataset_norm(&r->train, c->model.norm.mean, c->model.norm.std);
        if (lb_model_is_snn(&c->model) && c->model.snn.encoding == LB_ENC_RATE)
            for (int k = 0; k < 3; k++) /* rate spikes need the intensity itself, pixel/255 */
                c->model.norm.mean[k] = 0, c->model.norm.std[k] = 1;
        c->model.norm.set = 1;
    } else if ((st = lb_norm_check(&c->model.norm, "model config")) != LB_OK) {
        return st;
    }
    if ((st = lb_model_build(&c->model, &r->net)) != LB_OK) return st;
    if ((st = lb_net_plan(r->net, c->batch, c->threads)) != LB_OK) return st;
    lb_net_init(r->net, c->seed);
    size_t ns = lb_optim_state_floats(&c->opt, r->net->nparam);
    r->opt_state = calloc(ns ? ns : 1, sizeof(float));
    r->seg = lb_net_segments(r->net, &r->nseg);
    if (!r->opt_state || !r->seg) return lb_error_set(LB_ENOMEM, "out of memory (optimizer)");
    lb_optim_init(&r->opt, &c->opt, r->net->nparam, r->opt_state);
    lb_loader_cfg lc = {c->batch,     1, c->train_limit, c->aug, c->seed, !r->sync_loader,
                        c->model.norm};
    if ((st = lb_loader_new(&r->train, &lc, &r->loader)) != LB_OK) return st;
    int classes = lb_net_classes(r->net);
    size_t per = (size_t)lb_dataset_planes(&r->train) * r->train.h * r->train.w;
    r->x = malloc((size_t)c->batch * per * sizeof(float));
    r->probs = malloc((size_t)c->batch * classes * sizeof(float));
    r->dlogits = malloc((size_t)c->batch * classes * sizeof(float));
    r->y = malloc((size_t)c->batch * sizeof(int32_t));
    r->state_save = malloc((r->net->nstate ? r->net->nstate : 1) * sizeof(float));
    if (!r->x || !r->probs || !r->dlogits || !r->y || !r->state_save)
        return lb_error_set(LB_ENOMEM, "out of memory (batch buffers)");
    return LB_OK;
}

/* The first non-finite gradient's tensor name, or NULL when every gradient is finite. The sum
 * over all gradients is one pass over the gradient array (small next to the activations); its
 * finiteness is the whole test, the name is looked up only on failure. */
static const char *nonfinite_grad(const lb_net *n) {
    float acc = 0;
    for (size_t i = 0; i < n->nparam; i++) acc += n->grad[i] * 0.0f;
    if (acc == 0.0f) return NULL;
    for (int t = 0; t < n->nparams; t++)
        for (size_t i = 0; i < n->params[t].n; i++)
            if (!isfinite(n->grad[n->params[t].off + i])) return n->params[t].name;
    return "?";
}

/* A test hook (docs/robust.md): LOWBIT_POISON_STEP=k puts a NaN into the first pixel of the batch
 * of optimizer step k, to show that a poisoned batch is detected and skipped. */
static long poison_step(void) {
    const char *e = getenv("LOWBIT_POISON_STEP");
    return e && *e ? strtol(e, NULL, 10) : -1;
}

lb_status lb_train_step(run *r, const lb_train_cfg *c, lb_watch *w, long step, int b, float lr,
                        float *loss, int *nc, double *tm) {
    int classes = lb_net_classes(r->net);
    double Lw = NAN, La = NAN;
    /* past --bits-until the widths stay: no probes, no update */
    lb_adaqat *ada = r->ada && (r->ada_until <= 0 || step < r->ada_until) ? r->ada : NULL;
    int pw = 0, pa = 0, turn = ada ? lb_adaqat_turn(ada, step) : 0;
    lb_status st;
    if (ada && (st = lb_adaqat_probe(ada, r->net, turn, r->x, r->y, b, c->label_smoothing, r->probs,
                                     r->state_save, &Lw, &La, &pw, &pa)) != LB_OK)
        return st;
    memcpy(r->state_save, r->net->state, r->net->nstate * sizeof(float));
    const float *logits = lb_net_forward(r->net, r->x, b, 1);
    st = lb_check_finite("logits", logits, (size_t)b * classes);
    if (st != LB_OK) return st;
    *loss = lb_xent_forward(b, classes, logits, r->y, c->label_smoothing, r->probs, nc);
    if (!isfinite(*loss)) {
        memcpy(r->net->state, r->state_save, r->net->nstate * sizeof(float));
        lb_watch_nonfinite(w, step, NULL);
        *nc = 0;
        return LB_OK;
    }
    if (r->head_pending && (st = lb_head_rate_measure(r, c, b, r->probs)) != LB_OK) return st;
    lb_watch_forward(w, r->net, b, step);
    lb_snn_fire_accum(r, b);
    /* the watch judges cross-entropy on the readout whatever the training loss */
    float task = *loss;
    if (lb_model_is_snn(&c->model) && c->model.snn.loss == LB_LOSS_MSE_COUNT)
        task = lb_snn_loss(r, c, b, logits);
    else
        lb_xent_backward(b, classes, r->probs, r->y, c->label_smoothing, r->dlogits);
    if (tm) tm[0] = now_s();
    if ((st = lb_net_backward(r->net, r->dlogits)) != LB_OK) return st;
    float ce = *loss; /* the watch judges the task loss: ln(C) means chance whatever lambda is */
    *loss = task;
    if (r->reg_hook) *loss += (float)r->reg_hook(r->reg_hook_ctx, r->net);
    *loss += lb_net_reg(r->net);
    *loss += (float)lb_sliced_before_update(r, step); /* size penalty; quantizer grads clipped */
    if (tm) tm[1] = now_s();
    const char *bad = nonfinite_grad(r->net);
    if (bad || !isfinite(*loss)) {
        memcpy(r->net->state, r->state_save, r->net->nstate * sizeof(float));
        lb_watch_nonfinite(w, step, bad ? bad : NULL);
        *loss = NAN;
        return LB_OK;
    }
    float lrs[LB_NGROUPS] = {lr, lr, lr * c->qlr_scale, lb_reg_levels_rate(c, lr)};
    lb_optim_step(&r->opt, r->net->param, r->net->grad, r->seg, r->nseg, lrs);
    lb_sliced_after_update(r); /* frozen phases and the steps between every K-th: put back */
    int node = 0, is_w = 0, at = lb_net_project(r->net, &node, &is_w);
    lb_net_reg_clamp(r->net); /* Gaussian form only (methods.md): weights into the levels' span */
    lb_watch_step(w, r->net, step, ce, *nc, b, at, node, is_w);
    if (ada) { /* the widths move after the weights, from this batch's three losses */
        lb_adaqat_update(ada, turn, ce, Lw, La, pw, pa);
        return lb_adaqat_commit(ada, r->net);
    }
    return LB_OK;
}

/* One line on an image folder: what was found and how it is seen. */
static const char *data_note(const run *r, const lb_train_cfg *c, char *b, size_t cap) {
    int k =
        snprintf(b, cap,
                 "data: image folder %s: %d training, %d test images as %dx%d %s (%s), %d "
                 "classes:",
                 c->data_dir, r->train.n, r->test.n, r->train.h, r->train.w,
                 r->train.c == 1 ? "grey" : "RGB",
                 c->img.h || c->resume[0] ? "as given" : "the most common size", r->train.classes);
    for (int i = 0; i < r->train.classes && k > 0 && (size_t)k < cap - 8; i++) {
        int m = snprintf(b + k, cap - k, " %s", r->train.class_names[i]);
        if (m < 0 || (size_t)(k + m) >= cap - 8) {
            snprintf(b + k, cap - k, " ...");
            break;
        }
        k += m;
    }
    return b;
}

/* A resumed image-folder run must see the classes its checkpoint was trained on. */
static lb_status check_classes(const run *r, const lb_train_cfg *c) {
    if (!c->resume[0] || !r->train.class_names) return LB_OK;
    char **names;
    int n;
    lb_status st = lb_ckpt_class_names(c->resume, &names, &n);
    if (st != LB_OK) return st;
    for (int i = 0; names && i < n && st == LB_OK; i++)
        if (strcmp(names[i], r->train.class_names[i]) != 0)
            st = lb_error_set(LB_EINVAL,
                              "--resume %s: class %d is '%s' there but '%s' in %s: the class "
                              "folders changed",
                              c->resume, i, names[i], r->train.class_names[i], c->data_dir);
    free(names);
    return st;
}

lb_status lb_train_run(const lb_train_cfg *cfg_in, lb_progress_fn fn, void *ctx, float *final_acc) {
    lb_train_cfg cfg = *cfg_in, *c = &cfg;
    lb_ckpt_info info;
    memset(&info, 0, sizeof info);
    int start_epoch = 0;
    long step = 0;
    lb_status st;
    if (c->resume[0]) {
        if ((st = lb_ckpt_peek(c->resume, &info)) != LB_OK) return st;
        if (info.weights_only)
            return lb_error_set(LB_EINVAL,
                                "--resume %s: weights-only checkpoint (no training state): start "
                                "a run from it with --init instead",
                                c->resume);
        /* The recorded run decides model and hyperparameters; paths, threads, the stop point,
         * what to do on a collapse and (if given) a larger epoch count and another test subset
         * come from the caller. */
        lb_train_cfg rec = info.train;
        rec.model = info.model;
        memcpy(rec.data_dir, c->data_dir, sizeof rec.data_dir);
        memcpy(rec.out, c->out, sizeof rec.out);
        memcpy(rec.metrics, c->metrics, sizeof rec.metrics);
        memcpy(rec.resume, c->resume, sizeof rec.resume);
        rec.threads = c->threads;
        rec.stop_after = c->stop_after;
        if (c->test_limit) rec.test_limit = c->test_limit; /* 0: the recorded subset */
        rec.on_collapse = c->on_collapse;
        rec.log_scales = c->log_scales;
        if (c->epochs > rec.epochs) rec.epochs = c->epochs;
        *c = rec;
    }
    c->lr_given = c->sched.base != 0;
    lb_snn_recipe(c);
    if (c->sched.base == 0) c->sched.base = lb_train_default_lr(c->model.arch, c->batch);
    if ((st = check_cfg(c)) != LB_OK) return st;
    if (!c->metrics[0]) snprintf(c->metrics, sizeof c->metrics, "%.490s.metrics.jsonl", c->out);
    int ckpt_classes = c->resume[0] ? c->model.classes : 0;
    if (c->init[0] && !c->resume[0]) {
        /* fine-tuning keeps the normalization the initial weights were trained with */
        lb_ckpt_info ii;
        if ((st = lb_init_peek(c->init, &ii)) != LB_OK) return st;
        ckpt_classes = ii.model.classes;
        if (ii.model.norm.set) c->model.norm = ii.model.norm;
        if (strcmp(ii.model.arch, "graph") == 0) { /* an imported network is its own model */
            memcpy(c->model.arch, ii.model.arch, sizeof c->model.arch);
            memcpy(c->model.graph, ii.model.graph, sizeof c->model.graph);
        }
        if (!c->img.h && lb_dataset_dir_images(c->data_dir)) { /* the weights' input size */
            c->img.h = ii.model.in_h;
            c->img.w = ii.model.in_w;
        }
        if (!c->img.c && lb_dataset_dir_images(c->data_dir)) c->img.c = ii.model.in_c;
    }
    lb_threads_set(c->threads);
    run r;
    memset(&r, 0, sizeof r);
    lb_watch w;
    memset(&w, 0, sizeof w);
    if (fn && lb_model_reads_events(&c->model)) {
        lb_progress p = {0}; /* the emulator is the one slow step before the first batch */
        p.note = "data: event frames: an event folder binned, or a static set through the DVS "
                 "emulator (about a minute for 60,000 images on 2 cores; docs/events.md)";
        fn(ctx, &p);
    }
    /* a batch the caller set (or --batch) stays; the default one adapts to a small set */
    r.auto_batch = !c->batch_given && c->batch == LB_LR_BATCH && !c->resume[0];
    r.ckpt_classes = ckpt_classes;
    if ((st = lb_run_setup(&r, c)) != LB_OK) goto out;
    int steps_per_epoch = lb_loader_batches(r.loader);
    lb_sched sch;
    char note[768];
    st = lb_train_resolve(c, lb_loader_samples(r.loader), steps_per_epoch, &sch, note, sizeof note);
    if (st != LB_OK) goto out;
    if (c->init[0] && !c->resume[0] && (st = lb_init_load(c->init, r.net)) != LB_OK) goto out;
    if (c->resume[0]) {
        if ((st = lb_ckpt_load(c->resume, r.net, &r.opt, &info)) != LB_OK) goto out;
        start_epoch = info.epoch;
        step = info.step;
    }
    if ((st = lb_adaqat_setup(&r, c)) != LB_OK) goto out;
    r.ada_until = lb_adaqat_until_step(c, sch.total);
    if ((st = lb_sliced_setup(&r, c, steps_per_epoch)) != LB_OK) goto out;
    if ((st = lb_snn_train_setup(&r, c)) != LB_OK) goto out;
    if ((st = check_classes(&r, c)) != LB_OK) goto out;
    char hn[320];
    lb_head_rate_setup(&r, c, sch.base, hn, sizeof hn);
    if (fn && r.train.class_names) {
        char dn[1024];
        lb_progress p = {0};
        p.note = data_note(&r, c, dn, sizeof dn);
        fn(ctx, &p);
    }
    if (fn) {
        lb_progress p = {0};
        p.note = note;
        fn(ctx, &p);
    }
    if (fn && hn[0]) {
        lb_progress p = {0};
        p.note = hn;
        fn(ctx, &p);
    }
    if (fn && r.ada && r.ada_until > 0) {
        char un[160];
        lb_progress p = {0};
        snprintf(un, sizeof un,
                 "learned bits: the widths move in steps 1-%ld of %ld (--bits-until %.3g), then "
                 "stay for the weights to train at them",
                 r.ada_until, sch.total, (double)c->bits_until);
        p.note = un;
        fn(ctx, &p);
    }
    /* a loss verdict looks at a tenth of the run (10..100 steps), after the warm-up */
    long win = sch.total / 10;
    win = win < 10 ? 10 : win > 100 ? 100 : win;
    /* ... and after the float phase: the quantizers' first steps are a start of their own */
    long quiet = sch.warmup > c->quant_delay ? sch.warmup : c->quant_delay;
    if ((st = lb_watch_init(&w, lb_net_classes(r.net), (int)win, quiet + win, sch.base)) != LB_OK)
        goto out;
    long n_tr = lb_dataset_count(&r.train, c->train_limit);
    if ((st = lb_watch_set_prior(&w, r.train.labels, n_tr)) != LB_OK) goto out;
    long n_test = lb_dataset_count(&r.test, c->test_limit);
    double major;
    if ((st = lb_label_shares(r.test.labels, n_test, r.test.classes, &major, NULL)) != LB_OK)
        goto out;
    long poison = poison_step();
    float acc_last = info.test_acc;
    if (!c->resume[0]) acc_last = 0;
    for (int e = start_epoch; e < c->epochs; e++) {
        double t0 = now_s();
        lb_loader_start(r.loader, e);
        lb_watch_epoch_start(&w);
        float lambda = lb_reg_epoch_start(&r, c, e);
        if ((st = lb_sliced_epoch_start(&r, c, e)) != LB_OK) goto out;
        double sum_loss = 0;
        long hits = 0, seen = 0, counted = 0;
        lb_progress p = {0};
        p.epoch = e + 1;
        p.epochs = c->epochs;
        p.steps = steps_per_epoch;
        int b;
        while ((b = lb_loader_next(r.loader, r.x, r.y)) > 0) {
            float lr = lb_sched_lr(&sch, step), loss;
            int nc;
            if (step == poison) r.x[0] = NAN;
            r.net->quant_off = step < c->quant_delay; /* the float phase */
            if ((st = lb_train_step(&r, c, &w, step, b, lr, &loss, &nc, NULL)) != LB_OK) goto out;
            if ((st = lb_metrics_drain_events(&w, c->metrics, e + 1, fn, ctx)) != LB_OK) goto out;
            int how =
                lb_float_phase_step(c, step, loss, (int)win, w.chance_loss, sch.total, sch.warmup);
            if (how && fn) {
                lb_progress fp = {0};
                lb_float_phase_note(c, how, w.chance_loss, hn, sizeof hn);
                fp.note = hn;
                fn(ctx, &fp);
            }
            if (r.head_resolved) {
                r.head_resolved = 0;
                c->head_lr_scale = r.head_scale;
                if (fn) {
                    lb_progress hp = {0};
                    lb_head_rate_note(&r, hn, sizeof hn);
                    hp.note = hn;
                    fn(ctx, &hp);
                }
            }
            step++;
            if (c->log_scales > 0 && step % c->log_scales == 0 &&
                (st = lb_scales_append(c->metrics, r.net, e + 1, step)) != LB_OK)
                goto out;
            /* a skipped step has no loss to average; its images count as missed */
            if (isfinite(loss)) {
                sum_loss += (double)loss * b;
                counted += b;
            }
            hits += nc;
            seen += b;
            p.step++;
            p.loss = counted ? (float)(sum_loss / (double)counted) : NAN;
            p.acc = (float)hits / (float)seen;
            double dt = now_s() - t0;
            p.img_per_s = (float)((double)seen / dt);
            p.eta_s = (float)(dt / p.step * (steps_per_epoch - p.step));
            p.lr = lr;
            if (fn) fn(ctx, &p);
        }
        double t_train = now_s() - t0;
        p.img_per_s = (float)((double)seen / t_train);
        if ((st = lb_sliced_epoch_end(&r, c, e)) != LB_OK) goto out; /* BN after the last */
        /* the quantizers initialize on the first quantized training step: until it has run,
         * the model (and the checkpoint) is the float one */
        r.net->quant_off = p.float_phase = lb_in_float_phase(c->quant_delay, step);
        st = lb_evaluate(r.net, &r.test, &c->model.norm, c->test_limit, c->batch, &p.test_loss,
                         &p.test_acc);
        if (st != LB_OK) goto out;
        int at_chance = lb_watch_epoch_end(&w, e + 1, step, p.test_acc, major, n_test, p.acc, seen);
        if ((st = lb_metrics_drain_events(&w, c->metrics, e + 1, fn, ctx)) != LB_OK) goto out;
        p.epoch_s = (float)(now_s() - t0);
        p.done = 1;
        acc_last = p.test_acc;
        info.model = c->model;
        info.train = *c;
        info.epoch = e + 1;
        info.step = step;
        info.test_acc = p.test_acc;
        info.class_names = r.train.class_names;
        char *aj = NULL; /* the learned bits go into the model's layer_bits, the widths beside */
        if (r.ada && (st = lb_adaqat_layer_bits(r.net, c->model.q.overrides,
                                                sizeof c->model.q.overrides)) != LB_OK)
            goto out;
        if (r.ada && !(aj = lb_adaqat_to_json(r.ada, r.net))) {
            st = lb_error_set(LB_ENOMEM, "out of memory (checkpoint)");
            goto out;
        }
        info.model = c->model;
        info.train = *c;
        info.adaqat_json = aj;
        st = lb_ckpt_save(c->out, r.net, &r.opt, &info);
        free(aj);
        if (st != LB_OK) goto out;
        char regm[8192];
        if ((st = lb_reg_epoch_metrics(&r, c, lambda, p.test_acc, regm, sizeof regm)) != LB_OK)
            goto out;
        lb_adaqat_metrics(r.ada, r.net, regm + strlen(regm), sizeof regm - strlen(regm));
        lb_sliced_metrics(&r, regm + strlen(regm), sizeof regm - strlen(regm));
        lb_snn_fire_metrics(&r, regm, sizeof regm, &p.fire_rate);
        if ((st = lb_metrics_append_epoch(c->metrics, c, &p, w.epoch_events, w.nonfinite_epoch,
                                          regm)) != LB_OK)
            goto out;
        if (fn) fn(ctx, &p);
        if (at_chance && c->on_collapse == LB_ON_COLLAPSE_STOP) {
            st = lb_error_set(LB_ECOLLAPSE,
                              "collapse: stopped after epoch %d at chance (test accuracy %.4f); "
                              "the checkpoint %s holds that epoch. Try a lower --lr (now %g) or a "
                              "longer --warmup; --on-collapse warn keeps training",
                              e + 1, (double)p.test_acc, c->out, (double)sch.base);
            goto out;
        }
        if (c->stop_after && e + 1 >= c->stop_after) break;
    }
    if (final_acc) *final_acc = acc_last;
    if (r.sl && !(c->stop_after && c->stop_after < c->epochs)) {
        char bn[512];
        st = lb_sliced_final(&r, c, bn, sizeof bn);
        if (st == LB_OK && bn[0] && fn) {
            lb_progress p = {0};
            p.note = bn;
            fn(ctx, &p);
        }
    }
out:
    lb_watch_free(&w);
    lb_run_free(&r);
    return st;
}
