/* The batch loader: per-epoch permutation, per-sample crop/flip, normalization, and one prefetch
 * thread double-buffering the next batch; not a multi-worker pipeline (one thread keeps up with
 * the small images lowbit trains on). */
#include "lb_data.h"

#include <assert.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct lb_loader {
    const lb_dataset *d;
    lb_loader_cfg cfg;
    int n, nb;     /* samples used, batches per epoch */
    size_t chw;    /* floats per sample */
    int epoch;     /* current epoch */
    int cur;       /* next batch the caller gets */
    int32_t *perm; /* [n] */
    float lut[3][256];
    lb_arena arena;
    /* prefetch: the worker builds batch `want` into px/py and marks it ready */
    int threaded;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    float *px;
    int32_t *py;
    int want, ready, ready_batch, ready_count, busy, quit;
};

static void make_perm(lb_loader *l) {
    for (int i = 0; i < l->n; i++) l->perm[i] = i;
    if (!l->cfg.shuffle) return;
    lb_rng r;
    lb_rng_derive(&r, l->cfg.seed, (uint64_t)(int64_t)l->epoch, 0);
    for (int i = l->n - 1; i > 0; i--) {
        int j = (int)lb_rng_below(&r, (uint32_t)i + 1);
        int32_t t = l->perm[i];
        l->perm[i] = l->perm[j];
        l->perm[j] = t;
    }
}

/* Builds batch b of `epoch` into x/y; reads only immutable state and perm (which the caller
 * never changes while this runs). Returns the batch size. */
static int build_batch(const lb_loader *l, int epoch, int b, float *x, int32_t *y) {
    const lb_dataset *d = l->d;
    /* planes: c, or frames * c for event frames (plane k is channel k % c) */
    const int C = d->c, NP = lb_dataset_planes(d), H = d->h, W = d->w, P = l->cfg.aug.crop_pad;
    const int first = b * l->cfg.batch;
    int cnt = l->n - first < l->cfg.batch ? l->n - first : l->cfg.batch;
    for (int i = 0; i < cnt; i++) {
        const int pos = first + i, idx = l->perm[pos];
        const uint8_t *src = d->images + (size_t)idx * l->chw;
        float *dst = x + (size_t)i * l->chw;
        y[i] = d->labels[idx];
        if (P <= 0 && !l->cfg.aug.hflip) {
            for (int c = 0; c < NP; c++) {
                const float *lut = l->lut[c % C];
                const uint8_t *s = src + (size_t)c * H * W;
                float *o = dst + (size_t)c * H * W;
                for (int k = 0; k < H * W; k++) o[k] = lut[s[k]];
            }
            continue;
        }
        lb_rng r;
        lb_rng_derive(&r, l->cfg.seed, (uint64_t)(int64_t)epoch, 1 + (uint64_t)pos);
        int oy = 0, ox = 0, flip = 0;
        if (P > 0) {
            oy = (int)lb_rng_below(&r, 2 * (uint32_t)P + 1);
            ox = (int)lb_rng_below(&r, 2 * (uint32_t)P + 1);
        }
        if (l->cfg.aug.hflip) flip = (int)lb_rng_below(&r, 2);
        for (int c = 0; c < NP; c++) {
            const float *lut = l->lut[c % C];
            const float black = lut[0];
            const uint8_t *s = src + (size_t)c * H * W;
            float *o = dst + (size_t)c * H * W;
            for (int yy = 0; yy < H; yy++) {
                const int sy = yy + oy - P;
                float *orow = o + (size_t)yy * W;
                if (sy < 0 || sy >= H) {
                    for (int xx = 0; xx < W; xx++) orow[xx] = black;
                    continue;
                }
                /* Output columns [x0, x1) come from the image, the rest from the padding:
                 * source column (flip ? W-1-x : x) + dx. */
                const uint8_t *srow = s + (size_t)sy * W;
                const int dx = ox - P;
                int x0, x1;
                if (!flip) {
                    x0 = dx < 0 ? -dx : 0;
                    x1 = dx > 0 ? W - dx : W;
                } else {
                    x0 = dx > 0 ? dx : 0;
                    x1 = dx < 0 ? W + dx : W;
                }
                if (x1 < x0) x1 = x0;
                for (int xx = 0; xx < x0; xx++) orow[xx] = black;
                if (!flip)
                    for (int xx = x0; xx < x1; xx++) orow[xx] = lut[srow[xx + dx]];
                else
                    for (int xx = x0; xx < x1; xx++) orow[xx] = lut[srow[W - 1 - xx + dx]];
                for (int xx = x1; xx < W; xx++) orow[xx] = black;
            }
        }
    }
    return cnt;
}

static void *worker(void *arg) {
    lb_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->quit && (l->want < 0 || l->ready)) pthread_cond_wait(&l->cv_work, &l->mu);
        if (l->quit) break;
        const int b = l->want, epoch = l->epoch;
        l->want = -1;
        l->busy = 1;
        pthread_mutex_unlock(&l->mu);
        const int cnt = build_batch(l, epoch, b, l->px, l->py);
        pthread_mutex_lock(&l->mu);
        l->busy = 0;
        l->ready = 1;
        l->ready_batch = b;
        l->ready_count = cnt;
        pthread_cond_broadcast(&l->cv_done);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

