/* Event-camera files: the N-MNIST/N-Caltech101 .bin and CIFAR10-DVS .aedat (AEDAT 2.0) readers
 * and writers, validated (docs/events.md). Not binning (evbin.c) nor folders (evdir.c). */
#include "lb_data.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BIN_REC 5
#define BIN_MARK_Y 240             /* y of a timestamp-overflow record */
#define BIN_MARK_STEP (1 << 13)    /* what a marker adds, as Read_Ndataset.m and tonic add */
#define BIN_TS_MAX ((1 << 23) - 1) /* the record's timestamp field */
#define AEDAT_REC 8
#define AEDAT_ADDR_MASK 0x7FFFu    /* x, y, p of a DVS128 event; higher bits: special events */
#define AEDAT_MAX_HEADER (1 << 20) /* a longer "header" is not one */
static const char aedat_magic[] = "#!AER-DAT2.0";

void lb_events_free(lb_events *e) {
    if (!e) return;
    free(e->ev);
    memset(e, 0, sizeof *e);
}

static lb_status reserve(lb_events *e, size_t n) {
    if (n <= e->cap) return LB_OK;
    size_t nc = e->cap ? e->cap : 1024;
    while (nc < n) nc *= 2;
    lb_event *v = realloc(e->ev, nc * sizeof *v);
    if (!v) return lb_error_set(LB_ENOMEM, "out of memory for %zu events", n);
    e->ev = v;
    e->cap = nc;
    return LB_OK;
}

lb_status lb_events_push(lb_events *e, int x, int y, int p, int64_t t) {
    if (e->n == e->cap) {
        lb_status st = reserve(e, e->n + 1);
        if (st) return st;
    }
    lb_event *v = &e->ev[e->n++];
    v->t = t;
    v->x = (uint16_t)x;
    v->y = (uint16_t)y;
    v->p = (uint8_t)p;
    return LB_OK;
}

/* Starts a parse into out: its buffer is kept, everything else reset. */
static void start(lb_events *out, int w, int h, int format) {
    lb_event *ev = out->ev;
    size_t cap = out->cap;
    memset(out, 0, sizeof *out);
    out->ev = ev;
    out->cap = cap;
    out->w = w;
    out->h = h;
    out->format = format;
}

static lb_status fail(lb_events *out, lb_status st) {
    out->n = 0;
    return st;
}

static lb_status check_sensor(const char *name, int w, int h, int maxw, int maxh) {
    if (w < 0 || h < 0 || w > maxw || h > maxh)
        return lb_error_set(LB_EINVAL, "%s: sensor %dx%d: need 1..%d x 1..%d (0: the default)",
                            name, w, h, maxw, maxh);
    return LB_OK;
}

/* Time may step back a little (events of one time stamp group are not strictly ordered by some
 * sensors' readout), not more: a larger jump is a wrapped counter or a damaged file. */
static lb_status check_time(const char *name, int64_t t, int64_t tmax, size_t off, size_t idx) {
    if (t + LB_EV_TIME_TOL < tmax)
        return lb_error_set(LB_EFORMAT,
                            "%s: byte %zu (event %zu): time %lld us steps back from %lld us (by "
                            "more than the tolerated %d us)",
                            name, off, idx, (long long)t, (long long)tmax, LB_EV_TIME_TOL);
    return LB_OK;
}

