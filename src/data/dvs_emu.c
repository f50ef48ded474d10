/* The DVS emulator: a static image moved along three saccades in front of a simulated event
 * camera (log intensity, contrast threshold, reference reset), and a whole static data set turned
 * into event frames. Every constant and why: docs/events.md. Not the file formats (events.c). */
#include "events_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define DVS_THRESHOLD 0.2f    /* ln-intensity step per event (DVS128 and v2e's default) */
#define DVS_STEPS 40          /* micro-steps per saccade: 0.07 px per step at the defaults */
#define DVS_MARGIN 3          /* 28x28 -> 34x34, N-MNIST's sensor */
#define DVS_AMPLITUDE 2.0f    /* triangle vertices within +-2 px: the image stays on the sensor */
#define DVS_SACCADE_US 100000 /* three saccades of 100 ms: N-MNIST's ~300 ms recordings */
#define DVS_DARK 10.0f /* added to 0..255 before the log: a dark current, so black is quiet */
#define DVS_MIN_THRESHOLD 0.1f /* noisy thresholds are clamped to this fraction of the nominal */
#define DVS_TAG 0x647673ull    /* "dvs": the noise stream of lb_rng_derive */

typedef struct dvs_cfg {
    float c, noise, amp;
    int steps, m, us;
} dvs_cfg;

static lb_status resolve(const lb_dvs_opts *o, dvs_cfg *k) {
    lb_dvs_opts z = {0};
    if (!o) o = &z;
    k->c = o->threshold ? o->threshold : DVS_THRESHOLD;
    k->noise = o->noise;
    k->steps = o->steps ? o->steps : DVS_STEPS;
    k->m = o->margin ? o->margin : DVS_MARGIN;
    k->amp = o->amplitude ? o->amplitude : DVS_AMPLITUDE;
    k->us = o->saccade_us ? o->saccade_us : DVS_SACCADE_US;
    if (!(k->c >= 0.01f && k->c <= 10) || !(k->noise >= 0 && k->noise <= 1) || k->steps < 1 ||
        k->steps > 10000 || k->m < 1 || k->m > 64 || !(k->amp > 0 && k->amp < (float)k->m) ||
        k->us < k->steps || k->us > 100000000)
        return lb_error_set(LB_EINVAL,
                            "DVS emulator: threshold %g (0.01..10), noise %g (0..1), steps %d "
                            "(1..10000), margin %d (1..64), amplitude %g (0 < a < margin), "
                            "saccade %d us (steps..1e8): out of range",
                            (double)k->c, (double)k->noise, k->steps, k->m, (double)k->amp, k->us);
    return LB_OK;
}

/* ln(I + dark) of the sensor with the image moved by (sx, sy), bilinear, black outside. */
static void render(const float *g, int h, int w, int m, float sx, float sy, int SH, int SW,
                   float *L) {
    for (int Y = 0; Y < SH; Y++) {
        const float v = (float)(Y - m) - sy;
        const int y0 = (int)floorf(v);
        const float fy = v - (float)y0;
        for (int X = 0; X < SW; X++) {
            const float u = (float)(X - m) - sx;
            const int x0 = (int)floorf(u);
            const float fx = u - (float)x0;
            float s = 0;
            for (int dy = 0; dy < 2; dy++) {
                const int yy = y0 + dy;
                if (yy < 0 || yy >= h) continue;
                const float wy = dy ? fy : 1 - fy;
                for (int dx = 0; dx < 2; dx++) {
                    const int xx = x0 + dx;
                    if (xx < 0 || xx >= w) continue;
                    s += wy * (dx ? fx : 1 - fx) * g[(size_t)yy * w + xx];
                }
            }
            L[(size_t)Y * SW + X] = logf(s + DVS_DARK);
        }
    }
}

static int cmp_event(const void *a, const void *b) {
    const lb_event *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    if (x->y != y->y) return x->y < y->y ? -1 : 1;
    if (x->x != y->x) return x->x < y->x ? -1 : 1;
    return (x->p > y->p) - (x->p < y->p);
}

