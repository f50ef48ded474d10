/* libFuzzer target for the idx parsers (raw and gzip, images and labels together); not a test.
 * Input: 4 bytes big-endian length L of the images part, then L image-file bytes (clamped to what
 * is there), then the labels-file bytes. */
#include "lb_data.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 4) return 0;
    size_t split = (size_t)data[0] << 24 | (size_t)data[1] << 16 | (size_t)data[2] << 8 | data[3];
    data += 4;
    size -= 4;
    if (split > size) split = size;
    lb_dataset d;
    lb_status st =
        lb_idx_parse_mem("<images>", data, split, "<labels>", data + split, size - split, &d);
    if (st == LB_OK) {
        /* Invariants a caller relies on. */
        if (d.n <= 0 || d.c != 1 || d.h <= 0 || d.w <= 0 || d.classes < 2 || d.classes > 256 ||
            !d.images || !d.labels)
            __builtin_trap();
        size_t px = (size_t)d.n * d.h * d.w;
        unsigned acc = 0;
        for (size_t i = 0; i < px; i++) acc += d.images[i]; /* every pixel readable */
        for (int i = 0; i < d.n; i++)
            if (d.labels[i] < 0 || d.labels[i] >= d.classes) __builtin_trap();
        (void)acc;
        lb_dataset_free(&d);
    } else {
        const char *m = lb_error_msg();
        if (d.images || d.labels || d.n) __builtin_trap(); /* nothing handed out on error */
        if (!strstr(m, "<images>") && !strstr(m, "<labels>")) __builtin_trap(); /* names a file */
    }
    return 0;
}