lb_status lb_events_parse_bin(const char *name, const uint8_t *buf, size_t len, int sensor_w,
                              int sensor_h, lb_events *out) {
    if (!name) name = "<events>";
    lb_status st = check_sensor(name, sensor_w, sensor_h, LB_EV_BIN_W, LB_EV_BIN_H);
    if (st) return fail(out, st);
    const int W = sensor_w ? sensor_w : LB_EV_BIN_W, H = sensor_h ? sensor_h : LB_EV_BIN_H;
    start(out, W, H, LB_EV_BIN);
    if (!buf || len == 0)
        return lb_error_set(LB_EFORMAT, "%s: empty event file (no records)", name);
    if (len % BIN_REC)
        return lb_error_set(LB_EFORMAT,
                            "%s: %zu bytes is not a whole number of 5-byte records: the record "
                            "at byte %zu (event %zu) is truncated",
                            name, len, len - len % BIN_REC, len / BIN_REC);
    size_t nrec = len / BIN_REC;
    if (nrec > LB_EV_MAX_EVENTS)
        return lb_error_set(LB_EFORMAT, "%s: %zu records: more than the %u events allowed", name,
                            nrec, LB_EV_MAX_EVENTS);
    if ((st = reserve(out, nrec))) return fail(out, st);
    int64_t add = 0, tmax = 0;
    for (size_t i = 0; i < nrec; i++) {
        const uint8_t *r = buf + i * BIN_REC;
        const int x = r[0], y = r[1], p = r[2] >> 7;
        const int64_t t = add + ((int64_t)(r[2] & 0x7f) << 16 | (int64_t)r[3] << 8 | r[4]);
        if (y == BIN_MARK_Y) { /* not an event: later timestamps are 2^13 us on */
            add += BIN_MARK_STEP;
            out->marks++;
            continue;
        }
        if (x >= W || y >= H)
            return fail(out, lb_error_set(LB_EFORMAT,
                                          "%s: byte %zu (event %zu): pixel (%d, %d) outside the "
                                          "%dx%d sensor",
                                          name, i * BIN_REC, i, x, y, W, H));
        if (out->n && (st = check_time(name, t, tmax, i * BIN_REC, i))) return fail(out, st);
        if (!out->n || t > tmax) tmax = t;
        lb_event *v = &out->ev[out->n++];
        v->t = t;
        v->x = (uint16_t)x;
        v->y = (uint16_t)y;
        v->p = (uint8_t)p;
    }
    if (!out->n)
        return lb_error_set(LB_EFORMAT, "%s: no events (only %zu overflow markers)", name,
                            out->marks);
    return LB_OK;
}

/* The header: lines starting with '#', the first the magic. Returns the data offset, or 0 with
 * the error set. */
static size_t aedat_header(const char *name, const uint8_t *buf, size_t len) {
    const size_t ml = sizeof aedat_magic - 1;
    if (len < ml || memcmp(buf, aedat_magic, ml) != 0) {
        char got[16];
        size_t k = 0;
        for (; k < len && k < 12; k++) got[k] = buf[k] >= 0x20 && buf[k] < 0x7f ? buf[k] : '?';
        got[k] = 0;
        lb_error_set(LB_EFORMAT,
                     "%s: not an AEDAT 2.0 file: it starts with '%s', expected the header line "
                     "'%s'",
                     name, got, aedat_magic);
        return 0;
    }
    size_t off = 0;
    while (off < len && buf[off] == '#') {
        const uint8_t *nl = memchr(buf + off, '\n', len - off);
        if (!nl || (size_t)(nl - buf) >= AEDAT_MAX_HEADER) {
            lb_error_set(LB_EFORMAT, "%s: byte %zu: header line without an end (no newline%s)",
                         name, off, nl ? " within 1 MiB" : "");
            return 0;
        }
        off = (size_t)(nl - buf) + 1;
    }
    return off;
}

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