lb_status lb_dvs_emulate(const uint8_t *img, int c, int h, int w, const lb_dvs_opts *o,
                         uint64_t index, lb_events *out) {
    dvs_cfg k;
    lb_status st = resolve(o, &k);
    if (st) return st;
    if (!img || !out || (c != 1 && c != 3) || h < 1 || w < 1 || h > 1024 || w > 1024)
        return lb_error_set(LB_EINVAL,
                            "DVS emulator: image %dx%dx%d: need 1 or 3 channels, "
                            "1..1024 a side",
                            c, h, w);
    const int SH = h + 2 * k.m, SW = w + 2 * k.m;
    const size_t np = (size_t)SH * SW, hw = (size_t)h * w;
    lb_event *keep = out->ev;
    size_t cap = out->cap;
    memset(out, 0, sizeof *out);
    out->ev = keep;
    out->cap = cap;
    out->w = SW;
    out->h = SH;
    /* scratch: grey image, reference, current, previous log intensity, ON and OFF thresholds */
    float *g = malloc((hw + 5 * np) * sizeof *g);
    if (!g) return lb_error_set(LB_ENOMEM, "DVS emulator: out of memory");
    float *ref = g + hw, *cur = ref + np, *prev = cur + np, *con = prev + np, *coff = con + np;
    for (size_t i = 0; i < hw; i++)
        g[i] =
            c == 1
                ? img[i]
                : (float)((299 * img[i] + 587 * img[hw + i] + 114 * img[2 * hw + i] + 500) / 1000);
    lb_rng r;
    lb_rng_derive(&r, o ? o->seed : 0, DVS_TAG, index);
    for (size_t i = 0; i < np; i++) {
        float a = k.c, b = k.c; /* the draws happen only with noise: no cost without it */
        if (k.noise > 0) {
            a = k.c * (1 + k.noise * lb_rng_normal(&r));
            b = k.c * (1 + k.noise * lb_rng_normal(&r));
        }
        con[i] = fmaxf(a, DVS_MIN_THRESHOLD * k.c);
        coff[i] = fmaxf(b, DVS_MIN_THRESHOLD * k.c);
    }
    /* the triangle: top, lower right, lower left, back to the top */
    const float vx[4] = {0, k.amp, -k.amp, 0},
                vy[4] = {-k.amp / 2, k.amp / 2, k.amp / 2, -k.amp / 2};
    render(g, h, w, k.m, vx[0], vy[0], SH, SW, ref);
    memcpy(prev, ref, np * sizeof *prev);
    int64_t tprev = 0;
    for (int s = 0; s < 3 && !st; s++) {
        for (int j = 1; j <= k.steps && !st; j++) {
            const float f = (float)j / (float)k.steps;
            const int64_t t = ((int64_t)s * k.steps + j) * k.us / k.steps;
            render(g, h, w, k.m, vx[s] + (vx[s + 1] - vx[s]) * f, vy[s] + (vy[s + 1] - vy[s]) * f,
                   SH, SW, cur);
            const size_t first = out->n;
            for (size_t i = 0; i < np && !st; i++) {
                const float L = cur[i], L0 = prev[i], dL = L - L0;
                /* each crossing of ref +- C is an event; its time interpolated inside the step */
                while (!st && L - ref[i] >= con[i]) {
                    ref[i] += con[i];
                    float a = dL != 0 ? (ref[i] - L0) / dL : 1;
                    a = a < 0 ? 0 : a > 1 ? 1 : a;
                    st = lb_events_push(out, (int)(i % SW), (int)(i / SW), 1,
                                        tprev + (int64_t)lroundf(a * (float)(t - tprev)));
                }
                while (!st && ref[i] - L >= coff[i]) {
                    ref[i] -= coff[i];
                    float a = dL != 0 ? (ref[i] - L0) / dL : 1;
                    a = a < 0 ? 0 : a > 1 ? 1 : a;
                    st = lb_events_push(out, (int)(i % SW), (int)(i / SW), 0,
                                        tprev + (int64_t)lroundf(a * (float)(t - tprev)));
                }
            }
            /* time order within the step (a full key: the order never depends on qsort) */
            if (!st && out->n - first > 1)
                qsort(out->ev + first, out->n - first, sizeof *out->ev, cmp_event);
            memcpy(prev, cur, np * sizeof *prev);
            tprev = t;
        }
    }
    free(g);
    if (st) out->n = 0;
    return st;
}

