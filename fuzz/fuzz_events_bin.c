/* libFuzzer target for the N-MNIST/N-Caltech101 .bin reader and the binning after it; not a
 * test. Input: 1 byte choosing the sensor (0: the default 304x240, else a k x k sensor with
 * k = byte, clamped to the format) and the frame count, then the file's bytes. */
#include "lb_data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frames[8 * 2 * 16 * 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int k = data[0] > 240 ? 240 : data[0], T = 1 + data[0] % 8;
    lb_events e = {0}, r = {0};
    lb_status st = lb_events_parse_bin("<bin>", data + 1, size - 1, k, k, &e);
    if (st == LB_OK) {
        if (e.n == 0 || e.n > (size - 1) / 5 || e.format != LB_EV_BIN) __builtin_trap();
        int64_t tmax = e.ev[0].t;
        for (size_t i = 0; i < e.n; i++) { /* every event inside the sensor, time checked */
            const lb_event *v = &e.ev[i];
            if (v->x >= e.w || v->y >= e.h || v->p > 1 || v->t + LB_EV_TIME_TOL < tmax)
                __builtin_trap();
            tmax = v->t > tmax ? v->t : tmax;
        }
        if (lb_events_bin(&e, T, data[0] & 1, 16, 16, frames) != LB_OK) __builtin_trap();
        size_t total = 0;
        for (size_t i = 0; i < (size_t)T * 2 * 256; i++) total += frames[i];
        if (total > e.n) __builtin_trap();
        /* what the writer accepts reads back the same */
        uint8_t *buf;
        size_t len;
        if (lb_events_encode(&e, LB_EV_BIN, &buf, &len) == LB_OK) {
            if (lb_events_parse_bin("<again>", buf, len, k, k, &r) != LB_OK || r.n != e.n)
                __builtin_trap();
            for (size_t i = 0; i < e.n; i++)
                if (r.ev[i].t != e.ev[i].t || r.ev[i].x != e.ev[i].x || r.ev[i].y != e.ev[i].y ||
                    r.ev[i].p != e.ev[i].p)
                    __builtin_trap();
            free(buf);
        }
    } else {
        if (e.n) __builtin_trap();                              /* nothing handed out on error */
        if (!strstr(lb_error_msg(), "<bin>")) __builtin_trap(); /* names the file */
    }
    lb_events_free(&e);
    lb_events_free(&r);
    return 0;
}
