/* Binning an event list into T two-polarity count frames (by time or by event count), with
 * integer pooling of the sensor onto the output size; not the file readers (events.c). */
#include "lb_data.h"

#include <string.h>

lb_status lb_events_bin(const lb_events *e, int frames, int mode, int h, int w, uint8_t *dst) {
    if (!e || !dst) return lb_error_set(LB_EINVAL, "lb_events_bin: events or output is NULL");
    if (frames < 1 || frames > LB_EV_MAX_FRAMES)
        return lb_error_set(LB_EINVAL, "event frames %d: need 1..%d", frames, LB_EV_MAX_FRAMES);
    if (mode != LB_EVBIN_TIME && mode != LB_EVBIN_COUNT)
        return lb_error_set(LB_EINVAL, "event binning mode %d: need time (%d) or count (%d)", mode,
                            LB_EVBIN_TIME, LB_EVBIN_COUNT);
    if (h < 1 || w < 1 || h > 4096 || w > 4096)
        return lb_error_set(LB_EINVAL, "event frame size %dx%d: need 1..4096 a side", h, w);
    if (e->w < 1 || e->h < 1)
        return lb_error_set(LB_EINVAL, "event sensor %dx%d: need at least 1x1", e->w, e->h);
    const size_t plane = (size_t)h * w;
    memset(dst, 0, (size_t)frames * 2 * plane);
    if (!e->n) return LB_OK;

    /* The smallest integer factor that fits the whole sensor: every pixel of it is kept (no
     * crop), blocks are summed so a count is still a count of events. */
    int k = 1;
    while ((e->w + k - 1) / k > w || (e->h + k - 1) / k > h) k++;
    const int ph = (e->h + k - 1) / k, pw = (e->w + k - 1) / k;
    const int oy = (h - ph) / 2, ox = (w - pw) / 2;

    int64_t t0 = e->ev[0].t, t1 = e->ev[0].t;
    for (size_t i = 1; i < e->n; i++) {
        if (e->ev[i].t < t0) t0 = e->ev[i].t;
        if (e->ev[i].t > t1) t1 = e->ev[i].t;
    }
    /* D = t1 - t0 + 1: the last event falls inside frame T-1, never on an edge past it. */
    const int64_t D = t1 - t0 + 1;
    if (D <= 0 || D > ((int64_t)1 << 52))
        return lb_error_set(LB_EINVAL, "events span %lld us: too long to bin", (long long)D);
    for (size_t i = 0; i < e->n; i++) {
        const lb_event *v = &e->ev[i];
        if (v->x >= e->w || v->y >= e->h || v->p > 1)
            return lb_error_set(LB_EINVAL,
                                "event %zu: pixel (%d, %d) polarity %d outside the %dx%d sensor "
                                "or not 0/1",
                                i, v->x, v->y, v->p, e->w, e->h);
        const int f = mode == LB_EVBIN_TIME ? (int)((v->t - t0) * frames / D)
                                            : (int)((unsigned long long)i * frames / e->n);
        uint8_t *c =
            dst + ((size_t)f * 2 + v->p) * plane + (size_t)(oy + v->y / k) * w + (ox + v->x / k);
        if (*c < 255) (*c)++;
    }
    return LB_OK;
}
