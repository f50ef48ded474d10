/* libFuzzer target for the CIFAR-10/100 binary parser; not a test. Input: one byte whose low bit
 * selects CIFAR-100, then the file bytes. */
#include "lb_data.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int cifar100 = data[0] & 1;
    lb_dataset d;
    lb_status st = lb_cifar_parse_mem("<cifar>", data + 1, size - 1, cifar100, &d);
    if (st == LB_OK) {
        if (d.n <= 0 || d.c != 3 || d.h != 32 || d.w != 32 || d.classes != (cifar100 ? 100 : 10) ||
            !d.images || !d.labels)
            __builtin_trap();
        size_t rs = cifar100 ? 3074 : 3073;
        if ((size_t)d.n * rs != size - 1) __builtin_trap();
        for (int i = 0; i < d.n; i++) {
            if (d.labels[i] < 0 || d.labels[i] >= d.classes) __builtin_trap();
            if (memcmp(d.images + (size_t)i * 3072, data + 1 + i * rs + rs - 3072, 3072))
                __builtin_trap();
        }
        lb_dataset_free(&d);
    } else {
        if (d.images || d.labels || d.n) __builtin_trap();
        if (!strstr(lb_error_msg(), "<cifar>")) __builtin_trap();
    }
    return 0;
}
