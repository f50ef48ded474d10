/* libFuzzer target for the CIFAR10-DVS .aedat (AEDAT 2.0) reader and the binning after it; not a
 * test. Input: 1 byte choosing the sensor (0: the default 128x128, else k x k with k = byte,
 * clamped to 128) and the frame count, then the file's bytes. */
#include "lb_data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t frames[8 * 2 * 16 * 16];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int k = data[0] > 128 ? 128 : data[0], T = 1 + data[0] % 8;
    lb_events e = {0};
    lb_status st = lb_events_parse_aedat("<aedat>", data + 1, size - 1, k, k, &e);
    if (st == LB_OK) {
        if (e.n == 0 || e.n > (size - 1) / 8 || e.format != LB_EV_AEDAT) __builtin_trap();
        int64_t tmax = e.ev[0].t;
        for (size_t i = 0; i < e.n; i++) {
            const lb_event *v = &e.ev[i];
            if (v->x >= e.w || v->y >= e.h || v->p > 1 || v->t < 0 || v->t + LB_EV_TIME_TOL < tmax)
                __builtin_trap();
            tmax = v->t > tmax ? v->t : tmax;
        }
        if (lb_events_bin(&e, T, data[0] & 1, 16, 16, frames) != LB_OK) __builtin_trap();
        size_t total = 0;
        for (size_t i = 0; i < (size_t)T * 2 * 256; i++) total += frames[i];
        if (total > e.n) __builtin_trap();
        uint8_t *buf;
        size_t len;
        if (lb_events_encode(&e, LB_EV_AEDAT, &buf, &len) != LB_OK) __builtin_trap();
        free(buf);
    } else {
        if (e.n) __builtin_trap();
        if (!strstr(lb_error_msg(), "<aedat>")) __builtin_trap();
    }
    lb_events_free(&e);
    return 0;
}
