/* libFuzzer target for the PNG/JPEG decoders (libpng, libjpeg-turbo behind lb_image_decode_mem)
 * and the resampling after them; not a test. Input: the file bytes. A decoded image must agree
 * with its header-only decode, and converting it (grey and RGB, shrinking and growing) must stay
 * inside its buffers. */
#include "lb_data.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lb_image im, hd;
    lb_status st = lb_image_decode_mem("<image>", data, size, 0, &im);
    if (st != LB_OK) {
        if (im.px || im.w || im.h) __builtin_trap();
        if (!strstr(lb_error_msg(), "<image>")) __builtin_trap();
        return 0;
    }
    if (im.w < 1 || im.h < 1 || im.w > LB_IMG_MAX_SIDE || im.h > LB_IMG_MAX_SIDE || !im.px ||
        (im.c != 1 && im.c != 3))
        __builtin_trap();
    if (lb_image_decode_mem("<image>", data, size, 1, &hd) != LB_OK || hd.px || hd.w != im.w ||
        hd.h != im.h || hd.c != im.c)
        __builtin_trap();
    /* small targets keep each run fast; 2x its size exercises the bilinear path */
    static uint8_t out[3 * 64 * 64];
    int sizes[3][2] = {{7, 5}, {im.h < 32 ? 2 * im.h : 32, im.w < 32 ? 2 * im.w : 32}, {1, 64}};
    for (int k = 0; k < 3; k++)
        for (int c = 1; c <= 3; c += 2)
            if (lb_image_convert(&im, c, sizes[k][0], sizes[k][1], out) != LB_OK) __builtin_trap();
    if (im.w <= 64 && im.h <= 64 && lb_image_convert(&im, im.c, im.h, im.w, out) == LB_OK) {
        /* same size and channels: an exact copy, planes from the interleaved pixels */
        for (int p = 0; p < im.h * im.w; p++)
            for (int ch = 0; ch < im.c; ch++)
                if (out[ch * im.h * im.w + p] != im.px[p * im.c + ch]) __builtin_trap();
    }
    lb_image_free(&im);
    return 0;
}
