/* Evaluation of the integer model on a data set, optionally beside the float QAT network on the
 * same images (prediction agreement, forward-only timings), and the logits dump format shared
 * with the exported main.c. Not a training path. */
#include "int_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int argmax_f(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

lb_status lb_int_evaluate(lb_int_model *m, lb_net *fnet, const lb_dataset *d, const lb_norm *norm,
                          int limit, int batch, lb_int_impl impl, int nthreads, int32_t *logits,
                          lb_int_eval *r) {
    memset(r, 0, sizeof *r);
    if (!m && !fnet) return lb_error_set(LB_EINVAL, "evaluation: no model given");
    lb_status st = lb_norm_check(norm, "evaluation");
    if (st != LB_OK) return st;
    if (batch < 1) return lb_error_set(LB_EINVAL, "evaluation: batch %d must be >= 1", batch);
    if (fnet && fnet->max_batch < batch)
        return lb_error_set(LB_EINVAL, "evaluation: float net planned for batch %d < %d",
                            fnet->max_batch, batch);
    const int classes = m ? m->classes : lb_net_classes(fnet);
    const lb_node *in = fnet ? &fnet->nodes[0] : NULL;
    int mc = m ? m->in_c : in->c, mh = m ? m->in_h : in->h, mw = m ? m->in_w : in->w;
    const int planes = lb_dataset_planes(d);
    /* label-indexed data (idx, CIFAR) fits a model with at least as many classes as it has */
    if (planes != mc || d->h != mh || d->w != mw ||
        (d->class_names ? d->classes != classes : d->classes > classes))
        return lb_error_set(LB_EINVAL,
                            "data %dx%dx%d with %d classes does not fit the model (%dx%dx%d, %d)",
                            planes, d->h, d->w, d->classes, mc, mh, mw, classes);
    const int n = lb_dataset_count(d, limit);
    const size_t chw = (size_t)planes * d->h * d->w;
    int32_t *lg = malloc((size_t)batch * classes * sizeof *lg);
    int32_t *ipred = malloc((size_t)batch * sizeof *ipred);
    float *x = fnet ? malloc((size_t)batch * chw * sizeof *x) : NULL;
    if (!lg || !ipred || (fnet && !x)) {
        st = lb_error_set(LB_ENOMEM, "out of memory for evaluation buffers");
        goto out;
    }
    /* the loader's normalization, exactly (no augmentation at evaluation) */
    float mean[3], sd[3], lut[3][256];
    lb_norm_resolve(norm, d, mean, sd);
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) lut[c][v] = ((float)v / 255.0f - mean[c]) / sd[c];
    for (int b0 = 0; b0 < n && st == LB_OK; b0 += batch) {
        int nb = n - b0 < batch ? n - b0 : batch;
        const uint8_t *img = d->images + (size_t)b0 * chw;
        if (m) {
            int32_t *dst = logits ? logits + (size_t)b0 * classes : lg;
            double t0 = now_s();
            st = lb_int_run(m, img, nb, dst, ipred, impl, nthreads);
            r->int_s += now_s() - t0;
            for (int i = 0; i < nb; i++) r->correct += ipred[i] == d->labels[b0 + i];
        }
        if (fnet && st == LB_OK) {
            const size_t hw = (size_t)d->h * d->w;
            for (int i = 0; i < nb; i++)
                for (int c = 0; c < planes; c++) /* event planes: channel = polarity */
                    for (size_t j = 0; j < hw; j++) {
                        size_t o = ((size_t)i * planes + c) * hw + j;
                        x[o] = lut[c % d->c][img[o]];
                    }
            double t0 = now_s();
            const float *out = lb_net_forward(fnet, x, nb, 0);
            r->float_s += now_s() - t0;
            for (int i = 0; i < nb; i++) {
                int p = argmax_f(out + (size_t)i * classes, classes);
                r->float_correct += p == d->labels[b0 + i];
                if (m) r->agree += p == ipred[i];
            }
        }
        r->n += nb;
    }
out:
    free(lg);
    free(ipred);
    free(x);
    return st;
}

lb_status lb_int_write_logits(const char *path, const int32_t *logits, int n, int classes) {
    FILE *f = fopen(path, "w");
    if (!f) return lb_error_set(LB_EIO, "%s: cannot open for writing: %s", path, strerror(errno));
    for (int i = 0; i < n; i++) {
        const int32_t *l = logits + (size_t)i * classes;
        int best = 0;
        for (int c = 1; c < classes; c++)
            if (l[c] > l[best]) best = c;
        fprintf(f, "%d", best);
        for (int c = 0; c < classes; c++) fprintf(f, " %ld", (long)l[c]);
        fputc('\n', f);
    }
    int bad = ferror(f);
    if (fclose(f) != 0 || bad)
        return lb_error_set(LB_EIO, "%s: write failed: %s", path, strerror(errno));
    return LB_OK;
}