lb_status lb_events_parse_aedat(const char *name, const uint8_t *buf, size_t len, int sensor_w,
                                int sensor_h, lb_events *out) {
    if (!name) name = "<events>";
    lb_status st = check_sensor(name, sensor_w, sensor_h, LB_EV_AEDAT_SIDE, LB_EV_AEDAT_SIDE);
    if (st) return fail(out, st);
    const int W = sensor_w ? sensor_w : LB_EV_AEDAT_SIDE,
              H = sensor_h ? sensor_h : LB_EV_AEDAT_SIDE;
    start(out, W, H, LB_EV_AEDAT);
    if (!buf || len == 0) return lb_error_set(LB_EFORMAT, "%s: empty event file", name);
    const size_t off = aedat_header(name, buf, len);
    if (!off) return LB_EFORMAT;
    const size_t data = len - off;
    if (data == 0)
        return lb_error_set(LB_EFORMAT, "%s: no events after the %zu-byte header", name, off);
    if (data % AEDAT_REC)
        return lb_error_set(LB_EFORMAT,
                            "%s: %zu data bytes after the header are not a whole number of "
                            "8-byte events: the event at byte %zu (event %zu) is truncated",
                            name, data, len - data % AEDAT_REC, data / AEDAT_REC);
    const size_t nrec = data / AEDAT_REC;
    if (nrec > LB_EV_MAX_EVENTS)
        return lb_error_set(LB_EFORMAT, "%s: %zu events: more than the %u allowed", name, nrec,
                            LB_EV_MAX_EVENTS);
    if ((st = reserve(out, nrec))) return fail(out, st);
    int64_t tmax = 0;
    for (size_t i = 0; i < nrec; i++) {
        const size_t at = off + i * AEDAT_REC;
        const uint32_t a = be32(buf + at);
        const int64_t t = be32(buf + at + 4);
        if (a & ~AEDAT_ADDR_MASK)
            return fail(out, lb_error_set(LB_EFORMAT,
                                          "%s: byte %zu (event %zu): address 0x%08x has bits "
                                          "above 0x7fff (not a DVS128 polarity event)",
                                          name, at, i, (unsigned)a));
        const int x = (int)((a & 0xFE) >> 1), y = (int)((a & 0x7F00) >> 8), p = (int)(a & 1);
        if (x >= W || y >= H)
            return fail(out, lb_error_set(LB_EFORMAT,
                                          "%s: byte %zu (event %zu): pixel (%d, %d) outside the "
                                          "%dx%d sensor",
                                          name, at, i, x, y, W, H));
        if (i && (st = check_time(name, t, tmax, at, i))) return fail(out, st);
        if (!i || t > tmax) tmax = t;
        lb_event *v = &out->ev[out->n++];
        v->t = t;
        v->x = (uint16_t)x;
        v->y = (uint16_t)y;
        v->p = (uint8_t)p;
    }
    return LB_OK;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

lb_status lb_events_load(const char *path, int sensor_w, int sensor_h, lb_events *out) {
    if (!path) return fail(out, lb_error_set(LB_EINVAL, "lb_events_load: no file given"));
    FILE *f = fopen(path, "rb");
    if (!f) return fail(out, lb_error_set(LB_EIO, "%s: cannot open: %s", path, strerror(errno)));
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    lb_status st = LB_OK;
    for (;;) { /* read whole: files are small (N-MNIST ~20 KB, CIFAR10-DVS ~1 MB) */
        if (len == cap) {
            size_t nc = cap ? cap * 2 : 1 << 16;
            uint8_t *nb = nc > ((size_t)LB_EV_MAX_EVENTS + 1) * AEDAT_REC ? NULL : realloc(buf, nc);
            if (!nb) {
                st = lb_error_set(LB_ENOMEM, "%s: too large to read (%zu bytes so far)", path, len);
                break;
            }
            buf = nb;
            cap = nc;
        }
        size_t k = fread(buf + len, 1, cap - len, f);
        len += k;
        if (k == 0) {
            if (ferror(f)) st = lb_error_set(LB_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!st) {
        const size_t ml = sizeof aedat_magic - 4; /* "#!AER-DAT" */
        int aedat = ends_with(path, ".aedat") ? 1
                    : ends_with(path, ".bin") ? 0
                                              : len >= ml && !memcmp(buf, aedat_magic, ml);
        st = aedat ? lb_events_parse_aedat(path, buf, len, sensor_w, sensor_h, out)
                   : lb_events_parse_bin(path, buf, len, sensor_w, sensor_h, out);
    } else {
        out->n = 0;
    }
    free(buf);
    return st;
}

lb_status lb_events_encode(const lb_events *e, int format, uint8_t **buf, size_t *len) {
    *buf = NULL;
    *len = 0;
    if (format != LB_EV_BIN && format != LB_EV_AEDAT)
        return lb_error_set(LB_EINVAL, "lb_events_encode: unknown format %d", format);
    static const char head[] = "#!AER-DAT2.0\r\n# written by lowbit\r\n";
    /* .bin: markers add at most one record per 2^13 us of the last time stamp */
    size_t marks = 0;
    if (format == LB_EV_BIN) {
        int64_t tmax = 0;
        for (size_t i = 0; i < e->n; i++) tmax = e->ev[i].t > tmax ? e->ev[i].t : tmax;
        if (tmax > BIN_TS_MAX) marks = (size_t)((tmax - BIN_TS_MAX) / BIN_MARK_STEP + 1);
    }
    size_t cap =
        format == LB_EV_BIN ? (e->n + marks) * BIN_REC : sizeof head - 1 + e->n * (size_t)AEDAT_REC;
    uint8_t *b = malloc(cap ? cap : 1), *w = b;
    if (!b) return lb_error_set(LB_ENOMEM, "out of memory encoding %zu events", e->n);
    if (format == LB_EV_AEDAT) {
        memcpy(w, head, sizeof head - 1);
        w += sizeof head - 1;
    }
    int64_t add = 0;
    for (size_t i = 0; i < e->n; i++) {
        const lb_event *v = &e->ev[i];
        const char *why = NULL;
        if (v->t < 0 || v->p > 1) why = "a negative time or a polarity other than 0/1";
        if (format == LB_EV_BIN) {
            if (v->x > 255 || v->y >= BIN_MARK_Y) why = "x > 255 or y >= 240 do not fit .bin";
            while (!why && v->t - add > BIN_TS_MAX && (size_t)(w - b) + 2 * BIN_REC <= cap) {
                *w++ = 0, *w++ = BIN_MARK_Y, *w++ = 0, *w++ = 0, *w++ = 0;
                add += BIN_MARK_STEP;
            }
            if (!why && (v->t - add < 0 || v->t - add > BIN_TS_MAX))
                why = "times must not decrease across a 23-bit overflow";
            if (!why) {
                const uint32_t t = (uint32_t)(v->t - add);
                *w++ = (uint8_t)v->x;
                *w++ = (uint8_t)v->y;
                *w++ = (uint8_t)(v->p << 7 | t >> 16);
                *w++ = (uint8_t)(t >> 8);
                *w++ = (uint8_t)t;
            }
        } else {
            if (v->x >= 128 || v->y >= 128) why = "x or y >= 128 do not fit DVS128 .aedat";
            if (v->t > 0xFFFFFFFFll) why = "time >= 2^32 us does not fit .aedat";
            if (!why) {
                const uint32_t a = (uint32_t)v->y << 8 | (uint32_t)v->x << 1 | v->p;
                const uint32_t t = (uint32_t)v->t;
                for (int k = 3; k >= 0; k--) *w++ = (uint8_t)(a >> (8 * k));
                for (int k = 3; k >= 0; k--) *w++ = (uint8_t)(t >> (8 * k));
            }
        }
        if (why) {
            free(b);
            return lb_error_set(LB_EINVAL, "event %zu (x %d, y %d, p %d, t %lld): %s", i, v->x,
                                v->y, v->p, (long long)v->t, why);
        }
    }
    *buf = b;
    *len = (size_t)(w - b);
    return LB_OK;
}

lb_status lb_events_write(const char *path, const lb_events *e, int format) {
    uint8_t *b;
    size_t n;
    lb_status st = lb_events_encode(e, format, &b, &n);
    if (st) {
        char why[512]; /* the message buffer is the one lb_error_set writes */
        snprintf(why, sizeof why, "%s", lb_error_msg());
        return lb_error_set(st, "%s: %s", path, why);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(b);
        return lb_error_set(LB_EIO, "%s: cannot create: %s", path, strerror(errno));
    }
    size_t k = fwrite(b, 1, n, f);
    int bad = k != n || fflush(f) != 0;
    int err = errno;
    bad |= fclose(f) != 0;
    free(b);
    if (bad) return lb_error_set(LB_EIO, "%s: write failed: %s", path, strerror(err));
    return LB_OK;
}
