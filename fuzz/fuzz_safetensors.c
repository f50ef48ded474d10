/* libFuzzer target for the safetensors reader (lb_st_read_mem): any input must either be rejected
 * with a message or give tensors whose every byte, name and metadata entry can be touched. Not a
 * test of the writer. Build with clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude,
 * linking the sources of src/core and src/ckpt and -lcjson -lm; seeds in fuzz/corpus/safetensors.
 */
#include "lb_ckpt.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lb_st_file *f = NULL;
    lb_status st = lb_st_read_mem(data, size, "fuzz.safetensors", &f);
    if (st != LB_OK) {
        /* Every rejection names the input. */
        if (f || !strstr(lb_error_msg(), "fuzz.safetensors")) abort();
        return 0;
    }
    volatile unsigned sum = 0;
    int n = lb_st_count(f);
    for (int i = 0; i < n; i++) {
        const lb_st_tensor *t = lb_st_get(f, i);
        size_t nb = lb_dtype_size(t->dtype);
        if (!nb || t->ndim < 0 || t->ndim > LB_ST_MAXDIM) abort();
        for (int d = 0; d < t->ndim; d++) nb *= (size_t)t->shape[d];
        /* Reading every byte lets ASan catch data pointers outside the buffer. */
        for (size_t k = 0; k < nb; k++) sum += ((const unsigned char *)t->data)[k];
        sum += (unsigned)strlen(t->name);
        if (lb_st_find(f, t->name) != t) abort();
    }
    for (int i = 0; i < lb_st_meta_count(f); i++) {
        const lb_st_meta *m = lb_st_meta_at(f, i);
        const char *v = lb_st_meta_get(f, m->key);
        if (!v) abort();
        sum += (unsigned)strlen(m->value);
    }
    lb_st_free(f);
    (void)sum;
    return 0;
}
