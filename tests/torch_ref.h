/* Test helper: loads a raw float32 reference file written by tests/torch/ref_*.py. */
#ifndef LB_TORCH_REF_H
#define LB_TORCH_REF_H

#include <stdio.h>
#include <stdlib.h>

/* Reads exactly n floats from $LOWBIT_REFS/<name>.f32 into a malloc'd buffer; NULL (with a
 * message) when missing or of the wrong size, which the caller reports as a failed check. */
static inline float *lbt_ref_load(const char *name, size_t n) {
    const char *dir = getenv("LOWBIT_REFS");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.f32", dir ? dir : "build/refs", name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "missing reference %s (run tests/torch/gen_refs.py)\n", path);
        return NULL;
    }
    float *p = malloc((n + 1) * sizeof *p);
    size_t got = p ? fread(p, sizeof *p, n + 1, f) : 0;
    fclose(f);
    if (got != n) {
        fprintf(stderr, "reference %s: %zu floats, expected %zu\n", path, got, n);
        free(p);
        return NULL;
    }
    return p;
}

#endif
