/* The training-speed benchmark behind `lowbit bench`: real data batches (prepared untimed),
 * warm-up, then timed steps with forward, backward and update timed apart; medians reported. */
#include "train_internal.h"
#include "lb_ops.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

double lb_net_fwd_macs(const lb_net *n) {
    double m = 0;
    for (int i = 1; i < n->nnodes; i++) {
        const lb_node *d = &n->nodes[i];
        if (d->op == LB_OP_CONV || d->op == LB_OP_LINEAR)
            m += (double)n->params[d->pw].n * d->h * d->w;
    }
    return m;
}

lb_status lb_bench_run(const lb_train_cfg *cfg_in, int warmup, int steps, lb_bench_result *res,
                       lb_bench_profile_fn prof_fn, void *prof_ctx) {
    lb_train_cfg cfg = *cfg_in, *c = &cfg;
    if (steps < 1 || warmup < 0) return lb_error_set(LB_EINVAL, "--steps must be >= 1");
    if (c->batch < 1) return lb_error_set(LB_EINVAL, "--batch must be >= 1, got %d", c->batch);
    lb_snn_recipe(c);
    if (c->sched.base == 0) c->sched.base = lb_train_default_lr(c->model.arch, c->batch);
    lb_threads_set(c->threads);
    run r;
    memset(&r, 0, sizeof r);
    /* Batches are prepared before each timed step, not by a prefetch thread during it: on 2
     * cores that thread would take a core from the compute threads mid-step, and the PyTorch
     * peer's throughput script also prepares its batches outside the timed region. */
    r.sync_loader = 1;
    double *prof = NULL;
    double *t = calloc((size_t)steps * 4, sizeof *t);
    lb_status st = t ? lb_run_setup(&r, c) : lb_error_set(LB_ENOMEM, "out of memory");
    if (st != LB_OK) goto out;
    int classes = lb_net_classes(r.net);
    if (prof_fn) {
        prof = calloc(2 * (size_t)r.net->nnodes, sizeof *prof);
        if (!prof) {
            st = lb_error_set(LB_ENOMEM, "out of memory");
            goto out;
        }
    }
    /* the trainer's own step (with its checks), at the constant base rate */
    lb_watch w;
    if ((st = lb_watch_init(&w, classes, 100, 0, c->sched.base)) != LB_OK) goto out;
    int epoch = 0, done = 0;
    if (warmup == 0) r.net->prof = prof;
    lb_loader_start(r.loader, epoch);
    while (done < warmup + steps) {
        int b = lb_loader_next(r.loader, r.x, r.y);
        if (b < c->batch) { /* only full batches are timed */
            lb_loader_start(r.loader, ++epoch);
            continue;
        }
        double t0 = now_s(), tm[2] = {t0, t0}; /* a skipped step leaves them */
        float loss;
        int nc;
        st = lb_train_step(&r, c, &w, done, b, c->sched.base, &loss, &nc, tm);
        w.n = 0; /* a benchmark does not report collapses */
        if (st != LB_OK) break;
        double t3 = now_s(), t1 = tm[0], t2 = tm[1];
        if (done + 1 == warmup) r.net->prof = prof; /* time the nodes of the timed steps */
        if (done >= warmup) {
            int k = done - warmup;
            t[k] = t3 - t0;
            t[steps + k] = t1 - t0;
            t[2 * steps + k] = t2 - t1;
            t[3 * steps + k] = t3 - t2;
        }
        done++;
    }
    double step = median(t, steps);
    lb_watch_free(&w);
    if (st != LB_OK) goto out;
    res->step_ms = (float)(1e3 * step);
    res->fwd_ms = (float)(1e3 * median(t + steps, steps));
    res->bwd_ms = (float)(1e3 * median(t + 2 * steps, steps));
    res->opt_ms = (float)(1e3 * median(t + 3 * steps, steps));
    res->img_per_s = (float)(c->batch / step);
    res->fwd_macs = lb_net_fwd_macs(r.net);
    res->gflops = (float)(6.0 * res->fwd_macs * res->img_per_s * 1e-9);
    if (prof_fn)
        for (int i = 1; i < r.net->nnodes; i++)
            prof_fn(prof_ctx, &r.net->nodes[i], 1e3 * prof[2 * i] / steps,
                    1e3 * prof[2 * i + 1] / steps);
out:
    if (r.net) r.net->prof = NULL;
    free(prof);
    free(t);
    lb_run_free(&r);
    return st;
}