lb_status lb_dvs_dataset(const lb_dataset *src, const lb_dvs_opts *o, const lb_event_opts *bin,
                         lb_dataset *out) {
    if (!out) return lb_error_set(LB_EINVAL, "lb_dvs_dataset: out is NULL");
    memset(out, 0, sizeof *out);
    if (!src || src->n < 1 || !src->images || !src->labels || src->frames != 0)
        return lb_error_set(LB_EINVAL, "DVS emulator: need a static image data set (frames 0)");
    dvs_cfg k;
    lb_status st = resolve(o, &k);
    if (st) return st;
    lb_event_opts b = {0};
    if (bin) b = *bin;
    if (b.sensor_h || b.sensor_w)
        return lb_error_set(LB_EINVAL, "DVS emulator: the sensor is the image plus its margin; "
                                       "set the output size (h, w), not the sensor's");
    const int T = b.frames ? b.frames : LB_EV_FRAMES_DEFAULT;
    const int H = b.h ? b.h : src->h + 2 * k.m, W = b.w ? b.w : src->w + 2 * k.m;
    if (T < 1 || T > LB_EV_MAX_FRAMES || H < 1 || W < 1 || H > 4096 || W > 4096 ||
        (b.mode != LB_EVBIN_TIME && b.mode != LB_EVBIN_COUNT))
        return lb_error_set(LB_EINVAL,
                            "DVS emulator: %d frames of %dx%d, mode %d: need 1..%d "
                            "frames, 1..4096 a side, mode time or count",
                            T, H, W, b.mode, LB_EV_MAX_FRAMES);
    const size_t per = (size_t)T * 2 * H * W, src_per = (size_t)src->c * src->h * src->w;
    out->images = malloc((size_t)src->n * per);
    out->labels = malloc((size_t)src->n * sizeof *out->labels);
    if (!out->images || !out->labels) {
        lb_dataset_free(out);
        return lb_error_set(LB_ENOMEM, "DVS emulator: cannot allocate %d samples of %zu bytes",
                            src->n, per);
    }
    if (src->class_names && !(out->class_names = lb_names_dup(src->class_names, src->classes))) {
        lb_dataset_free(out);
        return lb_error_set(LB_ENOMEM, "DVS emulator: out of memory");
    }
    int bad = src->n;
#pragma omp parallel reduction(min : bad)
    {
        lb_events ev = {0}; /* one buffer per thread, reused for every image */
#pragma omp for schedule(dynamic, 16)
        for (int i = 0; i < src->n; i++) {
            lb_status e = lb_dvs_emulate(src->images + (size_t)i * src_per, src->c, src->h, src->w,
                                         o, (uint64_t)i, &ev);
            if (!e) e = lb_events_bin(&ev, T, b.mode, H, W, out->images + (size_t)i * per);
            out->labels[i] = src->labels[i];
            if (e) bad = i < bad ? i : bad;
        }
        lb_events_free(&ev);
    }
    if (bad < src->n) { /* again on this thread, for its message */
        lb_events ev = {0};
        st = lb_dvs_emulate(src->images + (size_t)bad * src_per, src->c, src->h, src->w, o,
                            (uint64_t)bad, &ev);
        if (!st) st = lb_events_bin(&ev, T, b.mode, H, W, out->images + (size_t)bad * per);
        lb_events_free(&ev);
        if (!st) st = lb_error_set(LB_ENOMEM, "DVS emulator: sample %d failed once", bad);
        lb_dataset_free(out);
        return st;
    }
    out->n = src->n;
    out->c = 2;
    out->h = H;
    out->w = W;
    out->frames = T;
    out->classes = src->classes;
    return LB_OK;
}