lb_status lb_loader_new(const lb_dataset *d, const lb_loader_cfg *cfg, lb_loader **out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_loader_new: out is NULL");
    *out = NULL;
    if (!d || !cfg) return lb_error_set(LB_EINVAL, "lb_loader_new: data set or config is NULL");
    if (d->n <= 0 || d->h <= 0 || d->w <= 0 || !d->images || !d->labels)
        return lb_error_set(LB_EINVAL, "lb_loader_new: empty data set");
    if (d->c < 1 || d->c > 3)
        return lb_error_set(LB_EINVAL, "lb_loader_new: %d channels (1..3 supported)", d->c);
    if (d->frames < 0 || d->frames > LB_EV_MAX_FRAMES)
        return lb_error_set(LB_EINVAL, "lb_loader_new: %d frames (0..%d supported)", d->frames,
                            LB_EV_MAX_FRAMES);
    if (cfg->batch < 1) return lb_error_set(LB_EINVAL, "loader batch %d must be >= 1", cfg->batch);
    if (cfg->limit < 0) return lb_error_set(LB_EINVAL, "loader limit %d must be >= 0", cfg->limit);
    if (cfg->aug.crop_pad < 0 || cfg->aug.crop_pad > d->h || cfg->aug.crop_pad > d->w)
        return lb_error_set(LB_EINVAL, "crop padding %d must be in [0, %d]", cfg->aug.crop_pad,
                            d->h < d->w ? d->h : d->w);

    lb_status nst = lb_norm_check(&cfg->norm, "loader");
    if (nst != LB_OK) return nst;

    lb_loader *l = calloc(1, sizeof *l);
    if (!l) return lb_error_set(LB_ENOMEM, "cannot allocate the loader");
    l->d = d;
    l->cfg = *cfg;
    l->n = lb_dataset_count(d, cfg->limit);
    l->nb = (l->n + cfg->batch - 1) / cfg->batch;
    l->chw = (size_t)lb_dataset_planes(d) * d->h * d->w;

    float mean[3], sd[3];
    lb_norm_resolve(&cfg->norm, d, mean, sd);
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) l->lut[c][v] = ((float)v / 255.0f - mean[c]) / sd[c];

    /* Plan once: permutation and (with prefetch) one batch buffer. */
    const size_t bx = (size_t)cfg->batch * l->chw * sizeof(float);
    const size_t by = (size_t)cfg->batch * sizeof(int32_t);
    lb_arena_init_counting(&l->arena);
    lb_arena_alloc(&l->arena, (size_t)l->n * sizeof(int32_t));
    if (cfg->prefetch) {
        lb_arena_alloc(&l->arena, bx);
        lb_arena_alloc(&l->arena, by);
    }
    lb_status st = lb_arena_reserve(&l->arena, l->arena.used);
    if (st) {
        free(l);
        return st;
    }
    l->perm = lb_arena_alloc(&l->arena, (size_t)l->n * sizeof(int32_t));
    if (cfg->prefetch) {
        l->px = lb_arena_alloc(&l->arena, bx);
        l->py = lb_arena_alloc(&l->arena, by);
    }
    l->epoch = 0;
    l->cur = 0;
    make_perm(l);
    l->want = l->nb > 0 ? 0 : -1;

    if (cfg->prefetch) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv_work, NULL);
        pthread_cond_init(&l->cv_done, NULL);
        if (pthread_create(&l->th, NULL, worker, l) != 0) {
            pthread_cond_destroy(&l->cv_done);
            pthread_cond_destroy(&l->cv_work);
            pthread_mutex_destroy(&l->mu);
            lb_arena_release(&l->arena);
            free(l);
            return lb_error_set(LB_ENOMEM, "cannot start the loader's prefetch thread");
        }
        l->threaded = 1;
    }
    *out = l;
    return LB_OK;
}

void lb_loader_start(lb_loader *l, int epoch) {
    assert(l);
    if (!l->threaded) {
        l->epoch = epoch;
        l->cur = 0;
        make_perm(l);
        return;
    }
    pthread_mutex_lock(&l->mu);
    while (l->busy) pthread_cond_wait(&l->cv_done, &l->mu); /* it reads perm and epoch */
    l->epoch = epoch;
    l->cur = 0;
    make_perm(l);
    l->ready = 0; /* drop a batch of the old epoch */
    l->want = l->nb > 0 ? 0 : -1;
    pthread_cond_signal(&l->cv_work);
    pthread_mutex_unlock(&l->mu);
}

int lb_loader_next(lb_loader *l, float *x, int32_t *y) {
    assert(l && x && y);
    if (!l->threaded) {
        if (l->cur >= l->nb) return 0;
        return build_batch(l, l->epoch, l->cur++, x, y);
    }
    pthread_mutex_lock(&l->mu);
    if (l->cur >= l->nb) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    while (!(l->ready && l->ready_batch == l->cur)) {
        /* Normally the worker is already on batch cur; this also recovers from any stale batch
         * (which lb_loader_start prevents) instead of returning it or waiting forever. */
        l->ready = 0;
        if (!l->busy) l->want = l->cur;
        pthread_cond_signal(&l->cv_work);
        pthread_cond_wait(&l->cv_done, &l->mu);
    }
    const int cnt = l->ready_count;
    memcpy(x, l->px, (size_t)cnt * l->chw * sizeof *x);
    memcpy(y, l->py, (size_t)cnt * sizeof *y);
    l->ready = 0;
    l->cur++;
    if (l->cur < l->nb) {
        l->want = l->cur;
        pthread_cond_signal(&l->cv_work);
    }
    pthread_mutex_unlock(&l->mu);
    return cnt;
}

int lb_loader_batches(const lb_loader *l) {
    return l ? l->nb : 0;
}
int lb_loader_samples(const lb_loader *l) {
    return l ? l->n : 0;
}

void lb_loader_free(lb_loader *l) {
    if (!l) return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->quit = 1;
        pthread_cond_signal(&l->cv_work);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->th, NULL);
        pthread_cond_destroy(&l->cv_done);
        pthread_cond_destroy(&l->cv_work);
        pthread_mutex_destroy(&l->mu);
    }
    lb_arena_release(&l->arena);
    free(l);
}
